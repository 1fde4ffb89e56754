"""`dynabert baselines`: DistilBERT-, TinyBERT-style students, INT8 teacher and INT8 DynaBERT sub-networks,
trained with the run's budget, evaluated on dev/test and timed with the search's latency harness. Everything
lands in `<run>/baselines.csv` (docs/ARTIFACTS.md); students are saved under `<run>/baselines/<name>/`
(checkpoint + `done.json`), so a rerun measures but does not retrain. Latency records are cached in
`<run>/baselines/latency_cache.jsonl`. MACs are counted at the run's max_length (as in grid.csv); latency at
each `--scenario`.
"""
# This module only builds the parser (no torch import, so `dynabert --help` stays fast); the work is in
# app/workflow/baselines.py, imported when the command runs.
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.runtime import add_runtime_args
from elastic.training.options import DEFAULT_LR, INT8_RUNTIMES, TinyBudget

RECIPE_CHOICES = ("distilbert", "tinybert", "int8", "dynabert_int8", "all")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices, got '{text}'") from None


def _points(text: str) -> tuple[tuple[float, float], ...]:
    try:
        return tuple((float(p.split(":")[0]), float(p.split(":")[1])) for p in text.split(","))
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected width:depth pairs like 0.5:0.5,1.0:0.75, got '{text}'") from None


def options_from_args(args: argparse.Namespace):
    """Turn parsed arguments into `BaselineOptions` (recipe `all` expands to every recipe)."""
    from app.cli.runtime import runtime_from_args
    from app.workflow.baselines import BaselineOptions
    from elastic.training.baselines import DistilWeights, Recipe
    from elastic.training.options import DEFAULT_SCENARIO
    recipes = tuple(Recipe) if "all" in args.recipe else tuple(dict.fromkeys(Recipe(r) for r in args.recipe))
    distil = DistilWeights(soft=args.alpha_soft, hard=args.beta_hard, cosine=args.gamma_cos,
                           temperature=args.temperature if args.temperature is not None else 2.0)
    return BaselineOptions(
        recipes=recipes, student_init=args.student_init, layers=args.layers, depth=args.depth, width=args.width,
        tinybert_budget=TinyBudget(args.tinybert_budget),
        temperature=args.temperature, distil=distil, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, lr=args.lr, scenarios=tuple(args.scenario or (DEFAULT_SCENARIO,)),
        int8_runtimes=tuple(args.int8_runtime or INT8_RUNTIMES), dynabert_stage=args.dynabert_stage,
        dynabert_points=args.dynabert_points, min_run_time_s=args.min_run_time, select_best=args.select_best,
        select_every=args.select_every, save_every=args.save_every,
        resume=args.resume, progress=not args.no_progress, runtime=runtime_from_args(args))


def _run(args: argparse.Namespace) -> int:
    from app.workflow.baselines import row_line, run_baselines
    rows = run_baselines(args.run_dir, options_from_args(args))
    for r in rows:
        print(row_line(r))
    print(f"{len(rows)} rows -> {Path(args.run_dir) / 'baselines.csv'}")
    return 0


def register(sub) -> None:
    """Add `dynabert baselines` to the `dynabert` parser."""
    p = sub.add_parser("baselines", help="DistilBERT/TinyBERT-style students and INT8 baselines, same harness",
                       description=__doc__)
    p.add_argument("--run-dir", required=True, type=Path, help="run directory with teacher/ and rewired/")
    p.add_argument("--recipe", nargs="+", choices=RECIPE_CHOICES, default=["distilbert", "tinybert", "int8"],
                   help="recipes to run (default distilbert tinybert int8; dynabert_int8 needs --dynabert-stage)")
    p.add_argument("--student-init", help="TinyBERT: start from this HF BERT dir instead of a teacher sub-network")
    p.add_argument("--layers", type=_ints, help="teacher layers the student keeps, e.g. 0,2,4 (default every other)")
    p.add_argument("--depth", type=int, help="student layers (default half the teacher's)")
    p.add_argument("--width", type=float, default=0.5, help="TinyBERT student width multiplier of heads/FFN (0.5)")
    p.add_argument("--tinybert-budget", choices=[b.value for b in TinyBudget], default="per-phase",
                   help="TinyBERT phases: each gets the stage budget (per-phase, default) or they split it (split)")
    p.add_argument("--temperature", type=float, help="distillation temperature (default DistilBERT 2.0, TinyBERT 1.0)")
    p.add_argument("--alpha-soft", type=float, default=5.0, help="DistilBERT soft-CE weight (5.0)")
    p.add_argument("--beta-hard", type=float, default=2.0, help="DistilBERT hard-label CE weight (2.0)")
    p.add_argument("--gamma-cos", type=float, default=1.0, help="DistilBERT cosine hidden loss weight (1.0)")
    p.add_argument("--epochs", type=float, help="epochs per phase (default: the run's stage budget)")
    p.add_argument("--max-steps", type=int, help="optimizer steps per phase (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="peak learning rate, linear decay (2e-5)")
    p.add_argument("--scenario", nargs="+", help="latency scenario keys (default cpu-eager-t2-b1-s128)")
    p.add_argument("--int8-runtime", nargs="+", choices=INT8_RUNTIMES, help="INT8 runtimes (default both)")
    p.add_argument("--dynabert-stage", default="stage2", help="checkpoint for dynabert_int8 (stage2)")
    p.add_argument("--dynabert-points", type=_points, help="width:depth grid points for dynabert_int8 (default all)")
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timed runs per latency (1.0)")
    p.add_argument("--select-best", choices=("off", "heldout", "dev"), default="off",
                   help="students end on their best-scoring weights (held-out train slice or dev, scored every "
                        "--select-every steps and at the end), as the DynaBERT stages' --select-best; default off")
    p.add_argument("--select-every", type=int, default=50, help="steps between selection scores (50)")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint period in steps (100)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted student from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_runtime_args(p)  # where students train and models are evaluated; latency is each --scenario's
    p.set_defaults(func=_run)
