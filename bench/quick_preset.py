"""Benchmark: the quick preset's stage 2, decided on dev (issue 35) -> results/quick_preset.{json,md}.

The quick preset (the offline demo) trains stage 2 for 2 epochs (40 steps on its 640 training examples) at lr 3e-4
with a hard-label term. Those choices were made while reading BBC test (docs/RECIPES.md). This bench re-decides
them on dev. Per task and seed: one teacher, rewiring and stage 1 of the quick preset (`dynabert run --preset quick
--only teacher,rewire,stage1`), then each stage-2 variant of VARIANTS from that same stage 1 (`--only stage2`, in
hard-linked copies). The grid's mean dev accuracy, averaged over task-seeds, decides by rules fixed before any run
(DECISIONS): the 40-step budget stays only if it beats 20 steps by at least DECISION_PTS points (else the preset
goes back to 20, half the stage-2 time); the stage-2 recipe (lr 3e-4 + hard-label term) stays unless the previous
one (lr 1e-4, distillation only) scores higher at the same 40 steps. Test is reported beside, never read by a rule.

Resumable: each task-seed and budget trains in its own folder under --runs (finished stages are skipped,
interrupted ones resume), and a re-run reuses what is there.

    python -m bench.quick_preset                        # bbc, trec, mr x seeds 42, 43 (about 1.5 hours alone)
    python -m bench.quick_preset --quick --out /tmp/q   # bbc, one seed, a few steps: the path end to end
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any, Sequence

from bench.suite_runs import seed_from

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("bbc", "trec", "mr")  # the demo's task and two single-sentence sets of ../shared/data (no pairs: the
SEEDS = (42, 43)               # quick preset is for minutes-long runs)
# stage-2 variants: extra `dynabert run` flags over the quick preset (whose stage 2 is 2 epochs = 40 steps)
VARIANTS: dict[str, tuple[str, ...]] = {
    "40": ("--stage2-steps", "40"),  # today's preset
    "20": ("--stage2-steps", "20"),  # 1 epoch: the preset's budget until 07814bb
    "40-old": ("--stage2-steps", "40", "--stage2-lr", "1e-4", "--stage2-hard-weight", "0"),  # before 9658d8a
}
DECISION_PTS = 0.5  # the longer budget must buy at least this much grid-mean dev accuracy
# (challenger, incumbent, points the challenger's dev mean must exceed the incumbent's by to win, what it decides)
DECISIONS: tuple[tuple[str, str, float, str], ...] = (
    ("20", "40", -DECISION_PTS, "stage-2 budget: 40 steps stay only if they beat 20 by >= 0.5 dev points"),
    ("40-old", "40", 0.0, "stage-2 recipe: lr 3e-4 + hard-label term stay unless lr 1e-4 distillation-only is higher"),
)
BASE_STAGES = "teacher,rewire,stage1"
SEEDED = ("run.json", "tokenizer", "teacher", "rewired", "importance.json", "stage1")
QUICK = {"tasks": ("bbc",), "seeds": (42,), "variants": {"40": ("--stage2-steps", "4"), "20": ("--stage2-steps", "2"),
                                                         "40-old": VARIANTS["40-old"][2:] + ("--stage2-steps", "4")},
         "flags": ("--teacher-epochs", "1", "--stage1-steps", "2", "--limit-train", "64", "--max-length", "32")}


def spec_of(task: str, data: Path) -> str:
    """The --task argument: bbc is the embedded demo set; the others are folders of ../shared/data."""
    return task if task == "bbc" else str(data / task)


def cli(args: Sequence[str], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "app.cli", *args]
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def grid_means(run: Path) -> dict[str, Any]:
    """Stage 2's grid from `grid.csv`: mean dev and test accuracy, the smallest point's, and the stage's seconds."""
    import pandas as pd

    g = pd.read_csv(run / "grid.csv")
    g = g[g.stage == "stage2"]
    if len(g) == 0:
        raise SystemExit(f"{run}/grid.csv has no stage-2 rows: the stage did not finish")
    small = g[(g.width_mult == g.width_mult.min()) & (g.depth_mult == g.depth_mult.min())].iloc[0]
    done = json.loads((run / "stage2" / "done.json").read_text())
    return {"dev_mean": float(g.dev_acc.mean()), "test_mean": float(g.test_acc.mean()), "points": int(len(g)),
            "dev_smallest": float(small.dev_acc), "test_smallest": float(small.test_acc),
            "steps": int(done["steps"]), "seconds": float(done["seconds"])}


def run_task_seed(root: Path, task: str, seed: int, variants: dict[str, tuple[str, ...]], data: Path,
                  flags: Sequence[str], threads: int) -> dict[str, Any]:
    """Train one task-seed's base and each stage-2 variant (resumably); its grid means per variant."""
    common = ("--preset", "quick", "--task", spec_of(task, data), "--seed", str(seed), *flags)
    base = root / "base"
    cli(("run", "--run-dir", str(base), *common, "--only", BASE_STAGES, "--resume"), threads)
    rows = {}
    for name, extra in variants.items():
        run = root / f"stage2-{name}"
        seed_from(base, run, SEEDED)
        cli(("run", "--run-dir", str(run), *common, *extra, "--only", "stage2", "--resume"), threads)
        rows[name] = grid_means(run)
    teacher = json.loads((base / "run.json").read_text()).get("teacher_metrics", {})
    return {"task": task, "seed": seed, "budgets": rows,
            "teacher_dev": (teacher.get("dev") or {}).get("metric"),
            "teacher_test": (teacher.get("test") or {}).get("metric")}


