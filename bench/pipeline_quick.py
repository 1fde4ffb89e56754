"""results/pipeline_quick.{json,md}: `make demo` on a fresh clone, timed and reported by this script.

    python -m bench.pipeline_quick                 # clone HEAD into a temporary folder, time `make install`
                                                   # (set-up) and `make demo-run` (the pipeline), then report
    python -m bench.pipeline_quick --run-dir runs/demo   # report an existing demo run (no set-up time)
    python -m bench.pipeline_quick --write-step-rates    # only rewrite app/data/step_rates.json from
                                                         # results/pipeline_quick.json

A run that writes results/ also rewrites app/data/step_rates.json (`step_rates`): the seconds per optimizer
step of each training stage that `dynabert run` prints its expected time from (app/workflow/estimate.py), derived
from the result file, never typed by hand (tests/test_run_options.py checks the two agree).

Every figure comes from the run: the stage timings `dynabert run` recorded in pipeline.json, the stage-2
grid and the baselines of the same harness (test accuracy and MACs), and the demo's two targets checked on
them (issue 14): no baseline dominates the grid (each grid point's test accuracy >= that of every baseline
with MACs no larger than it, minus 1.0) and (w0.25, d0.5) >= 85.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import RESULTS, fingerprint, load_1min, provenance, write_result

ROOT = RESULTS.parent
STEP_RATES = ROOT / "app" / "data" / "step_rates.json"
TRAINING_STAGES = ("teacher", "stage1", "stage2", "stage3")
DOMINANCE_MARGIN = 1.0  # accuracy points a baseline may lead by before it counts as dominating
SMALLEST_TARGET = 85.0  # (w0.25, d0.5) test accuracy on BBC News


def demo_targets(grid: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> dict[str, Any]:
    """Check the demo's targets on stage-2 grid rows and baseline rows ({macs, test_acc, ...}).

    Returns:
        {"dominated": [grid points a cheaper-or-equal baseline beats by more than the margin, with it],
         "smallest_test_acc": (w0.25, d0.5) accuracy, "dominance_met", "smallest_met": each target holds,
         "met": both hold}.
    """
    dominated = []
    for g in grid:
        for b in baselines:
            if b["macs"] <= g["macs"] and b["test_acc"] > g["test_acc"] + DOMINANCE_MARGIN:
                dominated.append({"width_mult": g["width_mult"], "depth_mult": g["depth_mult"],
                                  "test_acc": g["test_acc"], "baseline": b["name"], "baseline_test_acc": b["test_acc"]})
    smallest = next((g["test_acc"] for g in grid if g["width_mult"] == 0.25 and g["depth_mult"] == 0.5), None)
    smallest_met = smallest is not None and smallest >= SMALLEST_TARGET
    return {"dominated": dominated, "smallest_test_acc": smallest, "dominance_met": not dominated,
            "smallest_met": smallest_met, "met": not dominated and smallest_met}


def step_rates(data: dict[str, Any]) -> dict[str, Any]:
    """app/data/step_rates.json from a pipeline_quick result: each training stage's wall-clock seconds divided by
    its optimizer steps (as `dynabert run` counts them for the recorded preset and recipe), at the run's max
    length and batch size, with where and at which commit they were measured."""
    from app.workflow.estimate import stage_steps, train_examples
    from app.workflow.pipeline import resolve

    opts = resolve(data["preset"], {}, {k: v for k, v in data["recipe"].items() if v is not None})
    n_train = int(opts["limit_train"]) if opts["limit_train"] is not None else train_examples(opts)
    steps = stage_steps(opts, n_train)
    stages = [s for s in TRAINING_STAGES if s in steps and s in data["stage_seconds"]]
    fp = data["fingerprint"]
    return {"source": "results/pipeline_quick.json", "commit": data["commit"], "task": data["task"],
            "preset": data["preset"], "batch_size": int(opts["batch_size"]),
            "measured_on": f"{fp['cpu']}, {fp['logical_cores']} logical cores, torch {fp['torch']}",
            "steps": {s: steps[s] for s in stages},
            "stage_seconds": {s: data["stage_seconds"][s] for s in stages},
            "seconds_per_step": {s: {str(int(opts["max_length"])): round(data["stage_seconds"][s] / steps[s], 6)}
                                 for s in stages}}


def write_step_rates(result: Path = RESULTS / "pipeline_quick.json", out: Path = STEP_RATES) -> dict[str, Any]:
    """Rewrite `out` from the result file `result` (what a full-size run of this bench does)."""
    rates = step_rates(json.loads(result.read_text()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rates, indent=2) + "\n")
    return rates


def report(run_dir: Path, *, command: str, setup_seconds: float | None, wall_seconds: float | None,
           load_before: float | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Write results/pipeline_quick.{json,md} from a finished demo run directory."""
    rec = json.loads((run_dir / "pipeline.json").read_text())
    trials = pd.read_csv(run_dir / "trials.csv")
    pareto = pd.read_csv(run_dir / "pareto.csv")
    grid = pd.read_csv(run_dir / "grid.csv")
    s2 = grid[grid["stage"] == "stage2"]
    teacher = grid[grid["stage"] == "teacher"]
    base = pd.read_csv(run_dir / "baselines.csv") if (run_dir / "baselines.csv").exists() else pd.DataFrame()
    knee = pareto[pareto["knee"].astype(str).str.lower().isin(["true", "1"])]
    grid_rows = [{"width_mult": float(r.width_mult), "depth_mult": float(r.depth_mult), "macs": int(r.macs),
                  "dev_acc": round(float(r.dev_metric), 2), "test_acc": round(float(r.test_metric), 2)}
                 for r in s2.itertuples()]
    base_rows = [{"name": str(r.name), "recipe": str(r.recipe), "macs": int(r.macs),
                  "test_acc": round(float(r.test_metric), 2)} for r in base.drop_duplicates("name").itertuples()]
    data = {**provenance(), **extra, "fingerprint": fingerprint(), "load_before": load_before,
            "load_after": load_1min(), "total_seconds": rec["total_seconds"], "stage_seconds": rec["stage_seconds"],
            "setup_seconds": setup_seconds, "wall_seconds": wall_seconds,
            "n_trials": int(len(trials)), "pareto_size": int(len(pareto)),
            "preset": rec["options"].get("preset"), "task": rec["options"].get("task"),
            "recipe": {k: rec["options"].get(k) for k in ("lr", "stage2_lr", "hard_weight", "hidden_weight",
                                                            "stage1_epochs", "stage2_epochs", "limit_train", "max_length",
                                                            "batch_size", "teacher_epochs")},
            "teacher_dev_metric": float(teacher["dev_metric"].iloc[0]) if len(teacher) else None,
            "teacher_test_metric": float(teacher["test_metric"].iloc[0]) if len(teacher) else None,
            "grid": grid_rows, "baselines": base_rows, "targets": demo_targets(grid_rows, base_rows),
            "knee": knee.iloc[0][["config_json", "dev_metric", "test_metric", "latency_measured_ms"]].to_dict()
            if len(knee) else None}
    piv = s2.pivot(index="width_mult", columns="depth_mult", values="test_metric").sort_index(ascending=False)
    table = "| width \\ depth | " + " | ".join(str(d) for d in piv.columns) + " |\n|---|" + "---|" * len(piv.columns)
    table += "".join(f"\n| {w} | " + " | ".join(f"{v:.1f}" for v in piv.loc[w]) + " |" for w in piv.index)
    brows = "\n".join(f"| {b['name']} | {b['macs'] / 1e6:.0f} | {b['test_acc']:.1f} |" for b in base_rows)
    t = data["targets"]
    fmt = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
    md = f"""# Quick pipeline (`{command}`) on the embedded default

Commit `{data['commit'][:12]}`{' (dirty tree)' if data['dirty'] else ''}. Task {data['task']} (BBC News, 5 classes),
teacher all-MiniLM-L6-v2, preset {data['preset']} (recipe {data['recipe']}).
Whole command {fmt(wall_seconds)} s, of which set-up (venv + install) {fmt(setup_seconds)} s; pipeline stages
{data['total_seconds']:.0f} s: {', '.join(f"{k} {v:.0f} s" for k, v in rec['stage_seconds'].items())}.
1-minute load average {load_before} before, {data['load_after']} after (2 cores).

Teacher test {data['teacher_test_metric']:.1f}. Stage-2 grid, test accuracy (%):

{table}

Baselines of the same harness (MACs in millions at the demo's length):

| baseline | MACs (M) | test (%) |
|---|---|---|
{brows}

Targets (issue 14):
- no baseline beats a grid point of no smaller MACs by more than {DOMINANCE_MARGIN} point: \
{'met' if t['dominance_met'] else f"NOT met ({t['dominated']})"}
- (w0.25, d0.5) test {t['smallest_test_acc']} >= {SMALLEST_TARGET}: \
{'met' if t['smallest_met'] else 'NOT met'}

Search: {data['n_trials']} trials, Pareto front of {data['pareto_size']} points. Knee: {data['knee']}.
Machine: {data['fingerprint']['cpu']}, torch {data['fingerprint']['torch']}.
"""
    write_result("pipeline_quick", data, md)
    return data


