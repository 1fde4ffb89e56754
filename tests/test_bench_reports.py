"""Benchmark report helpers: the multi-seed baselines aggregation."""
from __future__ import annotations

import pytest

from bench.baselines_seeds import aggregate


def _row(name: str, student: float, dyna: float, sdev: float = 80.0, ddev: float = 81.0) -> dict:
    return {"name": name, "recipe": "distilbert", "dynabert_point": [1.0, 0.5], "macs": 10, "test_acc": student,
            "dynabert_test_acc": dyna, "dev_acc": sdev, "dynabert_dev_acc": ddev}


def test_aggregate_means_worst_seed_and_target_flags() -> None:
    a = ("s1", {"rows": [_row("d3", 85.0, 87.0), _row("t3", 86.0, 86.5), _row("only_in_s1", 80.0, 90.0)]})
    b = ("s2", {"rows": [_row("d3", 86.0, 86.5, 82.0, 81.0), _row("t3", 85.0, 86.5)]})
    rows = {r["name"]: r for r in aggregate([a, b])}
    assert set(rows) == {"d3", "t3"}  # a student missing from one seed is not averaged over fewer seeds
    d3 = rows["d3"]
    assert [p["diff_test"] for p in d3["per_seed"]] == [2.0, 0.5]
    assert d3["mean_diff_test"] == pytest.approx(1.25) and d3["min_diff_test"] == 0.5
    assert d3["mean_diff_dev"] == pytest.approx(0.0)
    assert d3["target_met_on_mean"] and not d3["target_met_every_seed"]
    t3 = rows["t3"]
    assert t3["mean_diff_test"] == pytest.approx(1.0) and t3["target_met_on_mean"]
    assert not t3["target_met_every_seed"]  # 0.5 in s1


def test_baselines_bench_uses_only_a_front_of_the_compared_weights(tmp_path, capsys) -> None:
    import json

    from bench.baselines import front_of_stage

    (tmp_path / "stage2").mkdir()
    (tmp_path / "stage2" / "done.json").write_text(json.dumps({"steps": 1, "finished_at": "2026-05-05T00:00:00"}))
    assert front_of_stage(tmp_path, "stage2") is None  # no pareto.csv
    (tmp_path / "pareto.csv").write_text("trial,macs,dev_metric,test_metric,latency_measured_ms\n3,10,80.0,81.0,1.5\n")
    for recorded in (None, "stage2@2026-01-01T00:00:00:", "stage1@2026-05-05T00:00:00:"):
        (tmp_path / "search.json").write_text(json.dumps({"scenario": "s", "checkpoint": recorded}))
        assert front_of_stage(tmp_path, "stage2") is None, recorded  # unknown, older or other-stage weights
        assert "pareto.csv is not used" in capsys.readouterr().err
    (tmp_path / "search.json").write_text(json.dumps({"scenario": "s", "checkpoint": "stage2@2026-05-05T00:00:00:"}))
    front = front_of_stage(tmp_path, "stage2")
    assert front is not None and list(front.trial) == [3]


def test_baselines_paired_latency_reports_ratio_iqr_and_rounds(tmp_path) -> None:
    from bench.baselines import paired_latency
    from elastic.config import SubnetConfig
    from tests.conftest import TINY
    from tests.helpers_search import make_tiny_run

    run = make_tiny_run(tmp_path)
    row = {"name": "x", "recipe": "tinybert", "scenario": "cpu-eager-t1-b1-s16",
           "config_json": SubnetConfig.full(TINY).to_json()}
    p = paired_latency(run, row, "stage2", SubnetConfig.uniform(TINY, 0.25, 0.5).to_json(), "cpu-eager-t1-b1-s16",
                       min_rounds=6, min_time_s=0.0)
    assert set(p) == {"baseline", "dynabert", "ratio", "ratio_iqr", "rounds"} and p["rounds"] == 6
    assert p["ratio"] > 0 and p["ratio_iqr"] >= 0 and p["baseline"] > 0 and p["dynabert"] > 0
