"""`dynabert profile`: MACs, parameters and measured latency of grid and random sub-networks, and the
latency predictor the search uses (latency.csv, predictor.json in the run directory)."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.runtime import add_runtime_args
from app.cli.search import add_variant_args
from app.workflow.profile import CHECKPOINT_CHOICES, RUNTIMES
from elastic.training.options import TIMINGS


def register(sub) -> None:
    """Add `dynabert profile`."""
    p = sub.add_parser(
        "profile", help="measure MACs, params and latency of sub-networks; fit and score the latency predictor",
        description="Profiles the 12 DynaBERT grid configs and random per-layer configs on the extracted "
                    "(physical) sub-networks, caches every timing, fits the latency predictor on the grid + "
                    "--n-random configs and reports its error (MAPE, Kendall tau) on --n-heldout other ones.")
    p.add_argument("--run-dir", required=True, type=Path, help="run directory, e.g. runs/sst2")
    p.add_argument("--checkpoint", default="auto",
                   help=f"stage whose weights to load ({', '.join(CHECKPOINT_CHOICES)}) or a checkpoint dir; "
                        "default: the latest of stage2, stage1, rewired, teacher")
    p.add_argument("--teacher", help="HF BERT dir to profile when the run has no checkpoint "
                                     "(default then: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--scenario", action="append", metavar="KEY",
                   help="scenario key, e.g. cpu-eager-t2-b1-s128 or cuda-eager-fp16-b1-s128 (repeatable, or "
                        "comma-separated); overrides the flags below")
    add_variant_args(p)  # every deployment variant of a target: one predictor each (predictors/<key>.json)
    add_runtime_args(p)  # --device and --precision: the scenario's device and the timed model's dtype
    p.add_argument("--runtime", default="eager", choices=RUNTIMES)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--batch-size", type=int, default=1, help="sequences per forward pass (default 1)")
    p.add_argument("--max-length", type=int, help="tokens per sequence (default: the run's max_length, else 128)")
    p.add_argument("--n-random", type=int, default=50, help="random per-layer configs to fit on (default 50)")
    p.add_argument("--n-heldout", type=int, default=50, help="other random configs to score the predictor (50)")
    p.add_argument("--reference-every", type=int, default=10,
                   help="re-time the full model every K measured configs; >5%% drift is flagged (default 10)")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timed runs per config (0.5)")
    p.add_argument("--timing", choices=TIMINGS, default="interleaved",
                   help="what the predictor is fitted and scored on: interleaved (default; each config's time "
                        "= its ratio to the full model from alternating calls x the full model's median, "
                        "robust on a machine shared with other jobs) or blocked (each config's own "
                        "blocked_autorange median, as in latency.csv)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random configs (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from app.workflow.profile import ProfileOptions, profile
    from profiling.variants import resolve_variants, split_list

    scenarios = (resolve_variants(scenario=args.scenario, target=args.target, precisions=args.precisions,
                                  runtimes=args.runtimes)
                 if any(v is not None for v in (args.target, args.precisions, args.runtimes))
                 else split_list(args.scenario))
    opts = ProfileOptions(
        run_dir=args.run_dir, checkpoint=args.checkpoint, teacher=args.teacher, scenarios=scenarios,
        device=args.device, precision=args.precision, runtime=args.runtime, threads=args.threads,
        batch_size=args.batch_size, max_length=args.max_length, n_random=args.n_random, n_heldout=args.n_heldout,
        reference_every=args.reference_every, min_run_time_s=args.min_run_time, timing=args.timing, seed=args.seed,
        progress=not args.no_progress)
    result = profile(opts)
    for line in result.lines():
        print(line)
    print(f"\nwrote {args.run_dir / 'latency.csv'} and {args.run_dir / 'predictor.json'}")
    return 0
