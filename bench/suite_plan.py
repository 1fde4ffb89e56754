"""The task suite's plan (bench/suite.py): tasks, seeds, the step budget per stage and the time estimate behind it.

The budget is one number of optimizer steps per stage and task, fixed here, chosen so that the whole suite (6
tasks x 2 seeds, every row of bench/suite.py) runs in at most 8 hours alone on 2 cores. `estimate` is the cost
model that chose it; `python -m bench.suite_plan` prints it per task.

Cost model (conservative by design):
- Seconds per training step: the rates of app/data/step_rates.json (`app.workflow.estimate.step_rates`: the quick
  pipeline on BBC News, batch 32, every batch full at max length 64, each step's share of its stage's
  evaluations included) scaled by the task's length factor: the mean longest example of a batch of 32 over 64
  (batches are padded to their longest example), at least 0.5 (per-step costs that do not shrink with length).
  That is the upper bound. Measured clean on SST-2 (results/sst2_dynabert.json, 433 steps per stage, load
  0.03, selection included) the rates are 0.90 / 2.96 / 3.87 s per teacher / stage-1 / stage-2 step, 0.69 /
  0.66 / 0.76 of what the upper bound gives SST-2 (the BBC rates were measured beside a fresh install, load
  about 1): the estimate applies these calibration factors to every task.
- Students (not measured on their own): a fraction of a teacher step: the teacher's forward (1/3) plus the
  student's forward and backward (its share of the layers and width), STUDENT_STEP below.
- Evaluations the rates leave out: each stage's model selection (every 50 steps on the held-out slice of train,
  over its trained sub-networks), its epoch-end dev evaluations, its final dev/test grid, the students' and the
  suite's own test predictions: examples x full-model equivalents x seconds per example (a full-model forward
  at 64 tokens = a third of a teacher step per example, scaled by the mean length).
- A fixed START_S per task-seed for the ~10 processes it starts (torch import, data loading, tokenizing).
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Sequence

TASKS = ("sst2", "mr", "subj", "trec", "mrpc", "bbc")
SEEDS = (42, 43)
MAX_LENGTH = 64
HOURS = 8.0

# Optimizer steps of the teacher and of stage 1, each stage 2 and each student (TinyBERT per-phase students
# train 2x, split ones 1x: the three students of bench/registry.py's baselines_lr2e-4), per task. One budget for
# every method of a task; the teacher's is the shared starting point of every row.
# 60 stage steps and 200 teacher steps: about 7.0 h estimated (9.7 h upper bound); 64 gives 7.2 h, 70 7.6 h.
STEPS: dict[str, dict[str, int]] = {t: {"teacher": 200, "stage": 60} for t in TASKS}

# Measured once (python -m bench.suite_plan --measure; all-MiniLM-L6-v2's tokenizer, max length 64, seed 42):
# examples per split, mean tokens, mean longest example of a random batch of 32 of train. trec's dev is the
# seeded 10 % slice that elastic/data/tasks.py carves out of train (the folder has no dev); bbc's dev and test too.
TASK_STATS: dict[str, dict[str, float]] = {
    "sst2": {"train": 6920, "dev": 872, "test": 1821, "mean_len": 25.2, "batch_max": 51.7},
    "mr": {"train": 8528, "dev": 1066, "test": 1068, "mean_len": 27.4, "batch_max": 51.9},
    "subj": {"train": 8000, "dev": 1000, "test": 1000, "mean_len": 29.9, "batch_max": 57.6},
    "trec": {"train": 4907, "dev": 545, "test": 500, "mean_len": 13.4, "batch_max": 25.9},
    "mrpc": {"train": 3672, "dev": 408, "test": 1725, "mean_len": 51.7, "batch_max": 64.0},
    "bbc": {"train": 1781, "dev": 222, "test": 222, "mean_len": 64.0, "batch_max": 64.0},
}
# Students' seconds per step as a fraction of a teacher step (teacher forward 1/3 + the student's own share).
STUDENT_STEP = {"distilbert-d3": 0.85, "tinybert-d6-w0.5": 0.9, "tinybert-d3-w0.5": 0.6}
STUDENT_SIZE = {"distilbert-d3": 0.5, "tinybert-d6-w0.5": 0.5, "tinybert-d3-w0.5": 0.25}  # full-model share
STUDENT_STEPS = {"distilbert-d3": 1, "tinybert-d6-w0.5": 1, "tinybert-d3-w0.5": 2}  # x the stage budget
GRID_SUM = 5.625  # sum over the 12 grid points of width x depth: one grid evaluation in full-model forwards
STAGE1_SUM = 2.5  # the 4 widths stage 1 trains, at full depth
SELECT_EVERY = 50
START_S = 150.0
FALLBACK_RATES = {"teacher": 1.622667, "stage1": 5.536, "stage2": 6.312}  # app/data/step_rates.json at 64
# results/sst2_dynabert.json: stage_seconds / steps (teacher 3 epochs = 585 steps; stages 433), 2 threads.
SST2_MEASURED = {"teacher": 525.81 / 585, "stage1": 1282.56 / 433, "stage2": 1677.24 / 433}


def bbc_rates() -> dict[str, float]:
    """Seconds per step at max length 64 (app/data/step_rates.json), the constants above where unreadable."""
    try:
        from app.workflow.estimate import step_rates
        table = step_rates().seconds
        return {s: float(table[s][min(table[s], key=lambda n: abs(n - MAX_LENGTH))]) for s in FALLBACK_RATES}
    except Exception:  # noqa: BLE001 - a plan without the package data still prints
        return dict(FALLBACK_RATES)


def calibrated_rates(rates: dict[str, float] | None = None) -> dict[str, float]:
    """`rates` (default `bbc_rates()`) x the SST-2 calibration factors: what SST-2 measured / what the upper
    bound gives SST-2 (per stage), at max length 64."""
    rates = rates or bbc_rates()
    f = length_factor("sst2")
    return {k: SST2_MEASURED[k] / f for k in rates}


def length_factor(task: str) -> float:
    """Mean longest example of a batch of 32 over the max length, at least 0.5."""
    return max(0.5, min(1.0, TASK_STATS[task]["batch_max"] / MAX_LENGTH))


def heldout(n_train: float) -> int:
    """The held-out importance/selection slice of train (elastic/training/prepare.py: 10 %, at most 1000)."""
    return min(1000, int(n_train) // 10)


def estimate(task: str, steps: dict[str, int] | None = None, rates: dict[str, float] | None = None
             ) -> dict[str, float]:
    """Estimated seconds of one task-seed of the suite, by part (see the module docstring)."""
    st = TASK_STATS[task]
    steps = steps or STEPS[task]
    rates = rates or bbc_rates()
    f = length_factor(task)
    fwd = rates["teacher"] / 32 / 3 * max(st["mean_len"], 16) / MAX_LENGTH  # one full-model forward, one example
    n_tr = st["train"] - heldout(st["train"])
    ho, dev, test = heldout(st["train"]), st["dev"], st["test"]
    s, t = steps["stage"], steps["teacher"]
    epochs = lambda n: math.ceil(n * 32 / n_tr) + 1  # noqa: E731 - epoch-end evaluations (and the last step)
    selects = s // SELECT_EVERY + 1
    out = {
        "teacher": t * rates["teacher"] * f + fwd * (epochs(t) * dev + dev + test),
        "stage1": s * rates["stage1"] * f + fwd * (selects * ho * STAGE1_SUM + epochs(s) * dev * (1 + STAGE1_SUM)
                                                   + (dev + test) * GRID_SUM),
    }
    stage2 = s * rates["stage2"] * f + fwd * (epochs(s) * dev * (1 + GRID_SUM) + (dev + test) * GRID_SUM)
    out["stage2_standard"] = out["stage2_nohard"] = stage2 + fwd * selects * ho * GRID_SUM
    out["stage2_released"] = stage2
    out["students"] = sum(STUDENT_STEPS[k] * s * STUDENT_STEP[k] * rates["teacher"] * f
                          + fwd * STUDENT_SIZE[k] * (selects * ho + dev + test) for k in STUDENT_STEP)
    out["predictions"] = fwd * (test * (3 * GRID_SUM + 1 + sum(STUDENT_SIZE.values())) + (dev + test))
    out["rewire_and_starts"] = fwd * 3 * ho + START_S
    out["total"] = sum(out.values())
    return out


def plan(tasks: Sequence[str] = TASKS, seeds: Sequence[int] = SEEDS) -> dict[str, Any]:
    """The suite's estimate: per task (one seed) and in all, against the HOURS budget."""
    upper = bbc_rates()
    rates = calibrated_rates(upper)
    per_task = {t: {k: round(v) for k, v in estimate(t, rates=rates).items()} for t in tasks}
    total = sum(v["total"] for v in per_task.values()) * len(seeds)
    bound = sum(estimate(t, rates=upper)["total"] for t in tasks) * len(seeds)
    return {"rates_s_per_step_at_64": {k: round(v, 3) for k, v in rates.items()},
            "upper_bound_rates_s_per_step_at_64": upper, "per_task_seed_seconds": per_task,
            "total_seconds": round(total), "total_hours": round(total / 3600, 2),
            "upper_bound_hours": round(bound / 3600, 2), "budget_hours": HOURS, "fits": total <= HOURS * 3600,
            "steps_per_stage": {t: dict(STEPS[t]) for t in tasks}}


