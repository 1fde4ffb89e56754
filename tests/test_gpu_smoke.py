"""bench/gpu_smoke.py: refuses without CUDA (exit 2, nothing written), its efficiency arithmetic, and the
whole bench on a tiny model where CUDA is present."""
from __future__ import annotations

import json

import pytest
import torch

from bench.gpu_smoke import efficiency, git_state, main

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["--results-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bench/gpu_smoke.py needs a CUDA GPU") and "\n" not in err
    assert not out.exists()


def test_efficiency_is_macs_ratio_over_latency_ratio():
    e = efficiency({"macs": 100.0, "median_ms": 10.0}, {"macs": 10.0, "median_ms": 4.0})
    assert e["macs_ratio"] == pytest.approx(0.1) and e["latency_ratio"] == pytest.approx(0.4)
    assert e["speedup"] == pytest.approx(2.5) and e["efficiency"] == pytest.approx(0.25)


def test_git_state_names_the_commit():
    state = git_state()
    assert state["commit"] == "unknown" or len(state["commit"]) == 40
    assert state["dirty"] in (True, False, None)


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False here)")
def test_tiny_smoke_on_cuda_writes_measured_results(tmp_path):
    assert main(["--size", "tiny", "--steps", "2", "--batch-size", "4", "--seq-len", "16", "--min-run-time", "0.05",
                 "--results-dir", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert res["training"]["losses_finite"] and res["fingerprint"]["gpu"]
    assert {r["scenario"] for r in res["latency"]} == {"cuda-eager-bf16-b1-s16", "cuda-eager-bf16-b32-s16"}
    assert len(res["latency"]) == 24 and (tmp_path / "gpu_smoke.md").exists()


def test_bench_steps_run_on_the_cpu_path():
    """The bench's own code (training, grid timing, efficiency, report) on the CPU in bf16, so that what
    only a GPU machine runs has been executed; nothing is written."""
    from bench.gpu_smoke import SIZES, markdown, time_grid, train_smoke
    from elastic.model.config import BertArch, SubnetConfig
    arch = BertArch(**SIZES["tiny"])
    model, training = train_smoke(arch, steps=2, batch=4, seq_len=16, device="cpu")
    assert training["losses_finite"] and training["steps"] == 2 and training["peak_gpu_memory_gib"] is None
    rows = time_grid(model, (1, 2), 16, 0.02, device="cpu")
    assert len(rows) == 24 and {r["scenario"] for r in rows} == {"cpu-eager-bf16-t1-b1-s16", "cpu-eager-bf16-t1-b2-s16"}
    by = {r["config_hash"]: r for r in rows if r["scenario"] == "cpu-eager-bf16-t1-b1-s16"}
    eff = efficiency(by[SubnetConfig.full(arch).hash], by[SubnetConfig.uniform(arch, 0.25, 0.5).hash])
    assert 0 < eff["macs_ratio"] < 1
    text = markdown({"commit": "x", "dirty": False, "command": "test", "size": "tiny",
                     "fingerprint": {"gpu": "none (CPU test)"}, "training": training, "latency": rows,
                     "efficiency": {"cpu-eager-bf16-t1-b1-s16": eff}})
    assert text.count("| cpu-eager-bf16-t1-b") == 25  # 24 latency rows + 1 efficiency row
