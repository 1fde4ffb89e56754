"""The task suite's statistics (bench/suite.py): paired bootstrap over test examples, the differences the suite
reports, the issue's targets (decided on dev, reported on test) and the cost per deployable size.

Pure functions over the per-task-seed records (`<run>/suite_rows.json`, written by bench/suite_runs.py): numpy
only, no torch, so the aggregation and its tests run in a second.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

N_RESAMPLES = 2000
LEVEL = 0.95
GRID_POINTS = 12
VARIANTS = ("standard", "nohard", "released")


@dataclass(frozen=True)
class Interval:
    """A difference in percentage points and its bootstrap interval."""

    diff: float
    low: float
    high: float

    @property
    def tie(self) -> bool:
        """The interval covers 0."""
        return self.low <= 0.0 <= self.high


def paired_bootstrap(groups: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float] | None = None, *,
                     n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """Difference of accuracy A - B (points) with a percentile interval, resampling test examples.

    Args:
        groups: one (a, b) per test set: 0/1 correctness arrays of shape (k, N) (or (N,)), row i of `a` paired
            with row i of `b` on the same N examples (k = the seeds and/or grid points sharing that test set).
            Pairs on one test set are pooled per example (the mean difference over the k rows), and examples
            are resampled with replacement, the same indices for every row: an example is the unit.
        weights: of each group in the pooled difference (default: its k, i.e. every pair weighs the same).
        n_resamples / seed / level: bootstrap resamples, the rng's seed, the interval's coverage.

    Returns:
        `Interval` (diff = the observed pooled difference; low/high = percentiles of the resampled ones).
    """
    rng = np.random.default_rng(seed)
    diffs, ws = [], []
    for i, (a, b) in enumerate(groups):
        a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
        if a.shape != b.shape or a.shape[1] == 0:
            raise ValueError(f"group {i}: a {a.shape} and b {b.shape} must pair the same non-empty examples")
        diffs.append(100.0 * (a - b).mean(axis=0))
        ws.append(float(a.shape[0]) if weights is None else float(weights[i]))
    if not diffs:
        raise ValueError("no groups to compare")
    w = np.asarray(ws) / sum(ws)
    point = float(sum(wi * d.mean() for wi, d in zip(w, diffs)))
    boot = np.zeros(n_resamples)
    for wi, d in zip(w, diffs):
        idx = rng.integers(0, len(d), size=(n_resamples, len(d)))
        boot += wi * d[idx].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Interval(round(point, 4), round(float(low), 4), round(float(high), 4))


def bits(s: str) -> np.ndarray:
    """A correctness vector stored as a string of 0/1."""
    return np.frombuffer(s.encode("ascii"), dtype=np.uint8) - ord("0")


def to_bits(correct: Iterable[bool | int]) -> str:
    """The inverse of `bits`."""
    return "".join("1" if c else "0" for c in correct)


# ---- selecting rows of the records -----------------------------------------------------------------
def grid_row(rec: Mapping[str, Any], variant: str, w: float, d: float) -> dict[str, Any] | None:
    return next((r for r in rec["rows"] if r["name"] == variant and r["width_mult"] == w and r["depth_mult"] == d),
                None)


def named(rec: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in rec["rows"] if r["name"] == name), None)


def students(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rec["rows"] if r.get("kind") == "student"]


def points(rec: Mapping[str, Any], variant: str = "standard") -> list[dict[str, Any]]:
    return [r for r in rec["rows"] if r["name"] == variant]


def point_no_larger(rec: Mapping[str, Any], macs: int, variant: str = "standard") -> dict[str, Any] | None:
    """The grid point of the largest MACs not above `macs` (chosen before any accuracy is seen)."""
    fit = [r for r in points(rec, variant) if r["macs"] <= macs]
    return max(fit, key=lambda r: r["macs"]) if fit else None


def student_no_larger(rec: Mapping[str, Any], macs: int) -> dict[str, Any] | None:
    fit = [r for r in students(rec) if r["macs"] <= macs]
    return max(fit, key=lambda r: r["macs"]) if fit else None


# ---- differences -----------------------------------------------------------------------------------
Pair = tuple[dict[str, Any], dict[str, Any]]  # (row A, row B) of one record


def comparisons(rec: Mapping[str, Any]) -> dict[str, list[Pair]]:
    """Every difference the suite reports, as the (A, B) row pairs of one task-seed record."""
    out: dict[str, list[Pair]] = defaultdict(list)
    for a_name, b_name, label in (("standard", "released", "standard - released"),
                                  ("standard", "nohard", "hard - nohard")):
        for a in points(rec, a_name):
            b = grid_row(rec, b_name, a["width_mult"], a["depth_mult"])
            if b is not None:
                out[f"{label} (grid mean)"].append((a, b))
                out[f"{label} w{a['width_mult']:g} d{a['depth_mult']:g}"].append((a, b))
    # the released stage 2 at the standard lr and selection, no hard-label term (the "nohard" variant) against the
    # released one: what the lr and the selection give alone (standard - released = this + hard - nohard)
    for a in points(rec, "nohard"):
        b = grid_row(rec, "released", a["width_mult"], a["depth_mult"])
        if b is not None:
            out["nohard - released (grid mean)"].append((a, b))
    for s in students(rec):
        p = point_no_larger(rec, s["macs"])
        if p is not None:
            out[f"dynabert <= {s['name']} - {s['name']}"].append((p, s))
    for p in points(rec):
        s = student_no_larger(rec, p["macs"])
        if s is not None:
            out[f"standard w{p['width_mult']:g} d{p['depth_mult']:g} - {s['name']}"].append((p, s))
    return dict(out)


def _groups(pairs: Iterable[tuple[str, Pair]]) -> list[tuple[np.ndarray, np.ndarray]]:
    by_set: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for test_set, (a, b) in pairs:
        by_set[test_set][0].append(bits(a["test_correct"]))
        by_set[test_set][1].append(bits(b["test_correct"]))
    return [(np.stack(a), np.stack(b)) for a, b in by_set.values()]


def diffs(records: Sequence[Mapping[str, Any]], *, n_resamples: int = N_RESAMPLES, seed: int = 0
          ) -> list[dict[str, Any]]:
    """Per task (pooled over its seeds) and over all tasks (each task weighing the same): dev_diff (mean of the
    dev differences), test_diff and its paired-bootstrap 95 % interval, `tie` when the interval covers 0."""
    per_task: dict[str, dict[str, list[tuple[str, Pair]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for name, pairs in comparisons(rec).items():
            per_task[name][rec["task"]] += [(rec["test_set"], p) for p in pairs]
    out = []
    for name, tasks in per_task.items():
        all_groups, all_w, task_dev = [], [], []
        for task, pairs in tasks.items():
            groups = _groups(pairs)
            iv = paired_bootstrap(groups, n_resamples=n_resamples, seed=seed)
            dev = float(np.mean([a["dev_acc"] - b["dev_acc"] for _, (a, b) in pairs]))
            out.append(_diff_row(task, name, dev, iv, len(pairs)))
            task_dev.append(dev)
            all_groups += groups
            all_w += [g[0].shape[0] / len(pairs) / len(tasks) for g in groups]
        iv = paired_bootstrap(all_groups, all_w, n_resamples=n_resamples, seed=seed)
        out.append(_diff_row("all", name, float(np.mean(task_dev)), iv, sum(len(p) for p in tasks.values()),
                             n_tasks=len(tasks)))
    return out


def seed_dev(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The summary differences' dev figure per seed (grid means and each student against the DynaBERT point of no
    larger MACs), each a mean over the tasks that seed completed, from the same pairs as `diffs`: the seeds' spread
    is the training noise the test intervals leave out. Keys of the inner dict are the seeds as strings (JSON)."""
    cells: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for rec in records:
        for name, pairs in comparisons(rec).items():
            if "grid mean" in name or name.startswith("dynabert <="):
                dev = [a["dev_acc"] - b["dev_acc"] for a, b in pairs]
                cells[(name, rec["seed"])][rec["task"]] = float(np.mean(dev))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (name, seed), tasks in sorted(cells.items(), key=lambda kv: kv[0][1]):
        out[name][str(seed)] = round(float(np.mean(list(tasks.values()))), 2)
    return dict(out)


