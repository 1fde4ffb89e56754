"""Baselines vs DynaBERT on SST-2, same teacher, data, budget, evaluation and latency harness.

Trains (or reuses, from `<run>/baselines/`) a DistilBERT-style student (every other teacher layer) and a
TinyBERT-style student (a width-cut sub-network of the rewired teacher), evaluates the INT8 teacher, then
puts each next to the DynaBERT grid sub-network of nearest MACs (within 10 %) from the run's grid.csv
(stage2, else the latest stage, named in the output), the searched front point of nearest MACs from
pareto.csv when it exists, and DynaBERT sub-networks with INT8 on top when stage2 exists.

MACs: multiply-accumulates at the run's max_length (as grid.csv). Latency: median ms on the extracted
model, scenario cpu-eager-t2-b1-s128 (INT8 rows: cpu-eager-int8-/cpu-ort-int8-t2-b1-s128).

Usage: python -m bench.baselines --run-dir runs/sst2_dynabert [--wait] [--max-steps 433] [--threads 1]
Writes results/baselines.{json,md}; rerunning reuses trained students and cached latencies.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import torch

from bench.common import load_1min, write_result
from bench.report_text import settle_words

SCENARIO = "cpu-eager-t2-b1-s128"
MATCH_TOLERANCE = 0.10  # relative MACs difference allowed for "matched"
TARGET_PTS = 1.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", flush=True)


def wait_for(path: Path, what: str, poll_s: float = 60.0, timeout_s: float = 4 * 3600) -> None:
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout_s:
            raise SystemExit(f"gave up waiting for {what} ({path})")
        log(f"waiting for {what} ({path})")
        time.sleep(poll_s)


def budget(run_dir: Path, explicit: Optional[int], wait_s: float) -> tuple[int, str]:
    """Steps of one DynaBERT stage of the run: explicit, else stage2/stage1 done.json / run.json options."""
    from app.workflow.baselines import stage_budget
    from elastic.rundir import read_run
    if explicit:
        return explicit, "--max-steps"
    t0 = time.time()
    while True:
        steps = stage_budget(run_dir, read_run(run_dir))
        if steps:
            return steps, "the run's stage budget (stage2/stage1 done.json or run.json options)"
        if time.time() - t0 > wait_s:
            return 433, "433 (the issue's figure; the run had not recorded a stage budget yet)"
        log("waiting for the run to record its stage-1 budget in run.json")
        time.sleep(60)


def dynabert_points(run_dir: Path) -> tuple[Optional[pd.DataFrame], Optional[str]]:
    """grid.csv rows of the most trained stage present (stage3 excluded: it is optional fine-tuning)."""
    f = run_dir / "grid.csv"
    if not f.exists():
        return None, None
    df = pd.read_csv(f)
    for stage in ("stage2", "stage1"):
        rows = df[df["stage"] == stage]
        if stage == "stage1":
            # DynaBERT_W trains every width at full depth only: its depth-cut rows were never trained
            rows = rows[rows["depth_mult"] == 1.0]
        if len(rows) and rows["macs"].notna().all():
            return rows.reset_index(drop=True), stage
    return None, None


def nearest(df: pd.DataFrame, macs: float) -> tuple[Optional[pd.Series], float]:
    """Row of nearest MACs and its relative MACs difference."""
    if df is None or not len(df):
        return None, float("nan")
    i = (df["macs"] - macs).abs().idxmin()
    return df.loc[i], abs(float(df.loc[i, "macs"]) - macs) / macs


def _load_words(load: dict | None) -> str:
    """The 1-minute load average at the bench's start and end, in words."""
    if not load or load.get("start") is None:
        return "load average not recorded"
    return (f"1-minute load average {load['start']:.2f} at the start, {load['end']:.2f} at the end (the bench's own "
            "training and timing in the latter)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/sst2_dynabert"))
    ap.add_argument("--wait", action="store_true", help="wait for the run's teacher/ and rewired/")
    ap.add_argument("--max-steps", type=int, help="steps per phase (default: the run's stage budget)")
    ap.add_argument("--tinybert-budget", default="per-phase", choices=("per-phase", "split"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training/evaluation (1)")
    ap.add_argument("--budget-wait", type=float, default=900.0, help="seconds to wait for the run's budget")
    ap.add_argument("--scenario", default=SCENARIO, help=f"latency scenario of the comparison ({SCENARIO})")
    ap.add_argument("--extra-scenario", nargs="*", default=["cpu-eager-t1-b1-s128"],
                    help="also timed, reported per row in latency_ms_by_scenario (1 thread suffers less "
                         "from a busy shared machine)")
    ap.add_argument("--parallel", action="store_true",
                    help="train the two students at once, one `dynabert baselines` process each (--threads each)")
    ap.add_argument("--full-depth-tinybert", action="store_true",
                    help="also train (unless --skip-train) and report a TinyBERT student of width 0.5 on all "
                         "layers (split budget)")
    ap.add_argument("--skip-train", action="store_true", help="only report students already trained")
    args = ap.parse_args()
    load_start = load_1min()
    torch.set_num_threads(args.threads)
    run_dir = args.run_dir
    from app.workflow.baseline_options import BaselineOptions
    from app.workflow.baselines import TinyBudget, run_baselines
    from elastic.training.baselines import Recipe
    if args.wait:
        wait_for(run_dir / "teacher" / "done.json", "the run's teacher")
    steps, steps_from = budget(run_dir, args.max_steps, args.budget_wait if args.wait else 0)
    log(f"budget: {steps} steps per phase ({steps_from})")
    common = dict(max_steps=steps, scenarios=(args.scenario, *args.extra_scenario), tinybert_budget=TinyBudget(args.tinybert_budget),
                  progress=False, min_run_time_s=2.0)
    t0 = time.time()
    rows = []
    if args.parallel and not args.skip_train:
        if args.wait:
            wait_for(run_dir / "rewired" / "elastic_config.json", "the rewired teacher")
        train_in_parallel(run_dir, steps, args)
    if not args.skip_train or (run_dir / "baselines" / "distilbert-L0-2-4" / "done.json").exists():
        log("DistilBERT-style student: 3 of 6 layers (0, 2, 4)")
        rows += run_baselines(run_dir, BaselineOptions(recipes=(Recipe.DISTILBERT,), depth=3, **common))
    if args.wait:
        wait_for(run_dir / "rewired" / "elastic_config.json", "the rewired teacher")
    if not args.skip_train or (run_dir / "baselines" / "tinybert-w0.5-L0-2-4" / "done.json").exists():
        log("TinyBERT-style student: rewired teacher cut to width 0.5 (6 heads, FFN 768) on layers 0, 2, 4")
        rows += run_baselines(run_dir, BaselineOptions(recipes=(Recipe.TINYBERT,), depth=3, width=0.5, **common))
    full_depth = run_dir / "baselines" / "tinybert-w0.5-L0-1-2-3-4-5" / "done.json"
    if args.full_depth_tinybert and (not args.skip_train or full_depth.exists()):
        log("TinyBERT-style student at full depth: width 0.5 on all 6 layers (split budget), vs DynaBERT_W")
        rows += run_baselines(run_dir, BaselineOptions(recipes=(Recipe.TINYBERT,), depth=6, width=0.5,
                                                       **{**common, "tinybert_budget": TinyBudget.SPLIT}))
    elif args.full_depth_tinybert:
        log(f"skipped the full-depth TinyBERT student (--skip-train): {full_depth} does not exist")
    log("INT8 teacher (eager-int8, ort-int8)")
    rows += run_baselines(run_dir, BaselineOptions(recipes=(Recipe.INT8,), **common))
    grid_df, stage = dynabert_points(run_dir)
    int8_rows = []
    if (run_dir / "stage2" / "done.json").exists():
        log("DynaBERT stage2 sub-networks with INT8 on top")
        int8_rows = run_baselines(run_dir, BaselineOptions(
            recipes=(Recipe.DYNABERT_INT8,), dynabert_points=((1.0, 1.0), (1.0, 0.5), (0.5, 0.5)), **common))
    write(run_dir, rows, int8_rows, grid_df, stage, steps, steps_from, args, time.time() - t0, load_start)


def train_in_parallel(run_dir: Path, steps: int, args) -> None:
    """One `dynabert baselines` process per student (DistilBERT, TinyBERT), `--threads` torch threads each."""
    import os
    import subprocess
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    procs = []
    (run_dir / "baselines").mkdir(parents=True, exist_ok=True)
    for recipe in ("distilbert", "tinybert"):
        cmd = [sys.executable, "-m", "app.cli", "baselines", "--run-dir", str(run_dir), "--recipe", recipe,
               "--depth", "3", "--width", "0.5", "--max-steps", str(steps), "--tinybert-budget", args.tinybert_budget,
               "--scenario", args.scenario, *args.extra_scenario, "--min-run-time", "2", "--no-progress"]
        out = open(run_dir / "baselines" / f"{recipe}.log", "a")
        log(f"started: {' '.join(cmd)} (log {out.name})")
        procs.append((recipe, subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                               cwd=Path(__file__).resolve().parents[1])))
    for recipe, p in procs:
        if p.wait() != 0:
            raise SystemExit(f"the {recipe} student failed (exit {p.returncode}); see {run_dir}/baselines/{recipe}.log")
        log(f"{recipe} student done")


def _small(run_dir: Path, row: dict[str, Any]):
    """The extracted model of a baselines.csv row (students from their checkpoint, INT8 from the teacher)."""
    from elastic.training.baselines import Recipe
    from elastic.model.config import SubnetConfig
    from elastic.model.extract import extract
    from elastic.model.weights import load_checkpoint
    folder = run_dir / "baselines" / row["name"]
    if (folder / "done.json").exists():
        model, _ = load_checkpoint(folder)
        # a DistilBERT student is its own smaller model; config_json names the teacher layers it copied
        distil = Recipe(row["recipe"]) is Recipe.DISTILBERT
        cfg = SubnetConfig.full(model.arch) if distil else SubnetConfig.from_json(row["config_json"])
    else:
        model, _ = load_checkpoint(run_dir / ("rewired" if (run_dir / "rewired").exists() else "teacher"))
        cfg = SubnetConfig.from_json(row["config_json"])
    return extract(model, cfg).eval()


def paired_latency(run_dir: Path, row: dict[str, Any], stage: str, cfg_json: str, scenario: str,
                   min_rounds: int = 30, min_time_s: float = 10.0, threads: Optional[int] = None) -> dict[str, Any]:
    """The baseline and the DynaBERT sub-network timed in paired rounds of alternating order (baseline
    DynaBERT, DynaBERT baseline, ...; uncached), so that the load of the shared machine hits both alike.

    Returns:
        {"baseline", "dynabert"} median ms per call, "ratio" (DynaBERT / baseline, median of the per-round
        ratios), "ratio_iqr" and "rounds".
    """
    import tempfile

    from elastic.model.config import SubnetConfig
    from elastic.model.extract import extract
    from elastic.model.weights import load_checkpoint
    from profiling.runners import build_runner
    from profiling.timing import paired_ratio
    from profiling.scenario import Scenario
    from dataclasses import replace
    sc_base, sc_dyna = Scenario.parse(row["scenario"]), Scenario.parse(scenario)
    if threads is not None:
        sc_base, sc_dyna = replace(sc_base, threads=threads), replace(sc_dyna, threads=threads)
    model, _ = load_checkpoint(run_dir / stage)
    with tempfile.TemporaryDirectory() as tmp:
        ra = build_runner(_small(run_dir, row), sc_base, workdir=Path(tmp) / "a")
        rb = build_runner(extract(model, SubnetConfig.from_json(cfg_json)).eval(), sc_dyna, workdir=Path(tmp) / "b")
        pr = paired_ratio(rb, ra, threads=sc_dyna.threads, min_time_s=min_time_s, min_rounds=min_rounds, warmup=2)
    return {"baseline": round(pr["ref_median_ms"], 4), "dynabert": round(pr["median_ms"], 4),
            "ratio": round(pr["ratio"], 4), "ratio_iqr": round(pr["ratio_iqr"], 4), "rounds": pr["rounds"],
            "settle": pr["settle"]}


def dynabert_side(run_dir: Path, stage: Optional[str], cfg_json: str, scenario: str) -> Optional[float]:
    """Latency (ms) of the DynaBERT sub-network in the same scenario (cached like every measurement)."""
    if stage is None:
        return None
    from elastic.model.config import SubnetConfig
    from elastic.model.weights import load_checkpoint
    from profiling.latency_cache import LatencyCache
    from profiling.latency import measure
    from profiling.scenario import Scenario
    model, _ = load_checkpoint(run_dir / stage)
    rec = measure(model, SubnetConfig.from_json(cfg_json), Scenario.parse(scenario),
                  cache=LatencyCache(run_dir / "baselines" / "latency_cache.jsonl"), min_run_time_s=2.0, count_fvcore=False)
    return round(rec["median_ms"], 4)


def front_of_stage(run_dir: Path, stage: str) -> Optional[pd.DataFrame]:
    """pareto.csv when the search ran on the compared stage's current checkpoint, else None (with a note):
    a front of other weights (an earlier training of the stage, or another stage) is not this model's."""
    from search.evaluator import checkpoint_stamp
    from search.pareto import searched_checkpoint
    if not (run_dir / "pareto.csv").exists():
        return None
    searched, current = searched_checkpoint(run_dir), checkpoint_stamp(stage, run_dir / stage)
    if searched != current:
        print(f"note: pareto.csv is not used: the search ran on checkpoint {searched or '(not recorded)'}, the "
              f"compared checkpoint is {current}", file=sys.stderr)
        return None
    return pd.read_csv(run_dir / "pareto.csv")


def write(run_dir: Path, rows: list[dict[str, Any]], int8_rows: list[dict[str, Any]], grid_df, stage, steps: int,
          steps_from: str, args, seconds: float, load_start: float | None = None) -> None:
    from app.workflow.baseline_options import BaselineOptions
    from elastic.training.baselines import Recipe
    from profiling.fingerprint import fingerprint
    front = front_of_stage(run_dir, stage)
    out_rows = []
    by_name: dict[str, dict[str, float]] = {}
    for r in rows:
        by_name.setdefault(r["name"], {})[r["scenario"]] = r["latency_ms"]
    primary = [r for r in rows if r["scenario"].replace("-int8", "").replace("-ort-", "-eager-") == args.scenario]
    for r in primary:
        g, rel = nearest(grid_df, float(r["macs"]))
        matched = g is not None and rel <= MATCH_TOLERANCE
        d_acc = float(g["test_acc"]) if matched else None
        f, frel = nearest(front, float(r["macs"])) if front is not None else (None, float("nan"))
        row = {"name": r["name"], "recipe": Recipe(r["recipe"]).value, "macs": int(r["macs"]), "params": int(r["params"]),
               "test_acc": round(float(r["test_metric"]), 2), "dev_acc": round(float(r["dev_metric"]), 2),
               "latency_ms": r["latency_ms"], "scenario": r["scenario"], "latency_ms_by_scenario": by_name[r["name"]],
               "steps": r["steps"], "epochs": r["epochs"],
               # stage 1 = DynaBERT_W (full-depth widths only, see dynabert_points); `dynabert_stage` says which
               "dynabert_test_acc_at_matched_macs": None if d_acc is None else round(d_acc, 2),
               "dynabert_stage": stage if matched else None,
               "dynabert_point": None if g is None else {"width_mult": float(g["width_mult"]),
                                                         "depth_mult": float(g["depth_mult"]),
                                                         "macs": int(g["macs"]), "macs_rel_diff": round(rel, 4),
                                                         "config_json": g["config_json"]},
               "dynabert_latency_ms": dynabert_side(run_dir, stage, g["config_json"], args.scenario) if matched else None,
               "front_point": None if f is None else {"trial": int(f["trial"]), "macs": int(f["macs"]),
                                                      "macs_rel_diff": round(frel, 4),
                                                      "test_acc": None if pd.isna(f["test_metric"]) else float(f["test_metric"]),
                                                      "dev_acc": float(f["dev_metric"]),
                                                      "latency_measured_ms": None if pd.isna(f["latency_measured_ms"])
                                                      else float(f["latency_measured_ms"])}}
        if matched:
            paired = paired_latency(run_dir, r, stage, g["config_json"], args.scenario)
            base_ms, dyna_ms = paired["baseline"], paired["dynabert"]
            row["paired_latency_ms"] = {**paired, "dynabert_scenario": args.scenario,
                                        "note": "paired rounds of one timed call each (after `settle` untimed "
                                                "calls of the same side), order alternating; medians per call; "
                                                "ratio = median of per-round ratios; uncached"}
            row["paired_latency_ms_1thread"] = paired_latency(run_dir, r, stage, g["config_json"], args.scenario,
                                                              threads=1)
            # The headline latencies are the paired ones: both sides timed in alternating rounds, so
            # machine load hits them alike. The harness's cached single measurements (taken whenever each model
            # was first timed, possibly beside a training run) stay under *_harness.
            row["latency_ms_harness"], row["dynabert_latency_ms_harness"] = row["latency_ms"], row["dynabert_latency_ms"]
            row["latency_ms"], row["dynabert_latency_ms"] = base_ms, dyna_ms
        row["dynabert_minus_baseline_pts"] = None if d_acc is None else round(d_acc - row["test_acc"], 2)
        row["target_met"] = None if d_acc is None else bool(d_acc - row["test_acc"] >= TARGET_PTS)
        out_rows.append(row)
    data = {"task": "sst2", "run_dir": str(run_dir), "macs_unit": "multiply-accumulates at the run's max_length",
            "latency_unit": "ms, median (torch.utils.benchmark blocked_autorange), extracted model",
            "accuracy_unit": "% on the SST-2 test split (1,821 sentences)",
            "budget": {"steps_per_phase": steps, "source": steps_from, "tinybert_budget": args.tinybert_budget,
                       "batch_size": BaselineOptions.batch_size, "lr": BaselineOptions.lr},
            "dynabert_stage_compared": stage, "match_tolerance": MATCH_TOLERANCE, "target_pts": TARGET_PTS,
            "rows": out_rows, "dynabert_int8_rows": int8_rows, "bench_seconds": round(seconds, 1),
            "command": "python " + " ".join(sys.argv), "fingerprint": {**fingerprint(2), "train_threads": args.threads}}
    data["load_avg_1min"] = {"start": load_start, "end": load_1min()}  # the end's includes the bench's own work
    write_result("baselines", data, markdown(data))
    log(f"wrote results/baselines.json and .md ({len(out_rows)} rows)")


def markdown(d: dict[str, Any]) -> str:
    def num(v: Any, fmt: str = "{:.2f}") -> str:
        return "-" if v is None else fmt.format(v)

    def pair(p: Optional[dict[str, Any]]) -> str:
        return "-" if p is None else f"{num(p['baseline'])} / {num(p['dynabert'])}"
    settle = settle_words(r["paired_latency_ms"].get("settle") for r in d["rows"] if r.get("paired_latency_ms"))
    lines = [
        "# Baselines vs DynaBERT (SST-2)", "",
        f"Run `{d['run_dir']}`; DynaBERT numbers from grid.csv stage `{d['dynabert_stage_compared']}`. "
        f"Budget: {d['budget']['steps_per_phase']} steps of batch 32 per phase ({d['budget']['source']}); "
        f"TinyBERT budget: {d['budget']['tinybert_budget']}. MACs = multiply-accumulates at the run's max_length; "
        f"latency = median ms of the extracted model on the table's scenario, baseline and DynaBERT timed in "
        f"alternating rounds (paired: each timed call right after {settle} of the same model, so both "
        f"are timed warm; the harness's cached first timings in the last column); accuracy "
        f"in % on test.", "",
        "| baseline | recipe | MACs | params | test % | latency ms | scenario | steps | DynaBERT point (MACs diff) "
        "| DynaBERT test % | DynaBERT ms | DynaBERT - baseline (pts) | front point test % | same, 1 thread "
        "| harness ms baseline / DynaBERT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        p = r["dynabert_point"]
        point = "-" if p is None else f"w{p['width_mult']:g} d{p['depth_mult']:g} ({100 * p['macs_rel_diff']:.1f}%)"
        fp = r["front_point"]
        lines.append(f"| {r['name']} | {r['recipe']} | {r['macs']:.3e} | {r['params'] / 1e6:.2f} M | {r['test_acc']:.2f} "
                     f"| {num(r['latency_ms'])} | {r['scenario']} | {r['steps'] or '-'} | {point} "
                     f"| {num(r['dynabert_test_acc_at_matched_macs'])} "
                     f"| {num(r['dynabert_latency_ms'])} "
                     f"| {num(r['dynabert_minus_baseline_pts'], '{:+.2f}')} "
                     f"| {'-' if fp is None else num(fp['test_acc'])} "
                     f"| {pair(r.get('paired_latency_ms_1thread'))} "
                     f"| {num(r.get('latency_ms_harness'))} / {num(r.get('dynabert_latency_ms_harness'))} |")
    if d["dynabert_int8_rows"]:
        lines += ["", "DynaBERT sub-networks with INT8 on top:", "",
                  "| name | MACs | dev % | test % | latency ms | scenario |", "|---|---|---|---|---|---|"]
        for r in d["dynabert_int8_rows"]:
            lines.append(f"| {r['name']} | {r['macs']:.3e} | {r['dev_metric']:.2f} | {r['test_metric']:.2f} "
                         f"| {r['latency_ms']:.2f} | {r['scenario']} |")
    if d["dynabert_stage_compared"] == "stage1":
        lines += ["", "NOTE: only stage 1 (DynaBERT_W, width-adaptive at full depth) had finished, so the DynaBERT "
                  "column is DynaBERT_W at full depth (its depth-cut grid points were never trained for depth and are "
                  "left out of the matching). Rerun this script once stage2/done.json exists for DynaBERT proper."]
    elif d["dynabert_stage_compared"] is None:
        lines += ["", "No DynaBERT stage had finished: the DynaBERT columns are empty. Rerun this script once "
                  "stage2/done.json exists (trained students and cached latencies are reused)."]
    fp = d["fingerprint"]
    lines += ["", f"Target: DynaBERT >= {d['target_pts']} point better on test at matched MACs (within "
              f"{100 * d['match_tolerance']:.0f}%). Measured on {fp['cpu']} ({fp['logical_cores']} logical cores), "
              f"torch {fp['torch']}, training threads {fp['train_threads']}; {_load_words(d.get('load_avg_1min'))}.",
              "", f"Command: `{d['command']}`"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