def measure_task_stats(data_root: str, tasks: Sequence[str] = TASKS) -> dict[str, dict[str, float]]:
    """Recompute TASK_STATS from the data (tokenizes every split; seconds)."""
    import numpy as np

    from elastic.data.tasks import encode_split, load_task
    from elastic.model.weights import default_teacher_path, load_tokenizer
    tok = load_tokenizer(default_teacher_path())
    out = {}
    for t in tasks:
        task = load_task("bbc" if t == "bbc" else f"{data_root}/{t}", seed=42)
        row: dict[str, float] = {}
        for split in ("train", "dev", "test"):
            lens = np.array(encode_split(task, split, tok, MAX_LENGTH).lengths)
            row[split] = len(lens)
            if split == "train":
                row["mean_len"] = round(float(lens.mean()), 1)
                rng = np.random.default_rng(0)
                row["batch_max"] = round(float(np.mean([lens[rng.choice(len(lens), 32, replace=False)].max()
                                                        for _ in range(300)])), 1)
        out[t] = row
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import json
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", metavar="DATA_ROOT", help="recompute the task statistics from DATA_ROOT")
    a = ap.parse_args(argv)
    if a.measure:
        print(json.dumps(measure_task_stats(a.measure), indent=1))
        return 0
    p = plan()
    for t, v in p["per_task_seed_seconds"].items():
        print(f"{t:5s} {STEPS[t]}  " + ", ".join(f"{k} {s}" for k, s in v.items()))
    print(f"total {p['total_hours']} h for {len(SEEDS)} seeds (upper bound {p['upper_bound_hours']} h; budget "
          f"{HOURS} h): {'fits' if p['fits'] else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
