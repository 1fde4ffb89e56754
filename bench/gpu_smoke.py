"""GPU smoke bench (sized to stay under 5 minutes on one CUDA GPU): `python -m bench.gpu_smoke`.

1. A BERT-base-sized elastic model (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522) with random
   weights (nothing is downloaded) runs 20 steps of stage 2 in bf16 autocast on random token ids: all 12
   grid sub-networks every step, distilled from a frozen copy of itself, through the project's
   `train_stage` with `Runtime(device="cuda", precision="bf16")`.
2. The 12 grid sub-networks, extracted, are timed on the CUDA scenarios `cuda-eager-bf16-b1-s128` and
   `cuda-eager-bf16-b32-s128` (CUDA events after synchronization, `profiling.latency.measure`).
3. Efficiency of the smallest grid config: MACs ratio (smallest / full) divided by latency ratio (smallest /
   full); 1.0 means the GPU turns every saved MAC into saved time.

Writes `results/gpu_smoke.json` and `results/gpu_smoke.md` with the commit, dirty flag, command and the
machine's fingerprint (GPU name, CUDA version). Without a CUDA device it prints one line, writes nothing
and exits 2: GPU figures are only ever written when they were measured.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]

SIZES = {  # name -> BertArch fields
    "base": dict(num_layers=12, hidden_size=768, num_heads=12, head_dim=64, intermediate_size=3072,
                 vocab_size=30522, max_position_embeddings=512),
    "tiny": dict(num_layers=4, hidden_size=32, num_heads=4, head_dim=8, intermediate_size=64, vocab_size=99,
                 max_position_embeddings=512),  # for the test of this script only
}


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout; from DYNABERT_COMMIT / DYNABERT_DIRTY where no .git travelled
    (a copied working tree on a lent GPU machine)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty, "commit_source": "git"}
    except (OSError, subprocess.CalledProcessError):
        dirty = os.environ.get("DYNABERT_DIRTY")
        return {"commit": os.environ.get("DYNABERT_COMMIT", "unknown"),
                "dirty": None if dirty is None else dirty.lower() in ("1", "true", "yes"),
                "commit_source": "environment (no .git in this copy)"}


def efficiency(full: dict[str, float], small: dict[str, float]) -> dict[str, float]:
    """MACs ratio, latency ratio (smallest / full) and their quotient (1.0: latency falls as MACs do)."""
    macs_ratio = small["macs"] / full["macs"]
    latency_ratio = small["median_ms"] / full["median_ms"]
    return {"macs_ratio": macs_ratio, "latency_ratio": latency_ratio, "speedup": 1.0 / latency_ratio,
            "efficiency": macs_ratio / latency_ratio}


def _random_data(n: int, seq_len: int, vocab: int, seed: int):
    """Random token ids of full length with random binary labels (the loss, not accuracy, is the point)."""
    import torch

    from elastic.data.tasks import EncodedSplit
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, seq_len), generator=g)
    ids[:, 0] = 2
    return EncodedSplit(ids.tolist(), [[0] * seq_len for _ in range(n)],
                        torch.randint(0, 2, (n,), generator=g).tolist(), False, 0)


def train_smoke(arch, *, steps: int, batch: int, seq_len: int, seed: int = 0,
                device: str = "cuda") -> tuple[Any, dict[str, Any]]:
    """`steps` steps of stage 2 in bf16 on `device` (cuda; cpu only in this script's test); returns
    (trained model on the CPU, facts)."""
    import torch

    from elastic.training.device import Runtime
    from elastic.model.modeling import ElasticBertForSequenceClassification
    from elastic.training.loop import LoopConfig
    from elastic.training.train import Stage, train_stage

    torch.manual_seed(seed)
    teacher = ElasticBertForSequenceClassification(arch, 2)
    student = copy.deepcopy(teacher)
    runtime = Runtime(device=device, precision="bf16").check()
    on_gpu = runtime.torch_device.type == "cuda"
    loop = LoopConfig(total_steps=steps, batch_size=batch, lr=1e-4, seed=seed, log_every=1)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "stage2.jsonl"
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        res = train_stage(student, teacher, Stage.STAGE2, _random_data(steps * batch, seq_len, arch.vocab_size, seed),
                          loop, is_regression=False, progress=False, log_path=log, runtime=runtime)
        runtime.synchronize()
        seconds = time.perf_counter() - t0
        losses = [json.loads(line)["loss"] for line in log.read_text().splitlines()]
    facts = {"steps": res.steps, "batch": batch, "seq_len": seq_len, "precision": "bf16", "seconds": round(seconds, 2),
             "steps_per_s": round(res.steps / seconds, 3), "subnets_per_step": 12,
             "loss_first": losses[0], "loss_last": losses[-1], "losses_finite": all(math.isfinite(v) for v in losses),
             "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None}
    return student.cpu().eval(), facts


def time_grid(model, batches: Sequence[int], seq_len: int, min_run_time_s: float,
              device: str = "cuda") -> list[dict[str, Any]]:
    """Latency of every extracted grid sub-network on `cuda-eager-bf16-b{B}-s{seq_len}` for each batch
    (`device="cpu"`: `cpu-eager-bf16-t1-...`, for this script's test only)."""
    from elastic.model.config import grid
    from profiling.latency import measure
    from profiling.scenario import Scenario

    rows = []
    for b in batches:
        sc = Scenario(device=device, runtime="eager", threads=1, batch=b, seq_len=seq_len,
                      dtype="bf16").check(model.arch)
        for w, d, cfg in grid(model.arch):
            rec = measure(model, cfg, sc, min_run_time_s=min_run_time_s, count_fvcore=False)
            rows.append({"scenario": sc.key, "width_mult": w, "depth_mult": d, "config_hash": cfg.hash,
                         "macs": rec["macs"], "params": rec["params"], "median_ms": rec["median_ms"],
                         "p90_ms": rec["p90_ms"], "iqr_ms": rec["iqr_ms"], "n": rec["n"]})
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The report of one run of this bench (all figures from `result`, i.e. measured)."""
    fp, tr = result["fingerprint"], result["training"]
    lines = ["# GPU smoke bench", "",
             f"Measured on {fp.get('gpu')} (compute capability {fp.get('gpu_capability')}, CUDA {fp.get('cuda')}), "
             f"torch {fp.get('torch')}; commit `{result['commit']}` (dirty: {result['dirty']}).",
             f"Command: `{result['command']}`.", "",
             f"## Stage 2, {result['size']} model, random weights, bf16 autocast", "",
             f"{tr['steps']} steps x {tr['subnets_per_step']} sub-networks, batch {tr['batch']}, {tr['seq_len']} tokens: "
             f"{tr['seconds']} s ({tr['steps_per_s']} steps/s), loss {tr['loss_first']:.4f} -> {tr['loss_last']:.4f} "
             f"(finite: {tr['losses_finite']}), peak GPU memory {tr['peak_gpu_memory_gib']} GiB.", "",
             "## Latency of the extracted grid sub-networks (median ms, CUDA events)", "",
             "| scenario | width | depth | MACs (G) | median ms | p90 ms | n |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['scenario']} | {r['width_mult']} | {r['depth_mult']} | {r['macs'] / 1e9:.2f} | {r['median_ms']:.3f} "
              f"| {r['p90_ms']:.3f} | {r['n']} |" for r in result["latency"]]
    lines += ["", "## Efficiency of the smallest grid config (width 0.25, depth 0.5)", "",
              "| scenario | MACs ratio | latency ratio | speedup | efficiency |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {e['macs_ratio']:.3f} | {e['latency_ratio']:.3f} | {e['speedup']:.2f}x | {e['efficiency']:.3f} |"
              for k, e in result["efficiency"].items()]
    lines += ["", "MACs: multiply-accumulates of one forward pass (analytic, `profiling.flops`). Efficiency = MACs "
              "ratio / latency ratio (1.0: time falls as much as MACs)."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="base", help="model size (tiny: for tests only)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--min-run-time", type=float, default=0.3, help="seconds of timed calls per config")
    p.add_argument("--results-dir", type=Path, default=Path(os.environ.get("DYNABERT_RESULTS_DIR") or ROOT / "results"))
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: bench/gpu_smoke.py needs a CUDA GPU and this machine has none (torch.cuda.is_available() "
              "is False); nothing was written", file=sys.stderr)
        return 2
    from elastic.model.config import BertArch, SubnetConfig
    from profiling.fingerprint import fingerprint

    t0 = time.perf_counter()
    arch = BertArch(**SIZES[args.size])
    model, training = train_smoke(arch, steps=args.steps, batch=args.batch_size, seq_len=args.seq_len)
    rows = time_grid(model, (1, 32), args.seq_len, args.min_run_time)
    full, smallest = SubnetConfig.full(arch).hash, SubnetConfig.uniform(arch, 0.25, 0.5).hash
    eff = {}
    for key in dict.fromkeys(r["scenario"] for r in rows):
        by = {r["config_hash"]: r for r in rows if r["scenario"] == key}
        eff[key] = efficiency(by[full], by[smallest])
    result = {**git_state(), "command": shlex.join([Path(sys.executable).name, *sys.argv]), "size": args.size,
              "fingerprint": fingerprint(1, "cuda"), "training": training, "latency": rows, "efficiency": eff,
              "wall_seconds": round(time.perf_counter() - t0, 1)}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "gpu_smoke.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results_dir / "gpu_smoke.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
