"""Latency benchmark on the real all-MiniLM-L6-v2 architecture -> results/latency.json + results/latency.md.

Measures, in ONE run: the 12 DynaBERT grid configs at batch 1 / seq 128 and batch 32 / seq 64, 2 threads,
eager and ONNX Runtime (MACs ratio, latency ratio and efficiency versus the full model, the full model
re-timed every few configs); the latency predictor on 50 held-out random per-layer configs; the machine's
fp32 matmul peak with 2 threads and the fraction of it the full model reaches.

Usage: python -m bench.latency [--quick] [--out results]
"""
from __future__ import annotations

import argparse
import os
import sys

# How idle OpenMP (and ONNX Runtime) threads wait between ops; set before torch loads its OpenMP runtime.
# "passive": they sleep at once: on a machine shared with other jobs spinning threads fight them and 2-thread
# medians triple. "default": torch's own policy (spin a little, then sleep), as in a deployment on a machine of its
# own; ops of a few microseconds (narrow sub-networks) then no longer pay a thread wake-up each. The bench runs
# alone (`make bench` refuses a loaded machine), so "default" is its default: measured on 2 cores, the smallest
# grid config's eager efficiency at batch 1 / seq 128 was 0.79-0.80 with it and 0.56-0.58 with "passive".
# ONNX Runtime's pools never spin here either way (profiling/onnx_export.py ort_session).
WAIT_POLICIES = ("passive", "default")
# Parsed before torch is imported; main's parser takes it over (parents=) for --help and the record.
POLICY_PARSER = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
POLICY_PARSER.add_argument("--omp-wait-policy", choices=WAIT_POLICIES, default="default",
                           help="how idle torch threads wait (default: torch's own spin-then-sleep, for a machine of "
                                "its own; passive: sleep at once, for a shared machine)")
if POLICY_PARSER.parse_known_args()[0].omp_wait_policy == "default":
    os.environ.pop("OMP_WAIT_POLICY", None)
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch.utils import benchmark  # noqa: E402

from bench.common import RESULTS, bench_model  # noqa: E402
from bench.report_text import settle_words  # noqa: E402
from elastic.model.config import SubnetConfig, grid  # noqa: E402
from profiling.fingerprint import fingerprint  # noqa: E402
from profiling.latency_cache import LatencyCache  # noqa: E402
from profiling.latency import measure_many, runner_for  # noqa: E402
from profiling.timing import paired_ratio  # noqa: E402
from profiling.predictor import LatencyPredictor, evaluate_predictor  # noqa: E402
from profiling.scenario import Scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2