def _diff_row(task: str, name: str, dev: float, iv: Interval, n_pairs: int, n_tasks: int = 1) -> dict[str, Any]:
    return {"task": task, "name": name, "dev_diff": round(dev, 2), "test_diff": round(iv.diff, 2),
            "test_ci_low": round(iv.low, 2), "test_ci_high": round(iv.high, 2), "tie": iv.tie, "n_pairs": n_pairs,
            "n_tasks": n_tasks}


# ---- cost per deployable size ------------------------------------------------------------------------
def cost(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Training seconds of one DynaBERT run (stage 1 + the standard stage 2; the teacher and its rewiring, which
    the students need as well, excluded) over the 12 grid sizes it serves, against one student of each size:
    means over the complete task-seeds."""
    if not records:
        return {"dynabert_seconds_per_size": None, "student_seconds": {}, "ratio": {}, "teacher": "excluded"}
    per = [(r["seconds"]["stage1"] + r["seconds"]["stage2_standard"]) / GRID_POINTS for r in records]
    studs: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for name, s in r["seconds"]["students"].items():
            studs[name].append(s)
    d = float(np.mean(per))
    student_s = {k: round(float(np.mean(v)), 1) for k, v in studs.items()}
    by_task: dict[str, list[float]] = defaultdict(list)
    for r, p in zip(records, per):
        by_task[r["task"]].append(p)
    return {"dynabert_seconds_per_size": round(d, 1), "student_seconds": student_s,
            "ratio": {k: round(d / v, 3) for k, v in student_s.items() if v},
            "dynabert_seconds_per_size_by_task": {t: round(float(np.mean(v)), 1) for t, v in by_task.items()},
            "teacher_seconds": round(float(np.mean([r["seconds"]["teacher"] for r in records])), 1),
            "teacher": "excluded (the students distil from the same teacher)", "sizes_served": GRID_POINTS,
            "dynabert_parts": "stage1 + stage2 (standard)"}


# ---- the targets (decided on dev, reported on test) -----------------------------------------------
def targets(records: Sequence[Mapping[str, Any]], diff_rows: Sequence[Mapping[str, Any]], cost_info: Mapping[str, Any],
            n_tasks: int) -> list[dict[str, Any]]:
    """Issue 35's targets, each `met` True/False (None: no complete task-seed yet), with its figures."""
    by = {(r["task"], r["name"]): r for r in diff_rows}
    tasks = sorted({r["task"] for r in records})
    need = max(1, round(5 * n_tasks / 6))  # "at least 5 of 6"
    out: list[dict[str, Any]] = []
    gm = [(t, by[(t, "standard - released (grid mean)")]) for t in tasks if (t, "standard - released (grid mean)") in by]
    ok = [t for t, r in gm if r["dev_diff"] >= 0.5]
    out.append({"target": f"standard vs released recipe at equal steps: grid mean dev >= +0.5 on at least {need} of "
                          f"{n_tasks} tasks", "met": None if not gm else len(ok) >= need,
                "figures": {t: r["dev_diff"] for t, r in gm}, "figures_are": "dev: grid mean difference",
                "test": {t: [r["test_diff"], r["test_ci_low"], r["test_ci_high"]] for t, r in gm}})
    names = sorted({s["name"] for rec in records for s in students(rec)})
    for s in names:
        key = f"dynabert <= {s} - {s}"
        rows = [r for r in diff_rows if r["name"] == key]
        allrow = by.get(("all", key))
        below = [r["task"] for r in rows if r["test_ci_high"] < 0]
        out.append({"target": f"DynaBERT at no larger MACs vs {s}: mean over tasks and seeds >= 0 on dev; on test no "
                              "interval entirely below 0",
                    "met": None if allrow is None else allrow["dev_diff"] >= 0 and not below,
                    "figures": None if allrow is None else {"all tasks": allrow["dev_diff"]},
                    "figures_are": "dev: mean difference over tasks and seeds",
                    "test": {r["task"]: [r["test_diff"], r["test_ci_low"], r["test_ci_high"]] for r in rows},
                    "intervals_below_0": below})
    gaps: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        p, t = grid_row(rec, "standard", 0.25, 0.5), named(rec, "teacher")
        if p is not None and t is not None:
            gaps[rec["task"]].append(p["dev_acc"] - t["dev_acc"])
    gap = {t: round(float(np.mean(v)), 2) for t, v in gaps.items()}
    out.append({"target": f"(0.25, 0.5) within 3.0 dev points of the teacher on at least {need} of {n_tasks} tasks",
                "met": None if not gap else sum(v >= -3.0 for v in gap.values()) >= need, "figures": gap,
                "figures_are": "dev: (0.25, 0.5) - teacher, mean over seeds"})
    ratio = cost_info.get("ratio") or {}
    out.append({"target": "cost: one DynaBERT run per served grid size <= 0.5x one student's training seconds",
                "met": None if not ratio else all(v <= 0.5 for v in ratio.values()), "figures": ratio,
                "figures_are": "seconds per DynaBERT size / seconds of the student", "signed": False})
    for t in out:  # over fewer tasks than the suite's: a provisional verdict
        t["tasks_complete"], t["tasks_planned"] = len(tasks), n_tasks
    return out
