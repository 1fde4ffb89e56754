"""Latency on accelerators: scenario keys with a dtype, the CPU path of a dtype scenario, synchronization
of the paired timer, the GPU fingerprint, the predictor and the search on a CUDA scenario (predicted, so on
the CPU), and CUDA timing itself (skipped with a reason without CUDA)."""
from __future__ import annotations

import json

import pytest
import torch

import profiling.latency as latency
import profiling.timing as timing
from elastic.model.config import SubnetConfig, grid
from profiling.fingerprint import fingerprint
from profiling.latency import measure
from profiling.timing import paired_ratio, time_runner
from profiling.scenario import Scenario
from tests.conftest import TINY, seeded_tiny

NO_CUDA = not torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False here)")
FAST = dict(min_run_time_s=0.02, warmup=1)


@pytest.mark.parametrize("key, fields", [
    ("cpu-eager-t2-b1-s128", dict(device="cpu", dtype="fp32", threads=2)),  # unchanged: old caches stay valid
    ("cpu-eager-bf16-t2-b1-s128", dict(device="cpu", dtype="bf16", threads=2)),
    ("cuda-eager-fp16-b1-s128", dict(device="cuda", dtype="fp16", batch=1)),
    ("cuda-eager-bf16-b32-s128", dict(device="cuda", dtype="bf16", batch=32)),
    ("cuda-eager-fp32-b1-s64", dict(device="cuda", dtype="fp32", seq_len=64)),
    ("cuda-ort-fp32-b1-s128", dict(device="cuda", runtime="ort")),
])
def test_scenario_keys_with_dtype_round_trip(key, fields):
    sc = Scenario.parse(key)
    assert sc.key == key and all(getattr(sc, k) == v for k, v in fields.items())
    assert Scenario(**{**sc.__dict__, "threads": 8 if sc.device == "cuda" else sc.threads}) == sc  # cuda: 1 thread


@pytest.mark.parametrize("key, message", [
    ("cuda-eager-t2-b1-s128", "a cuda key names its dtype and no threads"),
    ("cuda-eager-fp16-t1-b1-s128", "a cuda key names its dtype and no threads"),
    ("cpu-eager-fp32-t2-b1-s128", "is spelled 'cpu-eager-t2-b1-s128'"),
    ("cpu-ort-fp16-t2-b1-s128", "dtype fp16 needs runtime eager"),
    ("cuda-eager-int4-b1-s128", "is not of the form"),
])
def test_bad_dtype_keys_give_one_clear_message(key, message):
    with pytest.raises(ValueError, match=message):
        Scenario.parse(key)


def test_cpu_bf16_scenario_times_a_bf16_model():
    model = seeded_tiny(TINY, 2)
    sc = Scenario(threads=1, batch=2, seq_len=8, dtype="bf16")
    small, run = latency.runner_for(model, SubnetConfig.uniform(TINY, 0.5, 0.5), sc)
    assert run().dtype == torch.bfloat16
    rec = measure(model, SubnetConfig.uniform(TINY, 0.5, 0.5), sc, **FAST)
    assert rec["scenario"] == "cpu-eager-bf16-t1-b2-s8" and rec["median_ms"] > 0 and "gpu" not in rec["fingerprint"]


