"""Scenario validation, latency records, the disk cache, drift flagging and latency.csv (tiny random BERT)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import profiling.latency as latency
from elastic.model.config import SubnetConfig
from elastic.model.modeling import ElasticBertForSequenceClassification
from profiling.fingerprint import fingerprint, fingerprint_hash
from profiling.latency import measure, measure_many
from profiling.latency_cache import LatencyCache
from profiling.latency_csv import LATENCY_COLUMNS, read_latency_csv, write_latency_csv
from profiling.scenario import Scenario
from tests.conftest import TINY

ARCH = TINY
FAST = dict(min_run_time_s=0.02, warmup=1)


@pytest.fixture(scope="module")
def model() -> ElasticBertForSequenceClassification:
    torch.manual_seed(0)
    return ElasticBertForSequenceClassification(ARCH, 2).eval()


# ---- scenarios -----------------------------------------------------------------------------------
def test_scenario_key_round_trips():
    for s in (Scenario(), Scenario(runtime="ort-int8", threads=4, batch=32, seq_len=64),
              Scenario(runtime="eager-int8", threads=1, batch=8, seq_len=16)):
        assert Scenario.parse(s.key) == s
    assert Scenario().key == "cpu-eager-t2-b1-s128"


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "threads must be >= 1, got 0"),
    ({"batch": 0}, "batch must be >= 1, got 0"),
    ({"seq_len": 0}, "seq_len must be >= 1"),
    ({"runtime": "tensorrt"}, "runtime must be one of"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_invalid_scenario_gives_one_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Scenario(**kwargs)


def test_parse_rejects_garbage_and_zero_threads():
    with pytest.raises(ValueError, match="is not of the form"):
        Scenario.parse("eager-fast")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        Scenario.parse("cpu-eager-t0-b1-s128")


def test_sequence_longer_than_position_table(model):
    with pytest.raises(ValueError, match="longer than the model's position table \\(64 positions\\)"):
        measure(model, SubnetConfig.full(ARCH), Scenario(seq_len=65), **FAST)


def test_cuda_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no usable GPU"):
        Scenario(device="cuda", seq_len=16).check(ARCH)


# ---- measurement and cache -----------------------------------------------------------------------
def test_measure_record_has_contract_columns(model):
    cfg = SubnetConfig.uniform(ARCH, 0.5, 0.5)
    rec = measure(model, cfg, Scenario(threads=1, batch=2, seq_len=8), **FAST)
    assert set(LATENCY_COLUMNS) <= set(rec)
    assert rec["config_hash"] == cfg.hash and rec["scenario"] == "cpu-eager-t1-b2-s8"
    assert rec["macs"] == rec["macs_fvcore"] > 0
    assert 0 < rec["median_ms"] <= rec["p90_ms"] and rec["n"] >= 1 and rec["iqr_ms"] >= 0
    assert rec["fingerprint"]["threads"] == 1 and rec["fingerprint"]["torch"] == torch.__version__


def test_cache_hit_does_no_timing(model, tmp_path, monkeypatch):
    cache = LatencyCache(tmp_path / "latency_cache.jsonl")
    scen = Scenario(threads=1, batch=1, seq_len=8)
    cfgs = [SubnetConfig.random(ARCH, random.Random(i)) for i in range(3)]
    first = [measure(model, c, scen, cache=cache, count_fvcore=False, **FAST) for c in cfgs]
    assert not any(r["cached"] for r in first)

    def no_timing(*args, **kwargs):
        raise AssertionError("timed a config that is in the cache")

    monkeypatch.setattr(latency, "time_runner", no_timing)
    reopened = LatencyCache(tmp_path / "latency_cache.jsonl")  # from disk, not memory
    again = [measure(model, c, scen, cache=reopened, **FAST) for c in cfgs]
    assert all(r["cached"] for r in again)
    assert [r["median_ms"] for r in again] == [r["median_ms"] for r in first]
    # A different scenario is a miss: it must reach the (failing) timer.
    with pytest.raises(AssertionError, match="timed a config"):
        measure(model, cfgs[0], Scenario(threads=1, batch=2, seq_len=8), cache=reopened, **FAST)


def test_fingerprint_is_part_of_the_key():
    a, b = fingerprint(1), fingerprint(2)
    assert fingerprint_hash(a) != fingerprint_hash(b)
    assert a["logical_cores"] >= 1 and a["cpu"]


def test_measure_many_flags_reference_drift(model, monkeypatch, capsys):
    """The full model is re-timed every k configs; a 20% slower reference flags the block."""
    full_times = iter([10.0, 10.1, 12.0, 12.0])

    def fake_time(fn, *, threads, min_run_time_s, warmup, **kw):
        return {"median_ms": 1.0, "p90_ms": 1.0, "iqr_ms": 0.0, "n": 5}

    def fake_measure(model_, cfg, scenario, **kw):
        rec = real_measure(model_, cfg, scenario, **kw)
        if cfg == SubnetConfig.full(ARCH) and kw.get("cache") is None:
            rec["median_ms"] = next(full_times)
        return rec

    real_measure = latency.measure
    monkeypatch.setattr(latency, "time_runner", fake_time)
    monkeypatch.setattr(latency, "measure", fake_measure)
    cfgs = [SubnetConfig.random(ARCH, random.Random(i)) for i in range(6)]
    recs = measure_many(model, cfgs, Scenario(threads=1, batch=1, seq_len=8), None, reference_every=2,
                        progress=False, count_fvcore=False)
    assert [r["drift_flagged"] for r in recs] == [False, False, True, True, True, True]
    assert recs[0]["reference_drift_pct"] == pytest.approx(1.0)
    assert recs[2]["reference_drift_pct"] == pytest.approx(20.0)
    # Each record's reference is the mean of the full-model timings taken around it.
    assert recs[0]["reference_ms"] == pytest.approx((10.0 + 10.1) / 2)
    assert recs[2]["reference_ms"] == pytest.approx((10.1 + 12.0) / 2)
    captured = capsys.readouterr()
    assert "drifted 20.0%" in captured.out + captured.err


def test_latency_csv_round_trip(model, tmp_path):
    recs = [measure(model, c, Scenario(threads=1, batch=1, seq_len=8), **FAST)
            for c in (SubnetConfig.full(ARCH), SubnetConfig.uniform(ARCH, 0.25, 0.5))]
    path = write_latency_csv(recs, tmp_path / "latency.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[:len(LATENCY_COLUMNS)] == list(LATENCY_COLUMNS)
    back = read_latency_csv(path)
    assert [r["config_hash"] for r in back] == [r["config_hash"] for r in recs]
    assert back[1]["macs"] == recs[1]["macs"] and back[1]["median_ms"] == pytest.approx(recs[1]["median_ms"])
    assert back[0]["fingerprint"] == recs[0]["fingerprint"]
    assert SubnetConfig.from_json(back[1]["config_json"]) == SubnetConfig.uniform(ARCH, 0.25, 0.5)


def test_read_latency_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dynabert profile"):
        read_latency_csv(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("config_hash,median_ms\nabc,1.0\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_latency_csv(tmp_path / "bad.csv")


# ---- the CLI -------------------------------------------------------------------------------------
def test_cli_profile_writes_artifacts_the_dashboard_reads(model, tmp_path, capsys, monkeypatch):
    from app.dashboard.artifacts import load_csv, load_predictor
    from app.cli.main import main
    from elastic.model.weights import save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(model, run / "stage1")
    # One thread: on a busy machine two spinning OpenMP threads can make a 1 ms model take 1 s.
    argv = ["profile", "--run-dir", str(run), "--threads", "1", "--max-length", "8", "--n-random", "6", "--n-heldout", "4",
            "--min-run-time", "0.01", "--reference-every", "5", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stage1" in out and "MAPE" in out and "median ms" in out
    df = load_csv(run / "latency.csv")
    assert len(df) == len({c for c in df["config_hash"]}) >= 12 + 6  # grid + random (+ held-out), no dupes
    assert set(df["scenario"]) == {"cpu-eager-t1-b1-s8"}
    pred = load_predictor(run / "predictor.json")
    assert pred["n_heldout"] == 4 and len(pred["points"]) == 4
    assert pred["timing"] == "interleaved"
    # A second run measures nothing new: every record and every ratio comes from the cache.
    def no_timing(*args, **kwargs):
        raise AssertionError("timed something that is in the cache")

    monkeypatch.setattr(latency, "time_runner", no_timing)
    monkeypatch.setattr(latency, "paired_ratio", no_timing)
    assert main(argv) == 0
    assert load_csv(run / "latency.csv")["median_ms"].tolist() == df["median_ms"].tolist()


def test_cli_profile_blocked_timing(model, tmp_path):
    from app.cli.main import main
    from elastic.model.weights import save_checkpoint
    from profiling.predictor import LatencyPredictor

    save_checkpoint(model, tmp_path / "stage2")
    assert main(["profile", "--run-dir", str(tmp_path), "--threads", "1", "--max-length", "8", "--n-random", "2",
                 "--n-heldout", "3", "--min-run-time", "0.01", "--timing", "blocked", "--no-progress"]) == 0
    pred = LatencyPredictor.load(tmp_path / "predictor.json")
    assert pred.report["timing"] == "blocked" and pred.scenario == "cpu-eager-t1-b1-s8"
    assert (tmp_path / "predictors" / "cpu-eager-t1-b1-s8.json").exists()


def test_cli_profile_bad_scenario_is_one_line(tmp_path, capsys):
    from app.cli.main import main

    assert main(["profile", "--run-dir", str(tmp_path), "--scenario", "cpu-eager-t0-b1-s16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: scenario threads must be >= 1") and "Traceback" not in err


def test_paired_ratio_interleaves_and_recovers_a_known_ratio():
    import time as _time

    from profiling.timing import paired_ratio

    order: list[str] = []

    def a():
        order.append("a")
        _time.sleep(0.02)  # long enough that a loaded scheduler's wake-up delay (a few ms) cannot blur 1:3

    def b():
        order.append("b")
        _time.sleep(0.06)

    res = paired_ratio(a, b, threads=1, min_time_s=0.0, min_rounds=6, warmup=0, settle=0)
    assert res["rounds"] == 6
    assert order[:4] == ["a", "b", "b", "a"]  # alternating order within rounds
    assert 0.2 < res["ratio"] < 0.5 and res["median_ms"] < res["ref_median_ms"]


def test_paired_ratio_settles_each_side_before_timing_it():
    """A side whose first call after the other side is slow (its weights evicted from cache) is timed warm."""
    import time as _time

    from profiling.timing import paired_ratio

    order: list[str] = []

    def side(name: str, warm_s: float, cold_s: float):
        def call():
            _time.sleep(cold_s if order and order[-1] != name else warm_s)
            order.append(name)
        return call

    a, b = side("a", 0.01, 0.05), side("b", 0.03, 0.03)
    warm = paired_ratio(a, b, threads=1, min_time_s=0.0, min_rounds=4, warmup=0, settle=1)
    assert warm["settle"] == 1 and warm["rounds"] == 4
    assert order[:8] == ["a", "a", "b", "b", "b", "b", "a", "a"]  # settle call, timed call; B A next round
    assert 0.2 < warm["ratio"] < 0.5  # 10 ms / 30 ms
    order.clear()
    cold = paired_ratio(a, b, threads=1, min_time_s=0.0, min_rounds=4, warmup=0, settle=0)
    # half of a's timed calls follow one of b (50 ms / 30 ms), half its own call of the round before (10 / 30)
    assert cold["ratio"] > 2 * warm["ratio"]
    with pytest.raises(ValueError, match="settle"):
        paired_ratio(a, b, threads=1, settle=-1)


def test_measure_front_puts_every_config_on_the_full_models_clock(model, monkeypatch):
    """Each config is a paired ratio to the full model; all share the full model's median over every round."""
    import time as _time

    full, small = SubnetConfig.full(ARCH), SubnetConfig.uniform(ARCH, 0.5, 0.5)
    calls: list[str] = []

    def fake_runner(m, cfg, scenario, workdir=None):
        name, secs = ("full", 0.03) if cfg.hash == full.hash else ("small", 0.01)

        def run():
            calls.append(name)
            _time.sleep(secs)
        return None, run

    monkeypatch.setattr(latency, "runner_for", fake_runner)
    res = latency.measure_front(model, [small, full, small], Scenario.parse("cpu-eager-t1-b1-s16"), min_time_s=0.0,
                                min_rounds=4, progress=False)
    assert res["configs_timed"] == 2 and set(res["latency_ms"]) == {small.hash, full.hash}  # duplicates timed once
    assert 0.2 < res["ratio"][small.hash] < 0.5 and 0.8 < res["ratio"][full.hash] < 1.25
    assert 25 < res["full_model_ms"] < 60
    for h, r in res["ratio"].items():
        assert res["latency_ms"][h] == pytest.approx(r * res["full_model_ms"])
    assert {"small", "full"} <= set(calls[:12]) and res["fingerprint"]["threads"] == 1


def test_profile_exports_each_config_once_for_every_ort_variant(model, tmp_path, monkeypatch):
    """fp32 and INT8 ORT, blocked and interleaved timing: one ONNX export per distinct config (plus none for the
    full model's reference runners), deleted when the profile ends."""
    import pandas as pd

    import profiling.onnx_export as onnx_export
    from app.cli.main import main
    from elastic.model.weights import save_checkpoint

    exported: list[str] = []
    real = onnx_export.export_onnx

    def counting(small, path, **kw):
        exported.append(str(path))
        return real(small, path, **kw)

    monkeypatch.setattr(onnx_export, "export_onnx", counting)
    save_checkpoint(model, tmp_path / "stage1")
    assert main(["profile", "--run-dir", str(tmp_path), "--target", "cpu-t1-b1-s8", "--precisions", "fp32,int8",
                 "--runtimes", "ort", "--n-random", "2", "--n-heldout", "2", "--min-run-time", "0.01",
                 "--no-progress"]) == 0
    n_configs = len(set(pd.read_csv(tmp_path / "latency.csv")["config_hash"]))
    assert len(exported) == len(set(exported)) == n_configs
    assert not any(Path(p).exists() for p in exported)
