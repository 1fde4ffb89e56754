"""results/pipeline_quick.{json,md} from a finished `dynabert run` directory (the demo's, by default).

Usage: python -m bench.pipeline_quick [--run-dir runs/demo] [--setup-seconds S] [--command "make demo"]
The stage timings are those `dynabert run` recorded in <run>/pipeline.json while it worked.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from bench.common import fingerprint, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    ap.add_argument("--setup-seconds", type=float, help="venv + install time measured around the command")
    ap.add_argument("--wall-seconds", type=float, help="wall-clock of the whole command, set-up included")
    ap.add_argument("--command", default="make demo")
    args = ap.parse_args()
    rec = json.loads((args.run_dir / "pipeline.json").read_text())
    trials = pd.read_csv(args.run_dir / "trials.csv")
    pareto = pd.read_csv(args.run_dir / "pareto.csv")
    grid = pd.read_csv(args.run_dir / "grid.csv")
    s2 = grid[grid["stage"] == "stage2"]
    knee = pareto[pareto["knee"].astype(str).str.lower().isin(["true", "1"])]
    data = {"total_seconds": rec["total_seconds"], "stage_seconds": rec["stage_seconds"],
            "n_trials": int(len(trials)), "pareto_size": int(len(pareto)),
            "setup_seconds": args.setup_seconds, "wall_seconds": args.wall_seconds,
            "preset": rec["options"].get("preset"), "task": rec["options"].get("task"),
            "teacher_dev_metric": float(grid[grid["stage"] == "teacher"]["dev_metric"].iloc[0])
            if (grid["stage"] == "teacher").any() else None,
            "grid_stage2_dev_metric": {f"{r.width_mult}x{r.depth_mult}": round(float(r.dev_metric), 2)
                                       for r in s2.itertuples()},
            "knee": knee.iloc[0][["config_json", "dev_metric", "test_metric", "latency_measured_ms"]].to_dict()
            if len(knee) else None,
            "fingerprint": fingerprint()}
    rows = "\n".join(f"| {k} | {v:.0f} |" for k, v in rec["stage_seconds"].items())
    md = f"""# Quick pipeline (`{args.command}`) on the embedded default

Task {data['task']} (BBC News, 5 classes), teacher all-MiniLM-L6-v2, preset {data['preset']}.
Whole command wall-clock {args.wall_seconds or float('nan'):.0f} s, of which set-up (venv + install)
{args.setup_seconds or float('nan'):.0f} s; pipeline stages {data['total_seconds']:.0f} s.

| stage | seconds |
|---|---|
{rows}

Search: {data['n_trials']} trials, Pareto front of {data['pareto_size']} points. Knee: {data['knee']}.
Machine: {data['fingerprint']['cpu']}, {data['fingerprint']['logical_cores']} logical cores,
torch {data['fingerprint']['torch']}, 1-min load average {data['fingerprint'].get('load_avg_1min')}.
"""
    write_result("pipeline_quick", data, md)
    print(json.dumps({k: data[k] for k in ("total_seconds", "n_trials", "pareto_size")}))


if __name__ == "__main__":
    main()