def test_paired_timer_synchronizes_around_every_timed_call(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(timing, "synchronize", lambda device: events.append(f"sync:{device}"))
    res = paired_ratio(lambda: events.append("a"), lambda: events.append("b"), threads=1, min_time_s=0,
                       min_rounds=3, warmup=0, settle=0, device="cuda")
    assert res["rounds"] == 3
    # Every call sits between two synchronizations: sync, call, sync (a CUDA launch returns before the GPU is done).
    calls = [i for i, e in enumerate(events) if e in ("a", "b")]
    assert len(calls) == 6 and all(events[i - 1] == events[i + 1] == "sync:cuda" for i in calls)


@pytest.mark.skipif(not NO_CUDA, reason="checks the message of a machine without CUDA")
def test_cuda_timing_without_cuda_is_refused():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        time_runner(lambda: None, threads=1, device="cuda")


def test_profile_flags_build_dtype_scenarios(tmp_path, capsys):
    from app.cli.main import main
    from app.workflow.profile import ProfileOptions, scenarios_for
    opts = ProfileOptions(run_dir=tmp_path, max_length=16, device="cpu", precision="bf16", runtime="eager",
                          threads=1, batch_size=4)
    assert [s.key for s in scenarios_for(opts, {})] == ["cpu-eager-bf16-t1-b4-s16"]
    if NO_CUDA:
        assert main(["profile", "--run-dir", str(tmp_path), "--device", "cuda", "--precision", "fp16"]) == 2
        err = capsys.readouterr().err.strip()
        assert "no CUDA device" in err and "\n" not in err


def test_predictor_and_search_run_unchanged_on_a_cuda_scenario(tmp_path, capsys):
    """A predictor fitted on a CUDA scenario's timings drives the search like a CPU one; the variant's accuracy is
    scored on the GPU it runs on, so without one the search is refused with one message and writes no trials."""
    from app.cli.main import main
    from profiling.predictor import LatencyPredictor
    from search.evaluator import predictor_path
    from tests.helpers_search import make_tiny_run

    run = make_tiny_run(tmp_path)
    key = "cuda-eager-fp16-b1-s16"
    cfgs = [c for _, _, c in grid(TINY)]
    ms = [0.2 + 0.05 * len(c.layers) + 0.001 * sum(c.heads) for c in cfgs]  # synthetic timings
    LatencyPredictor.fit(cfgs, ms, arch=TINY, scenario=key).save(run / "predictors" / f"{key}.json")
    assert predictor_path(run, key).name == f"{key}.json"
    args = ["search", "--run-dir", str(run), "--scenario", key, "--n-trials", "4", "--no-finalize", "--no-progress",
            "--device", "cpu"]
    if not torch.cuda.is_available():  # the fp16 variant's accuracy is scored on the GPU it runs on: refused here
        assert main(args) != 0
        err = capsys.readouterr().err
        assert "no usable GPU" in err and "Traceback" not in err
        assert not (run / "trials.csv").exists()
        return
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    import pandas as pd
    trials = pd.read_csv(run / "trials.csv")
    trials = trials[trials.state == "COMPLETE"]  # the rest of the enqueued grid waits for more trials
    assert len(trials) == 4
    pred = LatencyPredictor.load(run / "predictors" / f"{key}.json")
    for _, t in trials.iterrows():  # the latency objective is the CUDA scenario's predictor
        assert t.latency_ms == pytest.approx(pred.predict(SubnetConfig.from_json(t.config_json)), rel=1e-6)


def test_cpu_fingerprint_names_no_gpu():
    fp = fingerprint(1, "cpu")
    assert "gpu" not in fp and "cuda" not in fp and fp["threads"] == 1


# ---- on a GPU ------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_eager_measure_has_gpu_fingerprint(dtype):
    model = seeded_tiny(TINY, 2)
    sc = Scenario(device="cuda", batch=2, seq_len=16, dtype=dtype)
    rec = measure(model, SubnetConfig.uniform(TINY, 0.5, 0.5), sc, **FAST)
    fp = rec["fingerprint"]
    assert rec["scenario"] == f"cuda-eager-{dtype}-b2-s16" and rec["median_ms"] > 0 and rec["n"] >= 20
    assert fp["gpu"] and fp["cuda"] == torch.version.cuda and json.dumps(fp)


@needs_cuda
def test_cuda_paired_ratio_orders_a_small_and_a_full_model():
    model = seeded_tiny(TINY, 2)
    sc = Scenario(device="cuda", batch=32, seq_len=64, dtype="fp16")
    _, full = latency.runner_for(model, SubnetConfig.full(TINY), sc)
    _, small = latency.runner_for(model, SubnetConfig.uniform(TINY, 0.25, 0.5), sc)
    res = paired_ratio(small, full, threads=1, min_time_s=0.2, device="cuda")
    assert 0 < res["ratio"] < 1.2


def test_ort_cuda_session_never_falls_back_to_the_cpu_silently(monkeypatch, tmp_path):
    """ONNX Runtime starts on the CPU when its CUDA provider cannot load; a cuda scenario must refuse that."""
    import onnxruntime as ort

    from profiling.onnx_export import ort_session

    class CpuOnly:
        def __init__(self, *a, **k):
            pass

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", CpuOnly)
    with pytest.raises(ValueError, match="could not start its CUDA provider"):
        ort_session(tmp_path / "m.onnx", threads=1, device="cuda")
    assert isinstance(ort_session(tmp_path / "m.onnx", threads=1), CpuOnly)
