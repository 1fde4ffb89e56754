"""`dynabert profile`: MACs, parameters and measured latency of grid and random sub-networks, and the
latency predictor the search uses (latency.csv, predictor.json in the run directory).

Its flags are generated from the fields of `ProfileOptions` (app/workflow/profile.py) by
`app.config.flags.add_fields`; adding an option is adding a field. Explicit flags, not generated: `--scenario`
(repeatable) with `--target`/`--precisions`/`--runtimes`, resolved together into the options' `scenarios`, and
`--device`/`--precision` (app/cli/runtime.py), the options' `device` and `precision`.
"""
from __future__ import annotations

import argparse

from app.cli.runtime import add_runtime_args
from app.cli.search import add_variant_args


def register(sub) -> None:
    """Add `dynabert profile`."""
    from app.config.flags import add_fields
    from app.workflow.profile import ProfileOptions

    p = sub.add_parser(
        "profile", help="measure MACs, params and latency of sub-networks; fit and score the latency predictor",
        description="Profiles the 12 DynaBERT grid configs and random per-layer configs on the extracted "
                    "(physical) sub-networks, caches every timing, fits the latency predictor on the grid + "
                    "--n-random configs and reports its error (MAPE, Kendall tau) on --n-heldout other ones.")
    add_fields(p, ProfileOptions, names={"min_run_time_s": "--min-run-time"})
    p.add_argument("--scenario", action="append", metavar="KEY",
                   help="scenario key, e.g. cpu-eager-t2-b1-s128 or cuda-eager-fp16-b1-s128 (repeatable, or "
                        "comma-separated); overrides --device, --precision, --runtime, --threads, --batch-size and "
                        "--max-length")
    add_variant_args(p)  # every deployment variant of a target: one predictor each (predictors/<key>.json)
    add_runtime_args(p)  # --device and --precision: the scenario's device and the timed model's dtype
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from app.config.flags import options_from_args
    from app.workflow.profile import ProfileOptions, profile
    from profiling.variants import resolve_variants, split_list

    scenarios = (resolve_variants(scenario=args.scenario, target=args.target, precisions=args.precisions,
                                  runtimes=args.runtimes)
                 if any(v is not None for v in (args.target, args.precisions, args.runtimes))
                 else split_list(args.scenario))
    opts = options_from_args(ProfileOptions, args, scenarios=scenarios)
    result = profile(opts)
    for line in result.lines():
        print(line)
    print(f"\nwrote {args.run_dir / 'latency.csv'} and {args.run_dir / 'predictor.json'}")
    return 0
