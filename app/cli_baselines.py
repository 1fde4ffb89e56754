"""`dynabert baselines`: DistilBERT-, TinyBERT-style students, INT8 teacher and INT8 DynaBERT sub-networks,
trained with the run's budget, evaluated on dev/test and timed with the search's latency harness. Everything
lands in `<run>/baselines.csv` (docs/ARTIFACTS.md); students are saved under `<run>/baselines/<name>/`
(checkpoint + `done.json`), so a rerun measures but does not retrain. Latency records are cached in
`<run>/baselines/latency_cache.jsonl`. MACs are counted at the run's max_length (as in grid.csv); latency at
each `--scenario`.
"""
# This module only builds the parser (no torch import, so `dynabert --help` stays fast); the work is in
# app/baselines_runner.py, imported when the command runs.
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from app.cli_runtime import add_runtime_args
from elastic.options import DEFAULT_LR, INT8_RUNTIMES, TinyBudget

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


def _run(args: argparse.Namespace) -> int:
    from app.baselines_runner import options_from_args, run_baselines
    from elastic.baselines import Recipe
    rows = run_baselines(args.run_dir, options_from_args(args))
    def pct(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.2f}%"
    for r in rows:
        print(f"{r['name']:<34} {Recipe(r['recipe']).value:<13} {r['macs']:.3e} MACs  dev {pct(r['dev_metric'])}  "
              f"test {pct(r['test_metric'])}  {r['latency_ms']:.2f} ms ({r['scenario']})")
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
