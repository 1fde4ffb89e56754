"""`dynabert baselines`: DistilBERT-, TinyBERT-style students, INT8 teacher and INT8 DynaBERT sub-networks,
trained with the run's budget, evaluated on dev/test and timed with the search's latency harness. Everything
lands in `<run>/baselines.csv` (docs/ARTIFACTS.md); students are saved under `<run>/baselines/<name>/`
(checkpoint + `done.json`), so a rerun measures but does not retrain. Latency records are cached in
`<run>/baselines/latency_cache.jsonl`. MACs are counted at the run's max_length (as in grid.csv); latency at
each `--scenario`.
"""
# This module only builds the parser (no torch import, so `dynabert --help` stays fast); the work is in
# app/workflow/baselines.py, imported when the command runs. The flags are generated from the fields of
# `BaselineOptions` (app/workflow/baseline_options.py) by `app.config.flags.add_fields`; adding an option is adding
# a field. Explicit flags, not generated: `--run-dir` (an argument of `run_baselines`, not an option),
# `--dynabert-points` (width:depth pairs, a type the fields' specs do not parse) and `--device`/`--precision`
# (app/cli/runtime.py: the options' `runtime`).
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.runtime import add_runtime_args, runtime_from_args

# BaselineOptions fields whose flag is not named after the field.
FLAGS = {"recipes": "--recipe", "scenarios": "--scenario", "int8_runtimes": "--int8-runtime",
         "min_run_time_s": "--min-run-time"}


def _points(text: str) -> tuple[tuple[float, float], ...]:
    try:
        return tuple((float(p.split(":")[0]), float(p.split(":")[1])) for p in text.split(","))
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected width:depth pairs like 0.5:0.5,1.0:0.75, got '{text}'") from None


def _run(args: argparse.Namespace) -> int:
    from app.config.flags import options_from_args
    from app.workflow.baseline_options import BaselineOptions
    from app.workflow.baselines import row_line, run_baselines

    rows = run_baselines(args.run_dir, options_from_args(BaselineOptions, args, runtime=runtime_from_args(args)))
    for r in rows:
        print(row_line(r))
    print(f"{len(rows)} rows -> {Path(args.run_dir) / 'baselines.csv'}")
    return 0


def register(sub) -> None:
    """Add `dynabert baselines` to the `dynabert` parser."""
    from app.config.flags import add_fields
    from app.workflow.baseline_options import BaselineOptions

    p = sub.add_parser("baselines", help="DistilBERT/TinyBERT-style students and INT8 baselines, same harness",
                       description=__doc__)
    p.add_argument("--run-dir", required=True, type=Path, help="run directory with teacher/ and rewired/")
    add_fields(p, BaselineOptions, names=FLAGS, many=("recipes", "scenarios", "int8_runtimes"))
    p.add_argument("--dynabert-points", type=_points, help="width:depth grid points for dynabert_int8 (default all)")
    add_runtime_args(p)  # where students train and models are evaluated; latency is each --scenario's
    p.set_defaults(func=_run)