def decide(records: Sequence[dict[str, Any]], challenger: str, incumbent: str, margin: float, what: str
           ) -> dict[str, Any]:
    """One rule: the challenger variant wins when its grid-mean dev accuracy, minus the incumbent's and averaged
    over task-seeds, exceeds `margin` (negative: the incumbent must lead by at least -margin to stay). Test figures
    are averaged for the report only."""
    if not records:
        raise ValueError("no task-seed finished: nothing to decide on")
    dev = [r["budgets"][challenger]["dev_mean"] - r["budgets"][incumbent]["dev_mean"] for r in records]
    test = [r["budgets"][challenger]["test_mean"] - r["budgets"][incumbent]["test_mean"] for r in records]
    diff = mean(dev)
    return {"challenger": challenger, "incumbent": incumbent, "margin_pts": margin, "rule": what,
            "dev_diff": diff, "test_diff": mean(test), "dev_diff_per_task_seed": dev,
            "challenger_ahead_on_dev": sum(d > 0 for d in dev), "n": len(dev),
            "chosen": challenger if diff > margin else incumbent}


def markdown(r: dict[str, Any]) -> str:
    names = list(r["variants"])
    lines = ["# The quick preset's stage 2, decided on dev", "",
             f"Quick preset (`dynabert run --preset quick`), tasks {', '.join(r['tasks'])}, seeds "
             f"{', '.join(map(str, r['seeds']))}; per task-seed one teacher, rewiring and stage 1, then each stage-2 "
             "variant from that same stage 1. Accuracy in %: the mean of the 12 grid points (the smallest point, "
             "(0.25, 0.5), in brackets). Variants (flags over the preset):", ""]
    lines += [f"- `{n}`: `{' '.join(r['variants'][n]) or '(the preset)'}`" for n in names]
    lines += ["", "| task | seed | teacher dev | " + " | ".join(f"{n}: dev (smallest) | {n}: test" for n in names) + " |",
              "|---|---|---|" + "---|---|" * len(names)]
    for rec in r["records"]:
        b = rec["budgets"]
        td = rec.get("teacher_dev")
        lines.append(f"| {rec['task']} | {rec['seed']} | {'-' if td is None else f'{td:.2f}'} | " + " | ".join(
            f"{b[n]['dev_mean']:.2f} ({b[n]['dev_smallest']:.2f}) | {b[n]['test_mean']:.2f}" for n in names) + " |")
    lines += ["", "Decisions (rules fixed before the runs; dev decides, test is reported):", "",
              "| rule | challenger - incumbent, dev (per task-seed) | test | chosen |", "|---|---|---|---|"]
    for d in r["decisions"]:
        per = ", ".join(f"{x:+.2f}" for x in d["dev_diff_per_task_seed"])
        lines.append(f"| {d['rule']} | {d['dev_diff']:+.2f} ({per}) | {d['test_diff']:+.2f} | **{d['chosen']}** |")
    lines += ["", "Stage-2 seconds, mean over task-seeds: " + ", ".join(
                  f"`{n}` {mean(rec['budgets'][n]['seconds'] for rec in r['records']):.0f} s" for n in names)
              + f". Total {r['total_seconds']:.0f} s.", "", "Fingerprint:", "", "```json",
              json.dumps(r["fingerprint"], indent=1, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from bench.common import RESULTS, provenance
    from profiling.fingerprint import fingerprint

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "quick_preset")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="bbc, one seed, a few steps (the path, not a figure)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    tasks, seeds, variants, flags = ((QUICK["tasks"], QUICK["seeds"], QUICK["variants"], QUICK["flags"]) if a.quick
                                     else (TASKS, SEEDS, VARIANTS, ()))
    missing = [t for t in tasks if t != "bbc" and not (a.data / t).is_dir()]
    if missing:
        raise SystemExit(f"error: {a.data} lacks {', '.join(missing)} (../shared/data beside the checkout)")
    records = [run_task_seed(a.runs / f"{t}-s{s}", t, s, variants, a.data, flags, a.threads)
               for t in tasks for s in seeds]
    result = {"tasks": list(tasks), "seeds": list(seeds), "variants": {k: list(v) for k, v in variants.items()},
              "records": records, "decisions": [decide(records, *d) for d in DECISIONS], "quick": a.quick,
              "fingerprint": fingerprint(a.threads, "cpu"), **provenance(), "total_seconds": time.perf_counter() - t0}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quick_preset.json").write_text(json.dumps(result, indent=2) + "\n")
    (a.out / "quick_preset.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