def matmul_peak_gflops(n: int = 2048, threads: int = THREADS, min_run_time_s: float = 3.0) -> dict:
    """fp32 GEMM throughput (GFLOP/s, 2 flops per multiply-add): median and best block."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.set_num_threads(threads)
    torch.mm(a, b)
    m = benchmark.Timer("torch.mm(a, b)", globals={"a": a, "b": b, "torch": torch},
                        num_threads=threads).blocked_autorange(min_run_time=min_run_time_s)
    flops = 2 * n ** 3
    return {"n": n, "median_gflops": flops / m.median / 1e9, "best_gflops": flops / min(m.times) / 1e9,
            "blocks": len(m.times)}


def _fit_and_score(arch, key: str, fit_cfgs, fit_ms, held, held_ms) -> dict:
    pred = LatencyPredictor.fit(fit_cfgs, fit_ms, arch=arch, scenario=key)
    rep = evaluate_predictor(pred, held, held_ms)
    pred.report.update(rep)
    return {"predictor": pred, "report": rep}


def op_breakdown(model, cfgs, *, batch: int, seq_len: int, top: int = 7, repeats: int = 2) -> list[dict]:
    """Share of eager CPU time per aten op (torch.profiler), to show where non-MAC time goes."""
    from torch.profiler import ProfilerActivity, profile

    from elastic.model.extract import extract
    from profiling.runners import make_inputs

    out = []
    ids, mask = make_inputs(Scenario(threads=THREADS, batch=batch, seq_len=seq_len), model.arch.vocab_size)
    torch.set_num_threads(THREADS)
    for cfg in cfgs:
        small = extract(model, cfg).eval()
        with torch.inference_mode():
            small(ids, mask)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(repeats):
                    small(ids, mask)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        out.append({"config": cfg.describe(), "ops_pct": {e.key: round(100 * e.self_cpu_time_total / total, 1)
                                                          for e in events[:top]}})
    return out


def machine_load() -> dict:
    """Load average and the busiest other processes, to say how shared the machine was."""
    top = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    others = [line.strip()[:110] for line in top.splitlines()[1:6] if str(os.getpid()) not in line]
    return {"loadavg": open("/proc/loadavg").read().split()[:3], "top_processes": others}


def transformers_share(model, peak_gflops: float, *, batch: int, seq_len: int, min_time_s: float) -> dict:
    """Our extracted full model and transformers' BertForSequenceClassification (same weights), timed in paired
    rounds of alternating order at one shape: each one's share of the matmul peak measured in the same run."""
    from transformers import BertForSequenceClassification

    from elastic.model.extract import extract
    from elastic.model.weights import default_teacher_path
    from profiling.flops import analytic_macs
    from profiling.runners import make_inputs

    ours = extract(model, SubnetConfig.full(model.arch)).eval()
    hf = BertForSequenceClassification.from_pretrained(str(default_teacher_path()), num_labels=2).eval()
    hf.classifier.load_state_dict(ours.classifier.state_dict())  # same head, comparable logits
    ids, mask = make_inputs(Scenario(threads=THREADS, batch=batch, seq_len=seq_len), model.arch.vocab_size)
    torch.set_num_threads(THREADS)
    with torch.inference_mode():
        max_diff = (ours(ids, mask).logits - hf(input_ids=ids, attention_mask=mask).logits).abs().max().item()
        pr = paired_ratio(lambda: ours(ids, mask), lambda: hf(input_ids=ids, attention_mask=mask), threads=THREADS,
                          min_time_s=min_time_s, min_rounds=10, warmup=1)
    macs = analytic_macs(model.arch, SubnetConfig.full(model.arch), seq_len, batch=batch)

    def share(ms: float) -> float:
        return 2 * macs / (ms / 1e3) / 1e9 / peak_gflops
    return {"scenario": f"eager, batch {batch}, seq {seq_len}", "ours_ms": pr["median_ms"],
            "transformers_ms": pr["ref_median_ms"], "ratio_ours_over_transformers": pr["ratio"],
            "ratio_iqr": pr["ratio_iqr"], "rounds": pr["rounds"], "ours_fraction": share(pr["median_ms"]),
            "transformers_fraction": share(pr["ref_median_ms"]), "max_abs_logit_diff": max_diff}


