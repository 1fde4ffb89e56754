"""How ONNX Runtime sessions should wait: the smallest grid config (w0.25, d0.5) and the full model, fp32 and INT8
on the fused graph, with pool threads that spin during a run only (`ort_session`'s default) or never (`off`).

Medians of alternating blocks: every condition runs a block of calls in each round, in forward then reverse order,
with a pause between blocks so that no pool still spins into the next one; the figure per condition is the median of
its blocks' medians. Efficiency = MACs ratio / latency ratio of the smallest config to the full model, same setting.

Usage (alone on the machine; a diagnostic tool, writes nothing unless --json names a file):
    python -m bench.ort_spinning [--run-dir runs/sst2_dynabert] [--rounds 10] [--json out.json]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

SHAPES = {"b1_s64": (1, 64), "b32_s64": (32, 64), "b1_s128": (1, 128)}
MODES = ("during-run", "off")


def main(argv: list[str] | None = None) -> None:
    import torch

    from elastic.model.config import SubnetConfig
    from elastic.model.extract import extract
    from profiling.flops import analytic_macs
    from profiling.onnx_export import export_onnx, ort_feeds, ort_session, quantize_onnx_int8
    from search.evaluator import RunContext

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/sst2_dynabert"), help="a trained run (its model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    ctx = RunContext(a.run_dir)
    cfgs = {"small": SubnetConfig.uniform(ctx.arch, 0.25, 0.5), "full": SubnetConfig.full(ctx.arch)}
    out: dict = {"run_dir": str(a.run_dir), "threads": a.threads, "rounds": a.rounds, "ms": {}, "efficiency": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, cfg in cfgs.items():
            p = export_onnx(extract(ctx.model, cfg).eval(), Path(tmp) / f"{name}.onnx", fused=True)
            paths[(name, "fp32")], paths[(name, "int8")] = p, quantize_onnx_int8(p, Path(tmp) / f"{name}.int8.onnx")
        for shape, (b, s) in SHAPES.items():
            ids = torch.randint(1, ctx.arch.vocab_size, (b, s), generator=torch.Generator().manual_seed(0))
            feeds = ort_feeds(ids, torch.ones_like(ids))
            conds = [(m, prec, mode) for prec in ("fp32", "int8") for m in cfgs for mode in MODES]
            sessions = {c: ort_session(paths[c[:2]], threads=a.threads, spinning=c[2]) for c in conds}
            blocks: dict = {c: [] for c in conds}
            block_s = 0.25 if b == 1 else 1.0
            for rnd in range(a.rounds):
                for c in (conds if rnd % 2 == 0 else conds[::-1]):
                    sess = sessions[c]
                    for _ in range(3):
                        sess.run(None, feeds)
                    times, end = [], time.perf_counter() + block_s
                    while time.perf_counter() < end or len(times) < 3:
                        t0 = time.perf_counter()
                        sess.run(None, feeds)
                        times.append(time.perf_counter() - t0)
                    blocks[c].append(1e3 * statistics.median(times))
                    time.sleep(0.05)
            del sessions
            macs = (analytic_macs(ctx.arch, cfgs["small"], s, batch=b, num_labels=ctx.model.num_labels)
                    / analytic_macs(ctx.arch, cfgs["full"], s, batch=b, num_labels=ctx.model.num_labels))
            ms = {"/".join(c): statistics.median(v) for c, v in blocks.items()}
            out["ms"][shape] = ms
            out["efficiency"][shape] = {f"{prec}/{mode}": macs / (ms[f"small/{prec}/{mode}"] / ms[f"full/{prec}/{mode}"])
                                        for prec in ("fp32", "int8") for mode in MODES}
            print(f"{shape}: " + "; ".join(
                f"{prec} {mode}: small {ms[f'small/{prec}/{mode}']:.3f} ms, full {ms[f'full/{prec}/{mode}']:.3f} ms, "
                f"efficiency {out['efficiency'][shape][f'{prec}/{mode}']:.3f}" for prec in ("fp32", "int8")
                for mode in MODES), flush=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
