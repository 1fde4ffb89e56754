"""The task suite's statistics (bench/suite_stats.py) and its aggregation (bench/suite.py) on synthetic records:
known answers for the paired bootstrap, the differences, targets and cost, and the report of partial suites."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.suite_stats import (Interval, bits, comparisons, cost, diffs, paired_bootstrap, targets, to_bits)

GRID = [(w, d) for w in (1.0, 0.75, 0.5, 0.25) for d in (1.0, 0.75, 0.5)]


def _vec(n: int, acc: float, rng: np.random.Generator) -> np.ndarray:
    v = np.zeros(n, dtype=int)
    v[rng.choice(n, int(round(acc * n)), replace=False)] = 1
    return v


def test_identical_vectors_give_a_zero_interval():
    a = np.random.default_rng(0).integers(0, 2, size=(2, 300))
    iv = paired_bootstrap([(a, a.copy())])
    assert (iv.diff, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert iv.tie


def test_a_clear_difference_excludes_zero():
    rng = np.random.default_rng(1)
    b = _vec(1000, 0.70, rng)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:100]] = 1  # A right on 100 more examples: +10 points
    iv = paired_bootstrap([(a, b)])
    assert iv.diff == pytest.approx(10.0)
    assert 7.0 < iv.low < iv.diff < iv.high < 13.0 and not iv.tie


def test_noise_alone_is_a_tie_and_the_rng_is_seeded():
    rng = np.random.default_rng(2)
    a, b = _vec(400, 0.8, rng), _vec(400, 0.8, rng)
    iv = paired_bootstrap([(a, b)], seed=5)
    assert iv.tie and iv == paired_bootstrap([(a, b)], seed=5)


def test_pooling_over_seeds_on_one_test_set():
    """Two seeds on the same examples: the difference is their mean; opposite seeds cancel; more seeds with
    the same difference narrow the interval (per-example means vary less)."""
    rng = np.random.default_rng(3)
    n = 600
    b1, b2 = _vec(n, 0.75, rng), _vec(n, 0.75, rng)
    a1 = b1.copy()
    a1[np.flatnonzero(b1 == 0)[:30]] = 1  # seed 1: +5 points
    a2 = b2.copy()
    a2[np.flatnonzero(b2 == 1)[:30]] = 0  # seed 2: -5 points
    pooled = paired_bootstrap([(np.stack([a1, a2]), np.stack([b1, b2]))])
    assert pooled.diff == pytest.approx(0.0) and pooled.tie
    a2b = b2.copy()
    a2b[np.flatnonzero(b2 == 0)[:30]] = 1  # seed 2: +5 as well
    one = paired_bootstrap([(a1, b1)])
    two = paired_bootstrap([(np.stack([a1, a2b]), np.stack([b1, b2]))])
    assert two.diff == pytest.approx(5.0) and not two.tie
    assert two.high - two.low < one.high - one.low


def test_groups_of_different_test_sets_are_weighted():
    a, b = np.ones(100), np.zeros(100)  # +100 points
    c = np.zeros(50)  # +0 points
    assert paired_bootstrap([(a, b), (c, c)]).diff == pytest.approx(50.0)
    assert paired_bootstrap([(a, b), (c, c)], weights=[3, 1]).diff == pytest.approx(75.0)
    with pytest.raises(ValueError):
        paired_bootstrap([(a, c)])


def test_bits_roundtrip():
    v = np.array([1, 0, 0, 1, 1])
    assert to_bits(v) == "10011" and (bits("10011") == v).all()


# ---- synthetic records -------------------------------------------------------------------------------------------
def record(task: str, seed: int, *, n: int = 200, std: float = 0.85, rel: float = 0.80, nohard: float = 0.84,
           student: float = 0.80, test_set: str | None = None) -> dict:
    """One task-seed record as bench/suite_runs.py writes it: the three grid variants (accuracy falling with size),
    three students, teacher, INT8 teacher; correctness vectors drawn at the given accuracies."""
    rng = np.random.default_rng(seed * 100 + len(task))
    rows = []

    def row(name, kind, w, d, macs, acc, dev):
        v = _vec(n, acc, rng)
        rows.append({"name": name, "kind": kind, "width_mult": w, "depth_mult": d, "macs": macs,
                     "dev_acc": dev, "test_acc": round(100 * v.mean(), 2), "test_correct": to_bits(v)})
    for variant, acc in (("standard", std), ("nohard", nohard), ("released", rel)):
        for w, d in GRID:
            size = w * d
            row(variant, "dynabert", w, d, int(700e6 * size), acc - 0.05 * (1 - size), 100 * (acc - 0.05 * (1 - size)))
    for name, w, d in (("distilbert-d3", 1.0, 0.5), ("tinybert-d6-w0.5", 0.5, 1.0), ("tinybert-d3-w0.5", 0.5, 0.5)):
        row(name, "student", w, d, int(700e6 * w * d) + 1, student, 100 * student)
    row("teacher", "teacher", 1.0, 1.0, int(700e6), 0.9, 90.0)
    row("int8-teacher", "int8", 1.0, 1.0, int(700e6), 0.89, 89.0)
    return {"task": task, "seed": seed, "test_set": test_set or task, "complete": True, "rows": rows,
            "seconds": {"teacher": 100.0, "rewire": 5.0, "stage1": 120.0, "stage2_standard": 240.0,
                        "stage2_nohard": 240.0, "stage2_released": 200.0,
                        "students": {"distilbert-d3": 60.0, "tinybert-d6-w0.5": 70.0, "tinybert-d3-w0.5": 80.0}}}


def test_comparisons_pair_each_student_with_the_largest_point_no_larger():
    c = comparisons(record("sst2", 42))
    (p, s), = c["dynabert <= distilbert-d3 - distilbert-d3"]
    assert (p["width_mult"], p["depth_mult"]) == (1.0, 0.5) and p["macs"] <= s["macs"]
    (p, s), = c["dynabert <= tinybert-d3-w0.5 - tinybert-d3-w0.5"]
    assert p["macs"] <= s["macs"] and (p["width_mult"], p["depth_mult"]) in {(0.5, 0.5), (0.75, 0.5)}
    assert len(c["standard - released (grid mean)"]) == 12 and len(c["hard - nohard w1 d1"]) == 1
    assert len(c["nohard - released (grid mean)"]) == 12 and "nohard - released w1 d1" not in c
    assert "standard w0.25 d0.5 - distilbert-d3" not in c  # no student is as small as (0.25, 0.5)


def test_diffs_cost_and_targets_on_a_synthetic_suite():
    recs = [record(t, s, test_set=f"bbc-s{s}" if t == "bbc" else None)
            for t in ("sst2", "mr", "bbc") for s in (42, 43)]
    rows = diffs(recs, n_resamples=300)
    by = {(r["task"], r["name"]): r for r in rows}
    gm = by[("all", "standard - released (grid mean)")]
    assert gm["dev_diff"] == pytest.approx(5.0) and gm["n_tasks"] == 3
    assert gm["test_ci_low"] <= gm["test_diff"] <= gm["test_ci_high"]
    assert {r["task"] for r in rows} == {"sst2", "mr", "bbc", "all"}
    assert by[("bbc", "hard - nohard (grid mean)")]["n_pairs"] == 24
    # standard - released splits into the lr and selection alone (nohard - released) and the hard-label term
    split = by[("all", "nohard - released (grid mean)")]["dev_diff"] + by[("all", "hard - nohard (grid mean)")]["dev_diff"]
    assert split == pytest.approx(gm["dev_diff"], abs=0.011)
    c = cost(recs)
    assert c["dynabert_seconds_per_size"] == pytest.approx(30.0)
    assert c["ratio"]["distilbert-d3"] == pytest.approx(0.5)
    t = targets(recs, rows, c, n_tasks=6)
    assert t[0]["met"] is False  # 3 tasks at +5 dev: below "5 of 6"
    assert all(x["met"] is not None for x in t)
    assert t[-1]["met"] is True  # 30 s per size vs 60, 70, 80 s per student: every ratio <= 0.5
    assert cost(recs[:1] + [{**recs[1], "seconds": {**recs[1]["seconds"], "stage1": 600.0}}])["ratio"][
        "distilbert-d3"] > 0.5


def test_report_of_a_partial_suite(tmp_path):
    """The aggregation reads whatever partial files exist and names the missing task-seeds."""
    from bench import suite
    for t, s in (("sst2", 42), ("mr", 42), ("mr", 43)):
        d = tmp_path / f"{t}-s{s}"
        d.mkdir()
        (d / suite.PARTIAL).write_text(json.dumps(record(t, s)))
    (tmp_path / "trec-s42").mkdir()  # started, no partial file
    result, md = suite.aggregate(tmp_path, tasks=("sst2", "mr", "trec"), seeds=(42, 43),
                                 steps={"sst2": {"teacher": 5, "stage": 3}}, n_resamples=200)
    assert result["complete"] == ["sst2-s42", "mr-s42", "mr-s43"]
    assert set(result["missing"]) == {"sst2-s43", "trec-s42", "trec-s43"}
    for key in ("tasks", "seeds", "steps_per_stage", "rows", "diffs", "cost"):
        assert key in result
    assert set(result["cost"]) >= {"dynabert_seconds_per_size", "student_seconds"}
    r = result["rows"][0]
    assert set(r) >= {"task", "seed", "name", "width_mult", "depth_mult", "macs", "dev_acc", "test_acc"}
    assert "test_correct" not in r
    d = result["diffs"][0]
    assert set(d) >= {"task", "name", "dev_diff", "test_diff", "test_ci_low", "test_ci_high"}
    assert "complete: 3 of 6 task-seeds" in md
    assert "tie" in md
    assert "provisional: 2 of 3 tasks complete" in md  # trec has no complete seed: targets over 2 of 3 tasks
    assert "trec-s42 (started)" in md


def test_interval_tie_property():
    assert Interval(0.1, -0.2, 0.4).tie and not Interval(1.0, 0.2, 2.0).tie


def test_majority_class_is_read_from_each_task_seeds_data(tmp_path):
    """The report names each task's majority-class accuracy (from the data the standard run loaded) and flags a
    task whose teacher is within a point of it; a task-seed whose data is gone is left out, not an error."""
    from bench import suite
    data = tmp_path / "data" / "pairs"
    data.mkdir(parents=True)
    for split, labels in (("train", [1] * 6 + [0] * 4), ("dev", [1] * 9 + [0] * 1), ("test", [1] * 7 + [0] * 3)):
        (data / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(f"s{i} w\t{y}\n" for i, y in
                                                                       enumerate(labels)))
    runs = tmp_path / "runs"
    for task, seed in (("sst2", 42), ("mr", 42)):
        d = runs / f"{task}-s{seed}"
        (d / "standard").mkdir(parents=True)
        (d / suite.PARTIAL).write_text(json.dumps(record(task, seed)))
    # sst2's run loaded the pairs folder (dev majority 90.0 = its synthetic teacher's 90.0); mr's data is gone
    (runs / "sst2-s42" / "standard" / "run.json").write_text(json.dumps({"task_spec": str(data), "seed": 42}))
    (runs / "mr-s42" / "standard" / "run.json").write_text(json.dumps({"task_spec": str(tmp_path / "gone"),
                                                                       "seed": 42}))
    result, md = suite.aggregate(runs, tasks=("sst2", "mr"), seeds=(42,), steps={}, n_resamples=100)
    assert result["majority"] == {"sst2": {"dev": 90.0, "test": 70.0}}
    assert "Majority class (always the most frequent label): dev 90.00, test 70.00." in md
    # the synthetic grids' dev figures: standard 78.75-85, nohard 77.75-84, released 73.75-80: all below 90
    assert "Grid points within 1 dev point of it (they predict about one class), summed over seeds: standard 12 of " \
           "12, nohard 12 of 12, released 12 of 12." in md
    from bench.suite_report import stuck_points
    result["majority"]["sst2"]["dev"] = 70.0
    assert stuck_points(result, "sst2") == {"standard": (0, 12), "nohard": (0, 12), "released": (0, 12)}
    result["majority"]["sst2"]["dev"] = 80.5  # every released point and the lower ones of the others count
    stuck = stuck_points(result, "sst2")
    assert stuck["released"] == (12, 12) and 0 < stuck["nohard"][0] < 12 and stuck["standard"][0] < stuck["nohard"][0]
    assert "Learned little at this budget: sst2 (teacher dev 90.00, majority class 90.00)" in md
    assert "mr (teacher" not in md


def test_per_seed_dev_differences_average_to_the_pooled_ones(tmp_path):
    """The report's per-seed dev table: with every task at both seeds, the seeds' mean is the pooled 'all' dev
    figure of bench/suite_stats.py (the same pairs, per seed)."""
    from bench import suite
    for t in ("sst2", "mr"):
        for s, std in ((42, 0.85), (43, 0.80)):
            d = tmp_path / f"{t}-s{s}"
            d.mkdir()
            rec = record(t, s, std=std)
            for row in rec["rows"]:  # dev figures that differ by seed and task, so a wrong pairing shows
                row["dev_acc"] += (s - 42) * 1.5 + len(t) * 0.25 * (row["name"] == "standard")
            (d / suite.PARTIAL).write_text(json.dumps(rec))
    result, md = suite.aggregate(tmp_path, tasks=("sst2", "mr"), seeds=(42, 43), steps={}, n_resamples=100)
    per_seed = json.loads(json.dumps(result))["seed_dev_diffs"]  # as suite.json holds it
    pooled = {r["name"]: r["dev_diff"] for r in result["diffs"] if r["task"] == "all"}
    assert set(per_seed) == {n for n in pooled if "grid mean" in n or n.startswith("dynabert <=")}
    for name, by_seed in per_seed.items():
        assert set(by_seed) == {"42", "43"}
        assert (by_seed["42"] + by_seed["43"]) / 2 == pytest.approx(pooled[name], abs=0.006), name
    assert per_seed["hard - nohard (grid mean)"]["42"] != pytest.approx(per_seed["hard - nohard (grid mean)"]["43"])
    assert "| hard - nohard (grid mean) | " in md and "seed 43 |" in md


def test_training_changes_between_the_commits_task_seeds_were_trained_at():
    """Task-seeds trained at two commits: the report names the training-source files that differ (here two commits
    of this repository that differ only in the model card's code); one commit or an unknown one: None."""
    import subprocess
    from bench.suite import training_changes
    a, b = "54c2cddcf566fc14ad166a14d5e0c09c4214af69", "6bfbfc1b1e"
    assert training_changes([{"train_sources_commit": a}, {"train_sources_commit": a}]) is None
    assert training_changes([{"train_sources_commit": a}, {"train_sources_commit": "f" * 40}]) is None
    if subprocess.run(["git", "cat-file", "-e", f"{a}^{{commit}}"], capture_output=True).returncode:
        pytest.skip("a shallow clone: the suite's training commits are not in this history")
    assert training_changes([{"train_sources_commit": b}, {"train_sources_commit": a}]) == [
        "elastic/export/model_card.py"]
