"""`dynabert search` (Optuna Pareto search over per-layer sub-networks) and `dynabert export`."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.runtime import add_runtime_args, runtime_from_args
from elastic.training.options import SAMPLERS


def register(sub) -> None:
    """Add `search` and `export` to the `dynabert` parser."""
    p = sub.add_parser("search", help="multi-objective Pareto search over per-layer sub-networks (Optuna)")
    p.add_argument("--run-dir", required=True, type=Path, help="a trained run directory")
    p.add_argument("--scenario", help="latency scenario key, e.g. cpu-eager-t2-b1-s128, or several deployment "
                                      "variants of one target, comma-separated (e.g. cpu-eager-t2-b1-s64,"
                                      "cpu-ort-int8-t2-b1-s64): each trial is then a sub-network in one variant, "
                                      "scored on that variant (default: the last search's, else the predictor's, "
                                      "else cpu-eager-t2-b1-s128)")
    add_variant_args(p)
    p.add_argument("--objectives", default="metric,latency",
                   help="metric first, then any of latency, macs, params (default metric,latency)")
    p.add_argument("--n-trials", type=int, default=100, help="total trials, kept across resumptions (default 100)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                   help="default tpe: the highest dev hypervolume of the three samplers (docs/RECIPES.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", help="Optuna RDB URL (default sqlite:///<run>/study.db); a server such as "
                                     "postgresql://user:pw@host/db lets workers on other machines join (README)")
    p.add_argument("--study-name", help="default search-<scenario>")
    p.add_argument("--n-workers", type=int, default=1,
                   help="worker processes on this machine; other machines may add workers on the same storage")
    p.add_argument("--heartbeat-interval", type=int, default=30, metavar="S",
                   help="seconds between heartbeats of a running trial (default 30)")
    p.add_argument("--grace-period", type=int, default=120, metavar="S",
                   help="a trial without heartbeat for S seconds is failed and its config re-run (default 120)")
    p.add_argument("--max-retry", type=int, default=2, help="re-runs of a dead worker's config (default 2)")
    p.add_argument("--latency-budget", type=float, metavar="MS", help="constraint: latency <= MS")
    p.add_argument("--metric-floor", type=float, metavar="PCT", help="constraint: dev metric >= PCT")
    p.add_argument("--max-params", type=int, metavar="N", help="constraint: parameters <= N")
    p.add_argument("--measure", action="store_true", help="time every trial instead of using predictor.json")
    p.add_argument("--fidelity-subset", type=int, metavar="N",
                   help="first evaluate on N dev examples; full dev only for configs that could reach the front")
    p.add_argument("--ffn-step", type=int, help="FFN sizes are multiples of this (default FFN/8)")
    p.add_argument("--population-size", type=int, default=20, help="NSGA-II population (default 20)")
    p.add_argument("--seed-with-rule", type=int, default=0, metavar="N",
                   help="start a new study with the first N configs of the Mix'n'Match rule (the uniform grid, then "
                        "per-layer width ramps and layer-drop patterns, evenly subsampled; search/rule.py) instead "
                        "of only the 12 grid configs (default 0: the grid only)")
    p.add_argument("--stage", help="checkpoint to search (default: latest finished of stage3/stage2/stage1)")
    p.add_argument("--threads", type=int, help="torch threads for evaluation (default: torch's)")
    p.add_argument("--no-finalize", action="store_true", help="skip re-measuring the front and pareto.csv")
    p.add_argument("--no-progress", action="store_true")
    add_runtime_args(p)  # where trials are evaluated; latency is the --scenario's
    p.set_defaults(func=cmd_search)

    e = sub.add_parser("export", help="export sub-networks as standalone Hugging Face models (+ ONNX, card)")
    e.add_argument("--run-dir", required=True, type=Path)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="a trial number of the study")
    which.add_argument("--pareto", action="store_true", help="every point of the Pareto front")
    which.add_argument("--knee", action="store_true", help="the knee point of the front")
    which.add_argument("--subnet", type=Path, help="a SubnetConfig JSON file {layers, heads, ffn}")
    e.add_argument("--out", type=Path, help="model directory (for --pareto: the folder of all of them); "
                                           "default <run>/exports/<name>")
    e.add_argument("--name", help="export name (sanitized: letters, digits, '.', '_', '-')")
    e.add_argument("--force", action="store_true", help="overwrite an existing export")
    e.add_argument("--storage", help="Optuna RDB URL (default sqlite:///<run>/study.db)")
    e.add_argument("--study-name")
    e.add_argument("--scenario", help="deployment variant (scenario key) to export a --subnet in (default: the "
                                      "search's first); a front point or trial is exported in its own variant")
    e.add_argument("--no-onnx", action="store_true", help="skip model.onnx")
    e.add_argument("--no-measure", action="store_true", help="do not time the model for its card")
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
    from app.workflow.search import default_scenario, search
    from profiling.variants import resolve_variants
    from search.options import SearchOptions

    if not args.run_dir.is_dir():
        raise FileNotFoundError(f"run directory {args.run_dir} does not exist")
    variants = resolve_variants(scenario=args.scenario, target=args.target, precisions=args.precisions,
                                runtimes=args.runtimes, default=default_scenario(args.run_dir))
    opts = SearchOptions(
        run_dir=args.run_dir, scenario=",".join(variants),
        objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()), n_trials=args.n_trials,
        sampler=args.sampler, seed=args.seed, storage=args.storage, study_name=args.study_name,
        n_workers=args.n_workers, heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
        max_retry=args.max_retry, latency_budget_ms=args.latency_budget, metric_floor=args.metric_floor,
        max_params=args.max_params, measure=args.measure, fidelity_subset=args.fidelity_subset,
        ffn_step=args.ffn_step, population_size=args.population_size, stage=args.stage, threads=args.threads,
        seed_with_rule=args.seed_with_rule,
        progress=not args.no_progress, runtime=runtime_from_args(args))
    for line in search(opts, finalize=not args.no_finalize).lines():
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.workflow.export import USAGE, ExportOptions, export

    opts = ExportOptions(run_dir=args.run_dir, trial=args.trial, pareto=args.pareto, knee=args.knee,
                         subnet_file=args.subnet, out=args.out, name=args.name, force=args.force,
                         storage=args.storage, study_name=args.study_name, scenario=args.scenario,
                         onnx=not args.no_onnx, measure=not args.no_measure, runtime=runtime_from_args(args))
    written = export(opts)
    print(f"{len(written)} export(s); {USAGE}")
    return 0
