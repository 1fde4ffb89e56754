"""Where a sub-network's time goes, op by op: the full model vs the smallest grid config (width 0.25, depth 0.5).

Eager: torch.profiler's self CPU time per aten op. ONNX Runtime (fp32 and INT8, the standard dynamo export and the
ONNX Runtime-fused graph the ORT runtimes time): ONNX Runtime's own profiler, kernel time per op type, and the
share of each call spent outside kernels (session overhead). Shares are % of the summed op times of one call;
`ms` is the median wall time per call while profiling (profilers add overhead: ratios, not absolute figures).

Usage: python -m bench.op_profile [--batch 1 --seq 64 --threads 2 --calls 200 --json out.json] [--tiny]
Prints a table per runtime; writes nothing unless --json names a file (not a results/ file: a diagnostic tool).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elastic.model.config import SubnetConfig
from elastic.model.extract import extract
from profiling.runners import make_inputs
from profiling.scenario import Scenario

RUNTIMES = ("eager", "ort", "ort-int8")
GRAPHS = ("standard", "fused")


def eager_ops(small: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, *, threads: int,
              calls: int) -> dict[str, Any]:
    """Self CPU time per aten op (torch.profiler) over `calls` forward passes in inference mode."""
    import time

    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    walls = []
    with torch.inference_mode():
        for _ in range(10):
            small(ids, mask)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                t0 = time.perf_counter()
                small(ids, mask)
                walls.append(time.perf_counter() - t0)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    ops = {e.key.removeprefix("aten::"): {"pct": 100 * e.self_cpu_time_total / total, "per_call": e.count / calls}
           for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)}
    return {"ms": 1e3 * float(np.median(walls)), "ops_ms": total / calls / 1e3, "ops": ops}


def ort_ops(path: Path, ids: torch.Tensor, mask: torch.Tensor, *, threads: int, calls: int,
            folder: Path) -> dict[str, Any]:
    """Kernel time per op type (ONNX Runtime's profiler) over `calls` runs of the session `ort_session` builds."""
    from profiling.onnx_export import ort_feeds, ort_session

    sess = ort_session(path, threads=threads, profile_prefix=str(folder / "ort"))
    feeds = ort_feeds(ids, mask)
    warm = 10
    for _ in range(warm + calls):
        sess.run(None, feeds)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    all_runs = [e["dur"] for e in events if e.get("name") == "model_run"]
    per_op: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]].append(e["dur"])
    n_runs = warm + calls
    total = sum(sum(v) for v in per_op.values())
    ops = {k: {"pct": 100 * sum(v) / total, "per_call": len(v) / n_runs, "median_us": float(np.median(v))}
           for k, v in sorted(per_op.items(), key=lambda kv: -sum(kv[1]))}
    # Outside kernels: summed over every run (sums, not medians: the two must cover the same calls).
    return {"ms": float(np.median(all_runs[warm:])) / 1e3, "ops_ms": total / n_runs / 1e3,
            "outside_ops_pct": 100 * (1 - total / sum(all_runs)),
            "nodes_per_call": sum(len(v) for v in per_op.values()) / n_runs, "ops": ops}


def profile_all(model, *, batch: int, seq: int, threads: int, calls: int, runtimes=RUNTIMES,
                graphs=GRAPHS) -> dict[str, Any]:
    """{runtime[/graph]: {config name: profile}} for the full model and the smallest grid config."""
    from profiling.onnx_export import export_onnx, quantize_onnx_int8

    cfgs = {"full": SubnetConfig.full(model.arch), "smallest": SubnetConfig.uniform(model.arch, 0.25, 0.5)}
    ids, mask = make_inputs(Scenario(threads=threads, batch=batch, seq_len=seq), model.arch.vocab_size)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="op-profile-") as tmp:
        folder = Path(tmp)
        for name, cfg in cfgs.items():
            small = extract(model, cfg).eval()
            if "eager" in runtimes:
                out.setdefault("eager", {})[name] = eager_ops(small, ids, mask, threads=threads, calls=calls)
            for graph in graphs:
                if not {"ort", "ort-int8"} & set(runtimes):
                    break
                fp32 = export_onnx(small, folder / f"{name}-{graph}.onnx", fused=graph == "fused")
                for runtime in ("ort", "ort-int8"):
                    if runtime not in runtimes:
                        continue
                    path = fp32 if runtime == "ort" else quantize_onnx_int8(fp32, fp32.with_suffix(".int8.onnx"))
                    out.setdefault(f"{runtime}/{graph}", {})[name] = ort_ops(path, ids, mask, threads=threads,
                                                                              calls=calls, folder=folder)
    return out


def render(result: dict[str, Any], top: int = 10) -> str:
    lines = []
    for key, by_cfg in result.items():
        lines.append(f"== {key}")
        full_ms = by_cfg.get("full", {}).get("ms")
        for name, p in by_cfg.items():
            ratio = f", {p['ms'] / full_ms:.3f} of full" if full_ms and name != "full" else ""
            extra = (f", {p['nodes_per_call']:.0f} nodes, {p['outside_ops_pct']:.0f}% outside kernels"
                     if "nodes_per_call" in p else "")
            lines.append(f"  {name}: {p['ms']:.2f} ms/call{ratio} (ops {p['ops_ms']:.2f} ms{extra})")
            lines.append("    " + ", ".join(f"{op} {v['pct']:.1f}% (x{v['per_call']:.0f})"
                                            for op, v in list(p["ops"].items())[:top]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=200, help="profiled calls per model (after 10 warm-up calls)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, of {', '.join(RUNTIMES)}")
    ap.add_argument("--graphs", default=",".join(GRAPHS), help="ONNX graphs to profile: standard (dynamo export), "
                                                               "fused (ONNX Runtime-fused, what ORT runtimes time)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random BERT instead of all-MiniLM-L6-v2")
    ap.add_argument("--json", type=Path, default=None, help="also write the profiles to this JSON file")
    args = ap.parse_args()
    runtimes = [r for r in args.runtimes.split(",") if r]
    graphs = [g for g in args.graphs.split(",") if g]
    for name, got, known in (("--runtimes", runtimes, RUNTIMES), ("--graphs", graphs, GRAPHS)):
        if not set(got) <= set(known):
            ap.error(f"{name}: unknown {sorted(set(got) - set(known))}; known: {', '.join(known)}")
    from bench.common import bench_model

    result = profile_all(bench_model(args.tiny), batch=args.batch, seq=args.seq, threads=args.threads, calls=args.calls,
                         runtimes=runtimes, graphs=graphs)
    print(f"batch {args.batch} / seq {args.seq}, {args.threads} threads, {args.calls} calls, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, load {os.getloadavg()[0]:.2f}")
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "seq": args.seq, "threads": args.threads,
                                         "calls": args.calls, "profiles": result}, indent=1))


if __name__ == "__main__":
    main()