def _load_sentence(load: dict, cores: int) -> str:
    """Whether the machine was quiet when the bench started, from the recorded 1-minute load average."""
    before, after = load["before"]["loadavg"], load["after"]["loadavg"]
    quiet = float(before[0]) <= 0.5 * cores
    head = ("**Alone on the machine.**" if quiet else
            "**Shared machine.** Other work was running when it started (1-minute load above 0.5 per core), so "
            "absolute times are inflated and noisy.")
    return (f"{head} Load average (1, 5, 15 min) before: {', '.join(before)}; after: {', '.join(after)} on {cores} "
            "cores (the bench's own threads are in the figures after).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[POLICY_PARSER])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--quick", action="store_true", help="fewer configs and shorter timing (a smoke run)")
    ap.add_argument("--reuse-cache", action="store_true", help="keep timings of an earlier run")
    ap.add_argument("--render-only", action="store_true", help="rewrite latency.md from latency.json")
    ap.add_argument("--tiny", action="store_true", help="a tiny random BERT instead of all-MiniLM-L6-v2 (smoke run)")
    ap.add_argument("--runtimes", default="eager,ort", help="comma-separated runtimes of the grid timings")
    ap.add_argument("--peak-n", type=int, default=2048, help="size of the square GEMM of the matmul peak")
    ap.add_argument("--time-scale", type=float, default=1.0, help="multiplies every minimum timing span (smoke runs)")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench-latency",
                    help="latency cache and ONNX files (emptied unless --reuse-cache)")
    args = ap.parse_args()
    if args.render_only:
        (args.out / "latency.md").write_text(render_md(json.loads((args.out / "latency.json").read_text())))
        return
    t_start = time.time()
    work = args.work_dir
    if work.exists() and not args.reuse_cache:
        shutil.rmtree(work)
    cache = LatencyCache(work / "latency_cache.jsonl")
    load_before = machine_load()

    model = bench_model(args.tiny)
    runtimes = tuple(args.runtimes.split(","))
    arch = model.arch
    n_pred = 8 if args.quick else 50
    grid_time, pred_time, pair_time = ((0.3, 0.2, 1.0) if args.quick else (0.5, 0.3, 2.0))
    grid_time, pred_time, pair_time = (t * args.time_scale for t in (grid_time, pred_time, pair_time))

    peak = matmul_peak_gflops(n=args.peak_n, min_run_time_s=(1.0 if args.quick else 3.0) * args.time_scale)
    print(f"matmul peak (fp32, {THREADS} threads): median {peak['median_gflops']:.1f} GFLOP/s, "
          f"best {peak['best_gflops']:.1f}")

    grid_rows = []
    cells = [(1, 128), (32, 64)]
    grid_list = grid(arch)
    full_cfg = SubnetConfig.full(arch)
    for batch, seq in cells:
        for runtime in runtimes:
            s = Scenario(runtime=runtime, threads=THREADS, batch=batch, seq_len=seq)
            big = batch * seq >= 1024
            # Absolute latencies (torch.utils.benchmark blocked_autorange, full model re-timed every 4).
            recs = measure_many(model, [c for _, _, c in grid_list], s, cache, reference_every=4,
                                min_run_time_s=grid_time, warmup=1 if big else 3, workdir=work / "onnx",
                                count_fvcore=True)
            full_rec = recs[0]  # grid(arch)[0] is width 1.0, depth 1.0
            # Latency ratios from calls interleaved with the full model (robust to the machine's load).
            _, ref_fn = runner_for(model, full_cfg, s, workdir=work / "onnx")
            for (w, d, cfg), r in zip(grid_list, recs):
                _, fn = runner_for(model, cfg, s, workdir=work / "onnx")
                pr = paired_ratio(fn, ref_fn, threads=THREADS, min_time_s=pair_time * (3 if big else 1),
                                  min_rounds=4 if big else 8, warmup=1)
                macs_ratio = r["macs"] / full_rec["macs"]
                t_ref = r.get("reference_ms") or full_rec["median_ms"]
                grid_rows.append({
                    "width_mult": w, "depth_mult": d, "runtime": runtime, "batch": batch, "seq_len": seq,
                    "macs": r["macs"], "macs_fvcore": r["macs_fvcore"], "params": r["params"],
                    "latency_ms": r["median_ms"], "p90_ms": r["p90_ms"], "iqr_ms": r["iqr_ms"],
                    "min_ms": r["min_ms"], "n": r["n"], "macs_ratio": macs_ratio,
                    # Primary: interleaved ratio. Secondary: median / full model re-timed around it.
                    "latency_ratio": pr["ratio"], "latency_ratio_iqr": pr["ratio_iqr"], "pair_rounds": pr["rounds"],
                    "pair_settle": pr["settle"], "efficiency": macs_ratio / pr["ratio"],
                    "reference_ms": t_ref, "latency_ratio_blocked": r["median_ms"] / t_ref,
                    "efficiency_blocked": macs_ratio / (r["median_ms"] / t_ref),
                    "reference_drift_pct": r.get("reference_drift_pct"), "drift_flagged": r.get("drift_flagged"),
                    "achieved_gflops": 2 * r["macs"] / (r["median_ms"] / 1e3) / 1e9,
                })
            small = grid_rows[-1]
            print(f"{s.key}: full {full_rec['median_ms']:.2f} ms; smallest grid config {small['latency_ms']:.2f} ms, "
                  f"MACs ratio {small['macs_ratio']:.3f}, latency ratio {small['latency_ratio']:.3f} (interleaved), "
                  f"efficiency {small['efficiency']:.2f}", flush=True)

    # Predictor (eager, batch 1, seq 128): fit on the 12 grid + n random configs, score on n other random
    # configs. Measured in one shuffled order so that the machine's load drifts over train and held-out alike.
    ps = Scenario(runtime="eager", threads=THREADS, batch=1, seq_len=128)
    grid_cfgs = [c for _, _, c in grid_list]
    train = [SubnetConfig.random(arch, random.Random(i)) for i in range(n_pred)]
    held = [SubnetConfig.random(arch, random.Random(100_000 + i)) for i in range(n_pred)]
    all_cfgs = grid_cfgs + train + held
    order = list(range(len(all_cfgs)))
    random.Random(0).shuffle(order)
    fit_n = len(grid_cfgs) + len(train)
    # (a) blocked_autorange medians, as `dynabert profile` measures them.
    shuffled = measure_many(model, [all_cfgs[i] for i in order], ps, cache, reference_every=10,
                            min_run_time_s=pred_time, count_fvcore=False)
    recs = [None] * len(all_cfgs)
    for j, i in enumerate(order):
        recs[i] = shuffled[j]
    blocked = [r["median_ms"] for r in recs]
    rep_b = _fit_and_score(arch, ps.key, grid_cfgs + train, blocked[:fit_n], held, blocked[fit_n:])
    # (b) interleaved with the full model: t = ratio(cfg / full) x one full-model median. On a quiet machine
    # (a) and (b) agree; on a shared one (b) removes the load that changes between configs.
    _, ref_fn = runner_for(model, full_cfg, ps)
    from profiling.timing import time_runner
    t_full = time_runner(ref_fn, threads=THREADS, min_run_time_s=2.0 * args.time_scale)["median_ms"]
    inter = [0.0] * len(all_cfgs)
    from tqdm.auto import tqdm
    for i in tqdm(order, desc="interleaved ratios", unit="cfg"):
        _, fn = runner_for(model, all_cfgs[i], ps)
        inter[i] = paired_ratio(fn, ref_fn, threads=THREADS, min_time_s=pair_time / 3, min_rounds=8,
                                warmup=1)["ratio"] * t_full
    rep_i = _fit_and_score(arch, ps.key, grid_cfgs + train, inter[:fit_n], held, inter[fit_n:])
    rep, pred = rep_i["report"], rep_i["predictor"]
    print(f"predictor on {rep['n_heldout']} held-out configs: interleaved MAPE {rep['mape_pct']:.2f}%, "
          f"tau {rep['kendall_tau']:.3f}; blocked medians MAPE {rep_b['report']['mape_pct']:.2f}%, "
          f"tau {rep_b['report']['kendall_tau']:.3f}", flush=True)
    pred.save(work / "predictor.json")
    breakdown = op_breakdown(model, [full_cfg, grid_list[-1][2]], batch=32, seq_len=64)
    vs_hf = None if args.tiny else transformers_share(model, peak["median_gflops"], batch=32, seq_len=64,
                                                       min_time_s=10.0 * args.time_scale)
    breakdown_b1 = op_breakdown(model, [full_cfg, grid_list[-1][2]], batch=1, seq_len=128, repeats=20)

    full_b32 = next(g for g in grid_rows if g["runtime"] == "eager" and g["batch"] == 32 and g["width_mult"] == 1.0
                    and g["depth_mult"] == 1.0)
    full_b32_ort = next((g for g in grid_rows if g["runtime"] == "ort" and g["batch"] == 32
                         and g["width_mult"] == 1.0 and g["depth_mult"] == 1.0), None)
    # The smallest grid config's efficiency per cell on the best runtime measured (issue 18, item 4).
    smallest = {f"b{b}_s{q}": max((g for g in grid_rows if g["batch"] == b and g["seq_len"] == q
                                   and (g["width_mult"], g["depth_mult"]) == grid_list[-1][:2]),
                                  key=lambda g: g["efficiency"]) for b, q in cells}
    result = {
        "grid": grid_rows,
        "predictor": {"mape_pct": rep["mape_pct"], "kendall_tau": rep["kendall_tau"], "n_heldout": rep["n_heldout"],
                      "n_train": fit_n, "scenario": ps.key, "kind": pred.kind, "ridge": pred.ridge,
                      "measurement": "interleaved: median ratio of config/full-model calls (A B, B A, ...) x one "
                                     "full-model median (ms)",
                      "full_model_ms": t_full,
                      "blocked_median": {"mape_pct": rep_b["report"]["mape_pct"],
                                         "kendall_tau": rep_b["report"]["kendall_tau"],
                                         "measurement": "torch.utils.benchmark blocked_autorange median per "
                                                        "config, as `dynabert profile` measures",
                                         "points": rep_b["report"]["points"]},
                      "points": rep["points"]},
        "op_breakdown_b32_s64": breakdown,
        "full_model_vs_transformers": vs_hf,
        "op_breakdown_b1_s128": breakdown_b1,
        "matmul_peak_gflops": peak["median_gflops"],
        "matmul_peak": peak,
        "full_model_fraction_of_peak": full_b32["achieved_gflops"] / peak["median_gflops"],
        "full_model_fraction_of_peak_detail": {
            "scenario": "cpu-eager-t2-b32-s64", "achieved_gflops": full_b32["achieved_gflops"],
            "ort_achieved_gflops": full_b32_ort["achieved_gflops"] if full_b32_ort else None,
            "ort_fraction": full_b32_ort["achieved_gflops"] / peak["median_gflops"] if full_b32_ort else None,
            "note": "GFLOP/s = 2 x MACs / median latency (MACs from the analytic count, = fvcore)"},
        "fingerprint": fingerprint(THREADS),
        "machine_load": {"before": load_before, "after": machine_load()},
        "seconds": time.time() - t_start,
        "efficiency_smallest": {k: g["efficiency"] for k, g in smallest.items()},
        "runtime_smallest": {k: g["runtime"] for k, g in smallest.items()},
        "quick": args.quick, "tiny": args.tiny, "runtimes": list(runtimes),
        "command": " ".join(["python -m bench.latency", *sys.argv[1:]]),
        "omp_wait_policy": args.omp_wait_policy,
    }
    shutil.rmtree(work / "onnx", ignore_errors=True)  # ~100 MB per exported config
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(result, indent=1))
    (args.out / "latency.md").write_text(render_md(result))
    print(f"wrote {args.out / 'latency.json'} and latency.md in {result['seconds']:.0f} s")


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.0f}%"


