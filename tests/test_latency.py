"""Scenario validation, latency records, the disk cache, drift flagging and latency.csv (tiny random BERT)."""
from __future__ import annotations

import random

import pytest
import torch

import profiling.latency as latency
from elastic.config import BertArch, SubnetConfig
from elastic.model import ElasticBertForSequenceClassification
from profiling.fingerprint import fingerprint, fingerprint_hash
from profiling.latency import (LATENCY_COLUMNS, LatencyCache, measure, measure_many, read_latency_csv,
                               write_latency_csv)
from profiling.scenario import Scenario

ARCH = BertArch(num_layers=4, hidden_size=32, num_heads=4, head_dim=8, intermediate_size=64,
                vocab_size=99, max_position_embeddings=64)
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

    def fake_time(fn, *, threads, min_run_time_s, warmup):
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