def fresh_clone_demo(keep: bool) -> tuple[Path, float, float, str]:
    """Clone HEAD, `make install` then `make demo-run` in the clone; (run dir, set-up s, whole s, commit)."""
    tmp = Path(tempfile.mkdtemp(prefix="demo-clone-"))
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    t0 = time.perf_counter()
    subprocess.run(["make", "install"], cwd=clone, check=True, env=env)
    setup = time.perf_counter() - t0
    subprocess.run(["make", "demo-run"], cwd=clone, check=True, env=env)
    run_dir = clone / "runs" / "demo"
    if not keep:  # keep only the run directory, beside the repository's own runs/
        dest = ROOT / "runs" / "demo_fresh_clone"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(run_dir, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        run_dir = dest
    return run_dir, setup, time.perf_counter() - t0, commit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, help="report this finished demo run instead of running a fresh clone")
    ap.add_argument("--keep-clone", action="store_true", help="leave the temporary clone (and its venv) on disk")
    ap.add_argument("--write-step-rates", action="store_true",
                    help=f"only rewrite {STEP_RATES.relative_to(ROOT)} from results/pipeline_quick.json")
    args = ap.parse_args(argv)
    if args.write_step_rates:
        print(json.dumps(write_step_rates()["seconds_per_step"]))
        return 0
    load_before = load_1min()
    if args.run_dir is not None:
        data = report(args.run_dir, command=f"dynabert run (reported from {args.run_dir})", setup_seconds=None,
                      wall_seconds=None, load_before=load_before, extra={})
    else:
        run_dir, setup, wall, commit = fresh_clone_demo(args.keep_clone)
        # what ran is the clone: a clean checkout of `commit`, whatever this checkout's own state
        data = report(run_dir, command="make install && make demo-run (fresh clone)", setup_seconds=round(setup, 1),
                      wall_seconds=round(wall, 1), load_before=load_before, extra={"commit": commit, "dirty": False})
    if RESULTS.resolve() == (ROOT / "results").resolve():  # the step rates follow results/, not a scratch folder
        write_step_rates()
    print(json.dumps({k: data[k] for k in ("total_seconds", "wall_seconds", "targets")}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
