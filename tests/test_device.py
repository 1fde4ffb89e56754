"""Device and precision: resolution and its errors, bf16/fp16 autocast on the CPU against fp32, the
`--device/--precision` flags through a CLI stage, and CUDA paths (skipped with a reason without CUDA)."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from elastic.training.device import CPU_FP32, DeviceError, Runtime, resolve_device
from elastic.training.loop import BatchPlan, LoopConfig
from elastic.training.train import Stage, run_step, train_stage, uniform_plan
from tests.conftest import TINY
from tests.test_train import _max_diff, _write_task, _write_teacher, tiny, tiny_data

NO_CUDA = not torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False here)")


def test_resolve_device_and_errors(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="no CUDA device on this machine"):
        resolve_device("cuda:0")
    with pytest.raises(DeviceError, match="must be auto, cpu, cuda, cuda:N or mps"):
        Runtime(device="gpu")
    with pytest.raises(DeviceError, match="--precision must be one of fp32, bf16, fp16"):
        Runtime(precision="int4")  # type: ignore[arg-type]
    assert Runtime().dist_backend() == "gloo" and Runtime().describe() == "cpu/fp32"


def test_torchrun_on_cuda_joins_an_nccl_group_on_its_local_gpu(monkeypatch):
    """Under torchrun (WORLD_SIZE > 1) a CUDA runtime takes GPU LOCAL_RANK and an NCCL process group."""
    import torch.distributed as dist

    from elastic.training import device
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    device.init_distributed(Runtime(device="cuda"))
    assert calls == [("set_device", "cuda:1"), ("init", "nccl")]
    calls.clear()
    device.init_distributed(Runtime(device="cpu"))
    assert calls == [("init", "gloo")]


def test_fp32_runtime_is_the_plain_cpu_path():
    """Passing the cpu/fp32 runtime explicitly gives bit-identical weights to the default call."""
    data, loop = tiny_data(16), LoopConfig(total_steps=2, batch_size=8, lr=1e-3, seed=3)
    teacher, a = tiny(seed=0), tiny(seed=1)
    b = copy.deepcopy(a)
    train_stage(a, teacher, Stage.STAGE2, data, loop, is_regression=False, progress=False)
    train_stage(b, teacher, Stage.STAGE2, data, loop, is_regression=False, progress=False,
                runtime=Runtime(device="cpu", precision="fp32"))
    assert _max_diff(a, b) == 0.0


def _train(precision: str, steps: int = 4):
    teacher, student = tiny(seed=0), tiny(seed=1)
    init = copy.deepcopy(student)
    loop = LoopConfig(total_steps=steps, batch_size=8, lr=1e-3, seed=3, widths=(1.0, 0.5), depths=(1.0, 0.5))
    res = train_stage(student, teacher, Stage.STAGE2, tiny_data(24), loop, is_regression=False, progress=False,
                      runtime=Runtime(device="cpu", precision=precision))  # type: ignore[arg-type]
    return init, student, res


def test_bf16_autocast_on_cpu_is_finite_and_close_to_fp32():
    precision = "bf16"
    init, ref, _ = _train("fp32")
    _, low, res = _train(precision)
    assert all(math.isfinite(v) for k, v in res.last.items() if k != "per_subnet") and res.last["loss"] > 0
    # Compare the weight UPDATES as vectors: Adam moves each weight by about lr per step whatever the size
    # of its gradient, so a tiny gradient whose sign flips in low precision moves that one weight the other
    # way; the update as a whole must still point the same way and have about the same size.
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])  # noqa: E731
    d_ref, d_low = flat(ref) - flat(init), flat(low) - flat(init)
    cos = torch.nn.functional.cosine_similarity(d_ref, d_low, dim=0).item()
    rel = ((d_low - d_ref).norm() / d_ref.norm()).item()
    print(f"{precision}: update cosine to fp32 {cos:.4f}, relative difference {rel:.3f}")
    assert cos > 0.9 and rel < 0.5
    # The trained models' own fp32 distillation loss on a fresh batch agrees (the logits of a tiny random
    # model are ~1e-2, too small to compare on their own).
    batch = BatchPlan(tiny_data(16, seed=5), 16, 0).batch(0)
    plan = uniform_plan(Stage.STAGE2, TINY, LoopConfig(total_steps=1, widths=(1.0, 0.5), depths=(1.0, 0.5)))
    losses = [run_step(m, tiny(seed=0), batch, plan, Stage.STAGE2, is_regression=False)["loss"]
              for m in (init, ref, low)]
    print(f"{precision}: fp32 loss before {losses[0]:.4f}, after fp32 training {losses[1]:.4f}, "
          f"after {precision} training {losses[2]:.4f}")
    assert abs(losses[2] - losses[1]) < 0.2 * abs(losses[0] - losses[1])


def test_fp16_on_cpu_trains_through_the_grad_scaler():
    """fp16 steps go through GradScaler (scale, unscale before clipping, skip steps with inf gradients)."""
    init, low, res = _train("fp16", steps=6)
    assert all(math.isfinite(v) for k, v in res.last.items() if k != "per_subnet")
    assert _max_diff(init, low) > 1e-4  # at least one step was taken (the first may be skipped by the scaler)


def test_cli_stage_runs_with_device_cpu_and_records_it(tmp_path, capsys):
    from app.cli.main import main
    task, teacher = _write_task(tmp_path / "task", 0), _write_teacher(tmp_path / "teacher")
    run = tmp_path / "run"
    argv = ["train-teacher", "--run-dir", str(run), "--task", str(task), "--teacher", str(teacher),
            "--max-steps", "2", "--batch-size", "8", "--max-length", "16", "--no-progress",
            "--device", "cpu", "--precision", "bf16"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "teacher done" in capsys.readouterr().out
    opts = json.loads((run / "run.json").read_text())["options"]["teacher"]
    assert opts["runtime"] == {"device": "cpu", "precision": "bf16"}
    assert main(["evaluate", "--run-dir", str(run), "--stage", "teacher", "--device", "cpu", "--precision", "bf16"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["results_pct"]["dev"]["accuracy"] <= 100
    # Importance under bf16 autocast; rewiring itself runs in fp32 and must not change the function.
    assert main(["rewire", "--run-dir", str(run), "--no-progress", "--device", "cpu", "--precision", "bf16"]) == 0
    assert "full-model logits changed by at most" in capsys.readouterr().out
    assert len(json.loads((run / "importance.json").read_text())["head"]) == 4


@pytest.mark.skipif(not NO_CUDA, reason="checks the message of a machine without CUDA")
def test_cli_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    from app.cli.main import main
    assert main(["rewire", "--run-dir", str(tmp_path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --device cuda: no CUDA device") and "\n" not in err


@needs_cuda
def test_cuda_training_matches_cpu_fp32():
    data, loop = tiny_data(16), LoopConfig(total_steps=2, batch_size=8, lr=1e-3, seed=3)
    teacher, a = tiny(seed=0), tiny(seed=1)
    b, tb = copy.deepcopy(a), copy.deepcopy(teacher)
    train_stage(a, teacher, Stage.STAGE2, data, loop, is_regression=False, progress=False, runtime=CPU_FP32)
    train_stage(b, tb, Stage.STAGE2, data, loop, is_regression=False, progress=False,
                runtime=Runtime(device="cuda", precision="fp32"))
    assert next(b.parameters()).is_cuda
    assert _max_diff(a, b.cpu()) < 1e-4


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_is_finite(precision):
    teacher, student = tiny(seed=0), tiny(seed=1)
    loop = LoopConfig(total_steps=3, batch_size=8, lr=1e-3, seed=3, widths=(1.0, 0.5), depths=(1.0, 0.5))
    res = train_stage(student, teacher, Stage.STAGE2, tiny_data(24), loop, is_regression=False, progress=False,
                      runtime=Runtime(device="cuda", precision=precision))
    assert all(math.isfinite(v) for k, v in res.last.items() if k != "per_subnet")


@needs_cuda
def test_cuda_resume_with_dropout_gives_the_same_weights(tmp_path):
    """The CUDA RNG (dropout on the GPU) is checkpointed too: interrupted + resumed == uninterrupted."""
    from tests.test_train import Killed, kill_at
    rt = Runtime(device="cuda", precision="fp32")
    teacher, init = tiny(dropout=0.1, seed=0), tiny(dropout=0.1, seed=1)
    data = tiny_data(20)
    loop = LoopConfig(total_steps=6, batch_size=8, lr=1e-3, seed=3, save_every=2, widths=(1.0, 0.5), depths=(1.0,))
    ref = copy.deepcopy(init)
    train_stage(ref, copy.deepcopy(teacher), Stage.STAGE2, data, loop, is_regression=False, ckpt_dir=tmp_path / "a",
                progress=False, runtime=rt)
    victim = copy.deepcopy(init)
    with pytest.raises(Killed):
        train_stage(victim, copy.deepcopy(teacher), Stage.STAGE2, data, loop, is_regression=False,
                    ckpt_dir=tmp_path / "b", progress=False, on_step=kill_at(3), runtime=rt)
    resumed = copy.deepcopy(init)
    train_stage(resumed, copy.deepcopy(teacher), Stage.STAGE2, data, loop, is_regression=False,
                ckpt_dir=tmp_path / "b", progress=False, resume=True, runtime=rt)
    assert _max_diff(resumed.cpu(), ref.cpu()) <= 1e-5


@pytest.mark.skipif(not NO_CUDA, reason="checks the message of a machine without CUDA")
def test_run_pipeline_checks_the_device_before_any_stage(tmp_path, capsys):
    from app.cli.main import main
    assert main(["run", "--run-dir", str(tmp_path / "r"), "--device", "cuda:1", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --device cuda:1: no CUDA device") and "\n" not in err
    assert not (tmp_path / "r").exists()  # nothing ran
