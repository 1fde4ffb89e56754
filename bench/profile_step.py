"""Where the time of one training step goes: torch.profiler over a few stage-1/2 steps of a real checkpoint.

Loads a run's checkpoint (the stage's input: `rewired` for stage 1, `stage1` for stage 2), takes real
training batches, runs the same `run_step` + clip + AdamW as `train_stage`, and prints the operators
with the most self CPU time plus the share of the step spent in GEMMs, attention, the embedding
backward, slicing backward, and the optimizer. Proportions are what to read: absolute times depend
on the machine's load.

    python -m bench.profile_step --run-dir runs/demo --stage stage2 --steps 3
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GROUPS = {  # operator-name substrings -> what they are
    "GEMM (linear fwd/bwd)": ("addmm", "aten::mm", "aten::bmm", "matmul", "linear"),
    "attention (SDPA)": ("scaled_dot_product", "_efficient_attention", "_flash_attention"),
    "embedding backward": ("embedding_dense_backward", "embedding_backward", "index_add", "index_put"),
    "slice backward / copies": ("slice_backward", "aten::copy_", "aten::zeros", "aten::fill_", "as_strided"),
    "optimizer (AdamW)": ("_foreach", "adamw", "aten::lerp", "aten::addcdiv", "aten::sqrt"),
    "layernorm / gelu / dropout": ("layer_norm", "gelu", "dropout", "bernoulli", "native_dropout"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--stage", choices=("stage1", "stage2"), default="stage2")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    from elastic.training.stage_options import StageOptions
    from elastic.training.prepare import prepare
    from elastic.training.loop import BatchPlan, LoopConfig
    from elastic.training.train import Stage, loss_weights, run_step, step_plan
    from elastic.model.weights import load_checkpoint

    torch.set_num_threads(args.threads)
    stage = Stage(args.stage)
    src = "rewired" if stage is Stage.STAGE1 else "stage1"
    prep = prepare(args.run_dir, StageOptions(progress=False))
    student, _ = load_checkpoint(args.run_dir / src)
    teacher, _ = load_checkpoint(args.run_dir / src)
    teacher.eval()
    loop = LoopConfig(total_steps=args.steps + 1, seed=prep.seed)
    plan = step_plan(stage, student.arch, loop, random.Random(prep.seed))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-12)
    batches = BatchPlan(prep.train, loop.batch_size, prep.seed)
    student.train()

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        run_step(student, teacher, batches.batch(i), plan, stage, is_regression=False,
                 weights=loss_weights(stage, loop))
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()

    step(0)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for i in range(1, args.steps + 1):
            step(i)
        wall = (time.perf_counter() - t) / args.steps
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{stage.value}: {len(plan)} sub-networks per step, {wall:.2f} s per step (wall), "
          f"profiled self CPU total {total / 1e6 / args.steps:.2f} s per step")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))
    shares = {g: 0.0 for g in GROUPS}
    for e in events:
        for g, keys in GROUPS.items():
            if any(k in e.key for k in keys):
                shares[g] += e.self_cpu_time_total
                break
    for g, v in shares.items():
        print(f"{g:28s} {100 * v / total:5.1f} %")
    print(f"{'other':28s} {100 * (total - sum(shares.values())) / total:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
