"""Report: baseline students trained at another learning rate, next to the DynaBERT grid point of the same
architecture. Reads `<students-run>/baselines.csv` (from `dynabert baselines --lr ...`) and the DynaBERT run's
grid.csv; writes results/<name>.{json,md}. Trains nothing.

    python -m bench.baselines_at_lr --students-run runs/sst2_dynabert_students_lr2e-4 \
        --dynabert-run runs/sst2_dynabert --lr 2e-4 --name baselines_lr2e-4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from bench.common import fingerprint, fingerprint_line, write_result
from elastic.model.config import SubnetConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students-run", type=Path, required=True)
    ap.add_argument("--dynabert-run", type=Path, required=True)
    ap.add_argument("--lr", type=float, required=True, help="the students' learning rate (for the report)")
    ap.add_argument("--name", default="baselines_lr2e-4", help="results file stem")
    ap.add_argument("--task-name", default="SST-2", help="the task, for the report's title (SST-2)")
    ap.add_argument("--command", action="append", default=[], help="a command that trained the students")
    ap.add_argument("--stage", default="stage2", choices=("stage1", "stage2", "stage3"),
                    help="the DynaBERT stage whose grid points are compared (default stage2)")
    a = ap.parse_args()
    students = pd.read_csv(a.students_run / "baselines.csv").drop_duplicates("name")
    grid = pd.read_csv(a.dynabert_run / "grid.csv")
    grid = grid[grid.stage == a.stage]
    if grid.empty:
        ap.error(f"{a.dynabert_run}/grid.csv has no {a.stage} rows: has that stage finished?")
    rows = []
    for r in students[students.recipe.isin(["distilbert", "tinybert"])].itertuples():
        # the grid sub-network with the student's architecture (a DistilBERT student's config_json names the
        # teacher layers it copied, at full width)
        match = grid[grid.config_hash == SubnetConfig.from_json(r.config_json).hash]
        if match.empty:
            continue
        dy = match.iloc[0]
        wd = (float(dy.width_mult), float(dy.depth_mult))
        done_f = a.students_run / "baselines" / r.name / "done.json"
        done = json.loads(done_f.read_text()) if done_f.exists() else {}
        rows.append({"name": r.name, "recipe": r.recipe, "lr": a.lr, "steps": int(r.steps), "macs": int(r.macs),
                     "select_best": done.get("select_best", "off"), "selected_step": done.get("selected_step"),
                     "dev_acc": round(r.dev_metric, 2), "test_acc": round(r.test_metric, 2),
                     "dynabert_point": list(wd), "dynabert_macs": int(dy.macs),
                     "dynabert_dev_acc": round(dy.dev_acc, 2), "dynabert_test_acc": round(dy.test_acc, 2),
                     "dynabert_minus_student_test": round(dy.test_acc - r.test_metric, 2),
                     "dynabert_minus_student_dev": round(dy.dev_acc - r.dev_metric, 2)})
    run = json.loads((a.dynabert_run / "run.json").read_text())
    seed = run.get("seed")
    stage_done = a.dynabert_run / a.stage / "done.json"
    stage_info = json.loads(stage_done.read_text()) if stage_done.exists() else {}
    dyn_sel = (f"on `{stage_info['select_on']}`, step {stage_info['selected_step']} kept" if stage_info.get("select_on")
               else "none (last weights)")
    data = {"task": a.task_name, "teacher_metrics": run.get("teacher_metrics"), "rows": rows, "commands": a.command, "dynabert_stage": a.stage, "seed": seed, "students_run": str(a.students_run),
            "dynabert_run": str(a.dynabert_run), "fingerprint": fingerprint(1), "report_command": " ".join(sys.argv)}
    md = [f"# Baseline students at lr {a.lr:g}, next to DynaBERT (same architecture, {a.task_name})", "",
          f"Students: `{a.students_run}/baselines.csv`; DynaBERT: {a.stage} of `{a.dynabert_run}` (seed {seed}). Students and DynaBERT "
          "share the teacher, data, step budget, evaluation and harness (as results/baselines.md); the students train at "
          f"lr {a.lr:g}. Model selection of DynaBERT's {a.stage}: {dyn_sel}; of each student: its "
          "`selection` column (`off` = last weights). Accuracy in %.", "",
          "Teacher: " + ", ".join(f"{k} {v['metric']:.2f}" for k, v in (run.get("teacher_metrics") or {}).items()) + ".", "",
          "| student | steps | selection | dev | test | DynaBERT point | DynaBERT dev | DynaBERT test "
          "| DynaBERT - student (test) | (dev) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sel = r["select_best"] + (f", step {r['selected_step']}" if r["selected_step"] is not None else "")
        md.append(f"| {r['name']} | {r['steps']} | {sel} | {r['dev_acc']:.2f} | {r['test_acc']:.2f} | w{r['dynabert_point'][0]:g} "
                  f"d{r['dynabert_point'][1]:g} | {r['dynabert_dev_acc']:.2f} | {r['dynabert_test_acc']:.2f} | "
                  f"{r['dynabert_minus_student_test']:+.2f} | {r['dynabert_minus_student_dev']:+.2f} |")
    md += ["", "MACs are equal on both sides of each row (same architecture).", ""]
    widths, depths = sorted(set(grid.width_mult), reverse=True), sorted(set(grid.depth_mult), reverse=True)
    cell = {(float(g.width_mult), float(g.depth_mult)): g for g in grid.itertuples()}
    md += [f"DynaBERT {a.stage}, every grid point, test (dev):", "",
           "| width \\ depth | " + " | ".join(f"{d:g}" for d in depths) + " |", "|---|" + "---|" * len(depths)]
    for w in widths:
        md.append(f"| {w:g} | " + " | ".join(f"{cell[(w, d)].test_acc:.2f} ({cell[(w, d)].dev_acc:.2f})" if (w, d) in cell
                                           else "-" for d in depths) + " |")
    data["grid"] = [{"width_mult": float(g.width_mult), "depth_mult": float(g.depth_mult), "macs": int(g.macs),
                     "dev_acc": round(float(g.dev_acc), 2), "test_acc": round(float(g.test_acc), 2)} for g in grid.itertuples()]
    md += [""]
    if a.command:  # make bench records the whole command in the provenance line instead
        md += ["Commands that trained the students:", ""] + [f"- `{c}`" for c in a.command] + [""]
    md += [fingerprint_line(data["fingerprint"])]
    write_result(a.name, data, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