def render_md(r: dict) -> str:
    """The human-readable report (numbers straight from the JSON)."""
    fp, p = r["fingerprint"], r["predictor"]
    lines = [
        "# Latency benchmark: DynaBERT grid on all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536)",
        "",
        f"Command: `{r['command']}` ({r['seconds']:.0f} s). Machine: {fp['cpu']}, {fp['logical_cores']} logical "
        f"cores, {fp['threads']} threads, torch {fp['torch']}, onnxruntime {fp['onnxruntime']}, "
        f"OMP_WAIT_POLICY={fp['omp_wait_policy']}.",
        "",
        f"{_load_sentence(r['machine_load'], fp['logical_cores'])} Every ratio below divides by "
        "the full model timed in the same run: the primary latency ratio comes from calls of the config "
        "interleaved with calls of the full model (A B, B A, ...; median of per-round ratios; each timed call "
        f"right after {settle_words(g.get('pair_settle') for g in r['grid'])} of the same model, so that each "
        "is timed warm, as when serving, not with the other model's weights in cache), the secondary "
        "one from blocked_autorange medians divided by the full model re-timed every 4 configs. The width 1.0 / "
        "depth 1.0 row's interleaved ratio (full vs itself) shows the noise floor.",
        "",
        "Units: MACs = multiply-accumulates (fvcore's 'flops'; analytic count == fvcore with the SDPA handle); "
        "latency = median over timed blocks of `torch.utils.benchmark` blocked_autorange (ms), extracted model, "
        "batch x seq random tokens. Efficiency = (t_full / t_cfg) / (MACs_full / MACs_cfg) = MACs ratio / latency ratio.",
        "",
        f"Matmul peak (fp32 {r['matmul_peak']['n']}^3 GEMM, {fp['threads']} threads): **{r['matmul_peak_gflops']:.1f} GFLOP/s** (median; "
        f"best block {r['matmul_peak']['best_gflops']:.1f}). Full model, eager, batch 32 / seq 64: "
        f"{r['full_model_fraction_of_peak_detail']['achieved_gflops']:.1f} GFLOP/s = "
        f"**{100 * r['full_model_fraction_of_peak']:.0f}% of peak** (ORT: "
        f"{_pct(r['full_model_fraction_of_peak_detail']['ort_fraction'])}).",
        "",
    ]
    hf = r.get("full_model_vs_transformers")
    if hf:
        ok = "met" if hf["ours_fraction"] >= hf["transformers_fraction"] else "NOT met"
        lines += [f"Same run, {hf['scenario']}, paired rounds of alternating order ({hf['rounds']} rounds): our full "
                  f"model {hf['ours_ms']:.1f} ms = **{100 * hf['ours_fraction']:.0f}%** of the peak, transformers' "
                  f"BertForSequenceClassification (same weights, max logit difference {hf['max_abs_logit_diff']:.1e}) "
                  f"{hf['transformers_ms']:.1f} ms = **{100 * hf['transformers_fraction']:.0f}%**; ratio ours / "
                  f"transformers {hf['ratio_ours_over_transformers']:.3f} (IQR {hf['ratio_iqr']:.3f}). Target: our "
                  f"share >= transformers': {ok}.", ""]
    for batch, seq in ((1, 128), (32, 64)):
        for runtime in ("eager", "ort"):
            rows = [g for g in r["grid"] if g["batch"] == batch and g["seq_len"] == seq and g["runtime"] == runtime]
            if not rows:
                continue
            lines += [f"## {runtime}, batch {batch}, seq {seq}", "",
                      "| width | depth | MACs (M) | MACs ratio | median ms | IQR ms | latency ratio (interleaved, IQR) "
                      "| **efficiency** | ref ms | latency ratio (blocked) | efficiency (blocked) | ref drift |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for g in rows:
                drift = (f"{g['reference_drift_pct']:.0f}%" + (" FLAG" if g["drift_flagged"] else "")
                         if g["reference_drift_pct"] is not None else "-")
                lines.append(f"| {g['width_mult']} | {g['depth_mult']} | {g['macs'] / 1e6:.0f} | {g['macs_ratio']:.3f} | "
                             f"{g['latency_ms']:.2f} | {g['iqr_ms']:.2f} | {g['latency_ratio']:.3f} "
                             f"({g['latency_ratio_iqr']:.3f}, {g['pair_rounds']} rounds) | **{g['efficiency']:.2f}** | "
                             f"{g['reference_ms']:.2f} | {g['latency_ratio_blocked']:.3f} | "
                             f"{g['efficiency_blocked']:.2f} | {drift} |")
            lines.append("")
    lines += ["## Target: efficiency >= 0.85 for the smallest grid config (width 0.25, depth 0.5), best runtime", ""]
    for cell, best in (r.get("efficiency_smallest") or {}).items():
        batch, seq = (int(x[1:]) for x in cell.split("_"))
        rows = [g for g in r["grid"] if g["batch"] == batch and g["seq_len"] == seq
                and (g["width_mult"], g["depth_mult"]) == (0.25, 0.5)]
        each = "; ".join(f"{g['runtime']} {g['efficiency']:.2f} (blocked {g['efficiency_blocked']:.2f})" for g in rows)
        lines.append(f"- batch {batch} / seq {seq}: **{best:.2f}** on {r['runtime_smallest'][cell]} "
                     f"({'met' if best >= 0.85 else 'NOT met'}); each runtime: {each}")
    pb = p["blocked_median"]
    lines += ["", f"## Predictor ({p['kind']}, {p['scenario']}): fitted on {p['n_train']} configs "
              f"(12 grid + random), scored on {p['n_heldout']} held-out random per-layer configs", "",
              f"All {p['n_train'] + p['n_heldout']} configs measured in one shuffled order (train and held-out see the same machine load).", "",
              f"- Interleaved measurement ({p['measurement']}; full model {p['full_model_ms']:.1f} ms): "
              f"MAPE **{p['mape_pct']:.2f}%** (target <= 5%: {'met' if p['mape_pct'] <= 5 else 'NOT met'}), "
              f"Kendall tau **{p['kendall_tau']:.3f}** (target >= 0.9: {'met' if p['kendall_tau'] >= 0.9 else 'NOT met'})",
              f"- Blocked medians ({pb['measurement']}): MAPE **{pb['mape_pct']:.2f}%**, Kendall tau "
              f"**{pb['kendall_tau']:.3f}**: configs timed one after another, so whatever changes on the machine "
              "between them (load, clocks) lands in this error; the interleaved measurement cancels it.", ""]
    for e in r.get("earlier_runs", []):
        lines += [f"## Earlier full run, same machine, same day ({e['when']})", "", e["note"], ""]
        lines += [f"- smallest grid config, batch 32: {k} efficiency {v['efficiency']:.2f} (interleaved), "
                  f"{v['efficiency_blocked']:.2f} (blocked)" for k, v in e["smallest_b32"].items()]
        lines += [f"- predictor, blocked medians measured in a fixed order: MAPE {e['predictor']['mape_pct']:.2f}%, "
                  f"Kendall tau {e['predictor']['kendall_tau']:.3f}", ""]
    if r.get("op_breakdown_b32_s64"):
        for key, shape in (("op_breakdown_b1_s128", "batch 1, seq 128"), ("op_breakdown_b32_s64", "batch 32, seq 64")):
            if r.get(key):
                lines += [f"## Where the time goes (eager, {shape}; torch.profiler self CPU time, %)", ""]
                lines += [f"- {b['config']}: " + ", ".join(f"{k} {v}%" for k, v in b["ops_pct"].items())
                          for b in r[key]]
                lines.append("")
        lines += ["Hidden size is never cut (DynaBERT): residual adds, LayerNorms, embeddings and the "
                  "head-reshape copies keep their full cost in every kept layer while the GEMMs shrink with width, "
                  "so the smallest width spends a larger share of its time outside the MACs.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
