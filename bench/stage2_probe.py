"""Diagnostic: how fast does stage 2 teach its narrow, shallow sub-networks? Short stage-2 runs from a
run's DynaBERT_W checkpoint, dev accuracy of six probe sub-networks every few steps, per variant.

Each variant trains a fresh copy of `<run>/stage1` with the stage-2 training loop (`train_stage`: 12
sub-networks, teacher = DynaBERT_W at full width), the learning-rate schedule of a `--total`-step stage cut
after `--steps`.
Variants: `base` (the released code's recipe: lr 2e-5, hidden weight 1.0), `lr1e-4`, `hidden0.1`
(hidden-state loss weight 0.1), `pad64` (every batch padded to 64 tokens, as the released code pads).

    python -m bench.stage2_probe --run-dir runs/sst2_dynabert --variants base,lr1e-4 --steps 100

Writes results/stage2_probe.{json,md}; variants already in the JSON are kept unless given again (or --fresh).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import RESULTS, fingerprint, write_result

PROBES = ((1.0, 1.0), (1.0, 0.5), (0.25, 1.0), (0.25, 0.75), (0.25, 0.5), (0.5, 0.5))
VARIANTS = {"base": {}, "lr1e-4": {"lr": 1e-4}, "hidden0.1": {"hidden_weight": 0.1}, "pad64": {"pad_to": 64}}


class _Stop(Exception):
    """Ends a probe after its steps (the schedule stays the one of a `total`-step stage)."""


def probe(run_dir: Path, lr: float = 2e-5, hidden_weight: float = 1.0, pad_to: int = 0, steps: int = 100,
          total: int = 433, every: int = 25) -> list[dict[str, Any]]:
    """Stage 2 through `elastic.train.train_stage` for `steps` steps of a `total`-step schedule; dev accuracy
    of PROBES every `every` steps. `hidden_weight` and `pad_to` are the loop's own options (`LoopConfig`)."""
    from elastic.config import SubnetConfig
    from elastic.evaluate import evaluate
    from elastic.loop import LoopConfig
    from elastic.train import Stage, train_stage
    from elastic.stage_options import StageOptions
    from elastic.prepare import prepare
    from elastic.weights import load_checkpoint

    prep = prepare(run_dir, StageOptions(progress=False))
    student, _ = load_checkpoint(run_dir / "stage1")
    teacher, _ = load_checkpoint(run_dir / "stage1")
    cfgs = {f"{w},{d}": SubnetConfig.uniform(student.arch, w, d) for w, d in PROBES}
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def record(step: int) -> None:
        accs = {k: round(evaluate(student, prep.loaders["dev"], c, prep.task)["metric"], 2) for k, c in cfgs.items()}
        rows.append({"step": step, "dev_acc": accs, "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
        student.train()

    def on_step(step: int) -> None:
        if step % every == 0:
            record(step)
        if step >= steps:
            raise _Stop

    loop = LoopConfig(total_steps=total, seed=prep.seed, lr=lr, hidden_weight=hidden_weight, pad_to_length=pad_to)
    try:
        record(0)
        train_stage(student, teacher, Stage.STAGE2, prep.train, loop, is_regression=prep.task.is_regression,
                    progress=False, on_step=on_step)
    except _Stop:
        pass
    return rows


def render(data: dict[str, Any]) -> str:
    lines = ["# Stage-2 probe: dev accuracy of narrow/shallow sub-networks early in stage 2", "",
             f"Run: `{data['run_dir']}` (starts from its DynaBERT_W = stage1 checkpoint). Machine: "
             f"{data['fingerprint']['cpu']}, torch {data['fingerprint']['torch']}, "
             f"{data['fingerprint']['threads']} thread(s). Schedule of a {data['total']}-step stage; SST-2 dev %.", ""]
    keys = [f"{w},{d}" for w, d in PROBES]
    for name, v in data["variants"].items():
        lines += [f"## {name} ({json.dumps(v['options'])})", "",
                  "| step | " + " | ".join(f"w{k.split(',')[0]} d{k.split(',')[1]}" for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        lines += ["| " + str(r["step"]) + " | " + " | ".join(f"{r['dev_acc'][k]:.2f}" for k in keys) + " |"
                  for r in v["rows"]]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/sst2_dynabert"))
    ap.add_argument("--variants", default="base,lr1e-4", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--total", type=int, default=433, help="steps of the stage whose schedule is followed")
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="start a new JSON instead of keeping earlier variants")
    a = ap.parse_args()
    bad = [v for v in a.variants.split(",") if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    if not (a.run_dir / "stage1" / "done.json").exists():
        ap.error(f"{a.run_dir} has no finished stage1/: run `dynabert train-stage1 --run-dir {a.run_dir}` first")
    torch.set_num_threads(a.threads)
    prev = RESULTS / "stage2_probe.json"
    data = json.loads(prev.read_text()) if prev.exists() and not a.fresh else {"variants": {}}
    data.update(run_dir=str(a.run_dir), total=a.total, fingerprint=fingerprint(a.threads),
                command=" ".join(sys.argv))
    for name in a.variants.split(","):
        print(f"== {name}", flush=True)
        rows = probe(a.run_dir, steps=a.steps, total=a.total, every=a.every, **VARIANTS[name])
        data["variants"][name] = {"options": VARIANTS[name], "rows": rows}
        write_result("stage2_probe", data, render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
