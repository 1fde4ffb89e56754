"""Stage-2 step time with `--subnet-forward separate` vs `shared-prefix`, paired rounds of alternating order.

A run's stage-1 checkpoint as the student, its rewired teacher, real training batches; each round runs one step
of each mode on the same batch (order A B, then B A, ...), each a full step: every sub-network's forward and
backward, gradient clipping and AdamW (lr 1e-12, so the weights stay put). Prints each round and the median of
the per-round ratios shared / separate with its IQR. A tool (no result file): run it alone on the machine.

    python -m bench.subnet_forward_ab --run-dir runs/sst2_dynabert --rounds 12
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="a run with stage1/ and rewired/ (else teacher/)")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    import torch

    from elastic.training.loop import BatchPlan, LoopConfig
    from elastic.training.prepare import prepare
    from elastic.training.stage_options import StageOptions
    from elastic.training.train import Stage, loss_weights, run_step, step_plan
    from elastic.model.weights import load_checkpoint

    torch.set_num_threads(a.threads)
    prep = prepare(a.run_dir, StageOptions(progress=False))
    student, _ = load_checkpoint(a.run_dir / "stage1")
    teacher, _ = load_checkpoint(a.run_dir / ("rewired" if (a.run_dir / "rewired").is_dir() else "teacher"))
    teacher.eval()
    loop = LoopConfig(total_steps=a.rounds + 2, seed=prep.seed)
    plan = step_plan(Stage.STAGE2, student.arch, loop, random.Random(prep.seed))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-12)
    batches = BatchPlan(prep.train, loop.batch_size, prep.seed)
    student.train()

    def step(i: int, mode: str) -> float:
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        run_step(student, teacher, batches.batch(i), plan, Stage.STAGE2, is_regression=False,
                 weights=loss_weights(Stage.STAGE2, loop), subnet_forward=mode)
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - t

    step(0, "separate")  # warm-up of both
    step(0, "shared-prefix")
    rounds = []
    for r in range(1, a.rounds + 1):
        order = ("separate", "shared-prefix") if r % 2 else ("shared-prefix", "separate")
        t = {m: step(r, m) for m in order}
        rounds.append(t)
        print(f"round {r}: separate {t['separate']:.3f} s, shared-prefix {t['shared-prefix']:.3f} s, "
              f"ratio {t['shared-prefix'] / t['separate']:.3f}", flush=True)
    ratios = [t["shared-prefix"] / t["separate"] for t in rounds]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(json.dumps({"rounds": len(rounds), "subnets_per_step": len(plan),
                      "median_separate_s": round(statistics.median(t["separate"] for t in rounds), 3),
                      "median_shared_prefix_s": round(statistics.median(t["shared-prefix"] for t in rounds), 3),
                      "median_ratio": round(statistics.median(ratios), 3), "ratio_iqr": round(q[2] - q[0], 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
