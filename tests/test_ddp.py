"""torchrun with 2 processes (gloo) gives the same weights as 1 process with the same global batch.

This file is also the worker: `torchrun --nproc_per_node 2 tests/test_ddp.py OUT` trains the tiny
model for a few stage-2 steps and rank 0 saves the weights. Dropout is 0 (each rank draws its own
masks, so with dropout the runs are equivalent in distribution only). Tolerance: 1e-5 (the two runs
sum the same per-example gradients in a different order).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH, N = 3, 8, 20  # the last batch has 4 examples: 2 per rank


def _train(out: Path | None = None) -> dict[str, torch.Tensor]:
    from elastic.training.loop import LoopConfig
    from elastic.training.train import Stage, train_stage
    from tests.test_train import tiny, tiny_data

    teacher, student = tiny(seed=0), tiny(seed=1)
    loop = LoopConfig(total_steps=STEPS, batch_size=BATCH, lr=1e-3, seed=5, widths=(1.0, 0.5), depths=(1.0, 0.5),
                      extra_subnets=1)
    train_stage(student, teacher, Stage.STAGE2, tiny_data(N), loop, is_regression=False, progress=False)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    if out is not None:
        import torch.distributed as dist
        if dist.get_rank() == 0:
            torch.save(state, out)
        dist.barrier()
    return state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(Path(__file__)), str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    one = _train()
    from tests.test_train import tiny
    init = tiny(seed=1).state_dict()
    diff = max((two[k] - one[k]).abs().max().item() for k in one)
    moved = max((init[k] - one[k]).abs().max().item() for k in one)
    print(f"ddp max abs weight diff {diff:.2e}")
    assert diff < 1e-5, f"2-process weights differ from 1-process weights by {diff:.2e}"
    assert moved > 1e-4  # both actually trained


if __name__ == "__main__":
    import torch.distributed as dist
    sys.path.insert(0, str(ROOT))
    from elastic.training.device import Runtime, init_distributed
    init_distributed(Runtime(device="cpu"))  # what the stages call: gloo on CPU (NCCL on CUDA)
    assert dist.get_backend() == "gloo"
    _train(Path(sys.argv[1]))
    dist.destroy_process_group()
