"""`dynabert search` (Optuna Pareto search over per-layer sub-networks) and `dynabert export`.

Their flags are generated from the fields of `SearchOptions` (search/options.py) and `ExportOptions`
(app/workflow/export.py) by `app.config.flags.add_fields`; adding an option is adding a field. Explicit flags,
not options fields: `--target`/`--precisions`/`--runtimes` (resolved with `--scenario` into the search's
variants), `--no-finalize` (an argument of `app.workflow.search.search`) and `--device`/`--precision`
(app/cli/runtime.py: the options' `runtime`).
"""
from __future__ import annotations

import argparse

from app.cli.runtime import add_runtime_args, runtime_from_args

# SearchOptions fields whose flag is not named after the field.
SEARCH_FLAGS = {"latency_budget_ms": "--latency-budget"}


def register(sub) -> None:
    """Add `search` and `export` to the `dynabert` parser."""
    from app.config.flags import add_fields
    from app.workflow.export import ExportOptions
    from search.options import SearchOptions

    p = sub.add_parser("search", help="multi-objective Pareto search over per-layer sub-networks (Optuna)")
    add_fields(p, SearchOptions, names=SEARCH_FLAGS, defaults={"scenario": None})  # None: resolved with the trio
    add_variant_args(p)
    p.add_argument("--no-finalize", action="store_true", help="skip re-measuring the front and pareto.csv")
    add_runtime_args(p)  # where trials are evaluated; latency is the --scenario's
    p.set_defaults(func=cmd_search)

    e = sub.add_parser("export", help="export sub-networks as standalone Hugging Face models (+ ONNX, card)")
    add_fields(e, ExportOptions, names={"subnet_file": "--subnet"}, exclusive=("trial", "pareto", "knee", "subnet_file"))
    add_runtime_args(e)  # where the card's metrics are evaluated; its latency is the --scenario's
    e.set_defaults(func=cmd_export)


def add_variant_args(p: argparse.ArgumentParser) -> None:
    """--target, --precisions, --runtimes: the deployment variants of one target (`profiling.variants`)."""
    p.add_argument("--target", metavar="TARGET",
                   help="where the model is deployed, without runtime and precision: cpu-t{threads}-b{batch}-"
                        "s{seq_len} or cuda-b{batch}-s{seq_len}, e.g. cpu-t2-b1-s64; with --precisions and "
                        "--runtimes it names the variants (instead of --scenario)")
    p.add_argument("--precisions", metavar="LIST",
                   help="with --target: comma-separated fp32, int8 (dynamic), bf16, fp16 (half: cuda eager only); "
                        "default fp32")
    p.add_argument("--runtimes", metavar="LIST",
                   help="with --target: comma-separated eager (PyTorch), ort (ONNX Runtime); default eager. "
                        "Every possible precision x runtime pair is a variant")


def cmd_search(args: argparse.Namespace) -> int:
    from app.config.flags import options_from_args
    from app.workflow.search import default_scenario, search
    from profiling.variants import resolve_variants
    from search.options import SearchOptions

    if not args.run_dir.is_dir():
        raise FileNotFoundError(f"run directory {args.run_dir} does not exist")
    variants = resolve_variants(scenario=args.scenario, target=args.target, precisions=args.precisions,
                                runtimes=args.runtimes, default=default_scenario(args.run_dir))
    opts = options_from_args(SearchOptions, args, scenario=",".join(variants), runtime=runtime_from_args(args))
    for line in search(opts, finalize=not args.no_finalize).lines():
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.config.flags import options_from_args
    from app.workflow.export import USAGE, ExportOptions, export

    written = export(options_from_args(ExportOptions, args, runtime=runtime_from_args(args)))
    print(f"{len(written)} export(s); {USAGE}")
    return 0
