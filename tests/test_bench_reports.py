"""Benchmark report helpers."""
from __future__ import annotations


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
    from elastic.model.config import SubnetConfig
    from tests.conftest import TINY
    from tests.helpers_search import make_tiny_run

    run = make_tiny_run(tmp_path)
    row = {"name": "x", "recipe": "tinybert", "scenario": "cpu-eager-t1-b1-s16",
           "config_json": SubnetConfig.full(TINY).to_json()}
    p = paired_latency(run, row, "stage2", SubnetConfig.uniform(TINY, 0.25, 0.5).to_json(), "cpu-eager-t1-b1-s16",
                       min_rounds=6, min_time_s=0.0)
    assert set(p) == {"baseline", "dynabert", "ratio", "ratio_iqr", "rounds", "settle"} and p["rounds"] == 6
    assert p["settle"] == 3  # paired_ratio's default: each side timed warm
    assert p["ratio"] > 0 and p["ratio_iqr"] >= 0 and p["baseline"] > 0 and p["dynabert"] > 0
