"""Report: DynaBERT minus baseline student over several seeds, from `bench/baselines_at_lr.py` results.

Each `--result LABEL=PATH` is one results/*.json written by baselines_at_lr.py (one seed: its own
teacher, DynaBERT run and students). Rows are matched by student name (same architecture in every
seed); the report gives each seed's test and dev difference, their mean and the worst seed, and
whether the issue's target (DynaBERT >= student + 1.0 on test at matched MACs) holds on the mean and
in every seed. Trains nothing.

    python -m bench.baselines_seeds --result seed42=results/baselines_lr1e-4.json \\
        --result seed43=results/baselines_lr1e-4_seed43.json --name baselines_seeds
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench.common import fingerprint, fingerprint_line, write_result

TARGET = 1.0


def parse_result(spec: str) -> tuple[str, dict]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got '{spec}'")
    p = Path(path)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{p}: no such results file")
    return label, json.loads(p.read_text()) | {"_path": str(p)}


def aggregate(results: list[tuple[str, dict]]) -> list[dict]:
    """One row per student present in every result: per-seed differences, mean, worst, target checks."""
    names = [r["name"] for r in results[0][1]["rows"]]
    out = []
    for name in names:
        per = []
        for label, res in results:
            m = [r for r in res["rows"] if r["name"] == name]
            if not m:
                break
            r = m[0]
            per.append({"seed": label, "student_test": r["test_acc"], "dynabert_test": r["dynabert_test_acc"],
                        "student_dev": r["dev_acc"], "dynabert_dev": r["dynabert_dev_acc"],
                        "diff_test": round(r["dynabert_test_acc"] - r["test_acc"], 2),
                        "diff_dev": round(r["dynabert_dev_acc"] - r["dev_acc"], 2)})
        if len(per) != len(results):
            continue
        first = results[0][1]["rows"][names.index(name)]
        t = [p["diff_test"] for p in per]
        d = [p["diff_dev"] for p in per]
        out.append({"name": name, "recipe": first["recipe"], "dynabert_point": first["dynabert_point"],
                    "macs": first["macs"], "per_seed": per,
                    "mean_student_test": round(statistics.mean(p["student_test"] for p in per), 2),
                    "mean_dynabert_test": round(statistics.mean(p["dynabert_test"] for p in per), 2),
                    "mean_diff_test": round(statistics.mean(t), 2), "min_diff_test": min(t),
                    "mean_diff_dev": round(statistics.mean(d), 2),
                    "target_met_on_mean": statistics.mean(t) >= TARGET, "target_met_every_seed": min(t) >= TARGET})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--result", type=parse_result, action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--name", default="baselines_seeds", help="results file stem")
    ap.add_argument("--task-name", default="SST-2", help="the task, for the report's title (SST-2)")
    a = ap.parse_args()
    rows = aggregate(a.result)
    labels = [lab for lab, _ in a.result]
    data = {"task": a.task_name, "rows": rows, "target_points": TARGET, "results": {lab: r["_path"] for lab, r in a.result},
            "fingerprint": fingerprint(1), "report_command": " ".join(sys.argv)}
    md = [f"# DynaBERT minus baseline student over {len(labels)} seeds ({a.task_name}, same architecture)", "",
          "Each seed has its own teacher, DynaBERT run and students, trained with the same recipe; sources: "
          + ", ".join(f"{lab} = `{r['_path']}`" for lab, r in a.result) + ". Accuracy in %; differences are "
          f"DynaBERT minus student. Target: >= +{TARGET:.1f} on test.", "",
          "| student | DynaBERT point | " + " | ".join(f"{lab} test (dev)" for lab in labels)
          + " | mean test | mean dev | worst test | target on mean | target every seed |",
          "|---|---|" + "---|" * len(labels) + "---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{p['diff_test']:+.2f} ({p['diff_dev']:+.2f})" for p in r["per_seed"])
        md.append(f"| {r['name']} | w{r['dynabert_point'][0]:g} d{r['dynabert_point'][1]:g} | {cells} | "
                  f"**{r['mean_diff_test']:+.2f}** | {r['mean_diff_dev']:+.2f} | {r['min_diff_test']:+.2f} | "
                  f"{'met' if r['target_met_on_mean'] else 'NOT met'} | {'met' if r['target_met_every_seed'] else 'NOT met'} |")
    md += ["", "Test accuracy per seed, student / DynaBERT:", ""]
    for r in rows:
        md.append(f"- {r['name']}: " + "; ".join(f"{p['seed']} {p['student_test']:.2f} / {p['dynabert_test']:.2f}"
                                                  for p in r["per_seed"])
                  + f"; mean {r['mean_student_test']:.2f} / {r['mean_dynabert_test']:.2f}")
    md += ["", fingerprint_line(data["fingerprint"])]
    write_result(a.name, data, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
