"""Benchmark: the task suite (issue 35): DynaBERT's standard recipe against the released code's stage-2 recipe,
against itself without the hard-label term, and against same-harness students, on six tasks and two seeds, with
paired-bootstrap intervals over test examples; results/suite.{json,md}.

Per task and seed, from one teacher and one stage 1 (bench/suite_runs.py for the layout): the standard grid,
stage 2 without the hard-label term, the released code's stage 2 (lr 2e-5, no hard term, no selection), the three
students of baselines_lr2e-4 at the same steps, lr and selection as the standard stage 2, and the INT8 teacher.
Steps per stage: bench/suite_plan.py (the whole suite in at most 8 hours alone on 2 cores).

Resumable and runnable in the background across sessions: each task-seed trains in its own folder through the
`dynabert` CLI (finished stages skipped, interrupted ones resumed) and writes `<task>-s<seed>/suite_rows.json`
when done; the report reads whichever of those exist and names the task-seeds still missing.

    python -m bench.suite                      # train what is missing, then write the report
    python -m bench.suite --report-only        # the report from the task-seeds finished so far
    python -m bench.suite --quick --runs /tmp/s --out /tmp/s   # a slice of trec, 1 seed, a few steps (minutes)

In the background (rerun the same line after a kill or a new session: it continues where it stopped; stop it
with `kill -- -<pid>` so that the `dynabert` process it started stops too):

    mkdir -p runs && setsid nohup make bench ONLY=suite > runs/suite.log 2>&1 < /dev/null & echo $!
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from bench import suite_plan
from bench.rundirs import set_aside
from bench.suite_runs import PARTIAL, RECIPE, ROOT, Runner, TaskSeed, record
from bench.suite_stats import N_RESAMPLES, cost, diffs, seed_dev, targets

DATA = ROOT.parent / "shared" / "data"
# --quick: a small slice of trec (no dev file: dev carved from train, as in the full run; bbc where the shared
# data is absent), one seed, batch 8: about 20 short processes, a few minutes on 2 quiet cores
QUICK = {"tasks": ("trec",), "seeds": (42,), "teacher_steps": 6, "steps": 4, "max_length": 32,
         "select_every": 2, "save_every": 2, "batch_size": 8, "slice": {"train": 240, "dev": 40, "test": 48}}


def quick_data(out: Path, tasks: Sequence[str], data: Path) -> dict[str, str]:
    """Small TSV slices of `tasks` under `out` (a temporary folder: never the repository): the first rows of each
    split (bbc: of its seeded carve); trec keeps no dev file. A task whose data is absent is left out."""
    from elastic.data.tasks import load_task
    specs = {}
    for t in tasks:
        src = "bbc" if t == "bbc" else str(data / t)
        if t != "bbc" and not (data / t).is_dir():
            continue
        task = load_task(src, seed=42)
        (out / t).mkdir(parents=True, exist_ok=True)
        for split, n in QUICK["slice"].items():
            if split in task.splits and not (t == "trec" and split == "dev"):
                frame = task.splits[split].head(n)
                cols = [c for c in ("text_a", "text_b") if c in frame]
                names = {"text_a": "sentence"} if len(cols) == 1 else {"text_a": "sentence1", "text_b": "sentence2"}
                frame = frame[cols + ["label"]].rename(columns=names)
                frame.to_csv(out / t / f"{split}.tsv", sep="\t", index=False)
        specs[t] = str(out / t)
    return specs


def run_task_seed(root: Path, ts: TaskSeed, threads: int) -> str:
    """Train what is missing of one task-seed and write its record; returns "done", "reused" or "failed: ..."."""
    recipe = json.dumps(vars(ts), sort_keys=True)
    rf = root / RECIPE

    def same(old: dict[str, Any]) -> bool:  # the data folder may be named another way: the task name decides
        return {k: v for k, v in old.items() if k != "spec"} == {k: v for k, v in vars(ts).items() if k != "spec"}
    if rf.is_file() and not same(json.loads(rf.read_text())):
        print(f"{root}: trained with another recipe ({rf.read_text().strip()}); set aside as "
              f"{set_aside(root).name}", flush=True)
    if (root / PARTIAL).is_file():
        return "reused"
    root.mkdir(parents=True, exist_ok=True)
    rf.write_text(recipe + "\n")
    t0 = time.time()
    try:
        Runner(root, ts, threads).train()
        rec = record(root, ts, threads)
    except (subprocess.CalledProcessError, SystemExit, OSError, ValueError, KeyError) as e:
        (root / "suite_failed.json").write_text(json.dumps({"error": f"{type(e).__name__}: {e}",
                                                            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ")}) + "\n")
        return f"failed: {type(e).__name__}: {e}"
    rec["wall_seconds"] = round(time.time() - t0, 1)
    (root / PARTIAL).write_text(json.dumps(rec) + "\n")
    (root / "suite_failed.json").unlink(missing_ok=True)
    return "done"


def progress(root: Path) -> str:
    """What a started task-seed has finished so far."""
    parts = [f"{v}/{s}" for v in ("standard", "nohard", "released") for s in ("teacher", "stage1", "stage2")
             if (root / v / s / "done.json").is_file() and not (v != "standard" and s != "stage2")]
    studs = list((root / "students" / "baselines").glob("*/done.json"))
    failed = root / "suite_failed.json"
    return (", ".join(parts) or "nothing finished") + (f", {len(studs)} student(s)" if studs else "") + (
        f"; last failure: {json.loads(failed.read_text())['error']}" if failed.is_file() else "")


def majority(suite_dir: Path, records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task, the accuracy (%) of always predicting the most frequent label of dev and of test, mean over the
    records' seeds (bbc and trec carve splits by seed): what a model that learned nothing scores. Read from each
    task-seed's data as its standard run loaded it (run.json); a task-seed whose data cannot be loaded is left out."""
    from elastic.data.tasks import load_task
    from elastic.training.prepare import task_columns
    from elastic.training.stages import majority_accuracy

    acc: dict[str, dict[str, list[float]]] = {}
    for r in records:
        run_json = suite_dir / f"{r['task']}-s{r['seed']}" / "standard" / "run.json"
        try:
            run = json.loads(run_json.read_text())
            task = load_task(run["task_spec"], seed=int(run.get("seed", r["seed"])), **task_columns(run))
        except (OSError, ValueError, KeyError) as e:  # absent or moved data: the report goes on without it
            print(f"note: no majority-class figure for {r['task']}-s{r['seed']}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            continue
        for split in ("dev", "test"):
            m = majority_accuracy(task, split)
            if m is not None:
                acc.setdefault(r["task"], {}).setdefault(split, []).append(m)
    return {t: {s: round(sum(v) / len(v), 2) for s, v in splits.items()} for t, splits in acc.items()}


def training_changes(records: Sequence[dict[str, Any]]) -> list[str] | None:
    """When the task-seeds were trained at several commits of the training sources: the files among them that
    differ between those commits (git, in commit order), so the report can say whether the training itself changed;
    None for one commit, or when git cannot tell (a commit not in this clone)."""
    from bench.rundirs import git
    from bench.suite_runs import TRAIN_SOURCES
    commits = {r.get("train_sources_commit") for r in records}
    if len(commits) < 2 or not all(commits):
        return None
    ordered = git("rev-list", "--topo-order", "--no-walk", *commits).split()  # newest first
    if len(ordered) != len(commits):
        return None
    files = git("diff", "--name-only", ordered[-1], ordered[0], "--", *TRAIN_SOURCES)
    return sorted(files.split())


def aggregate(suite_dir: Path, *, tasks: Sequence[str], seeds: Sequence[int], steps: dict[str, Any],
              n_resamples: int = N_RESAMPLES, max_length: int = suite_plan.MAX_LENGTH, batch_size: int = 32) -> tuple[dict[str, Any], str]:
    """The result (suite.json's content) and its markdown from the records under `suite_dir`."""
    records, missing, in_progress = [], [], {}
    for seed in seeds:
        for task in tasks:
            root = suite_dir / f"{task}-s{seed}"
            f = root / PARTIAL
            if f.is_file() and json.loads(f.read_text()).get("complete"):
                records.append(json.loads(f.read_text()))
            else:
                missing.append(f"{task}-s{seed}")
                if root.is_dir():
                    in_progress[f"{task}-s{seed}"] = progress(root)
    rows = [{"task": r["task"], "seed": r["seed"], **{k: v for k, v in row.items() if k != "test_correct"}}
            for r in records for row in r["rows"]]
    diff_rows = diffs(records, n_resamples=n_resamples) if records else []
    cost_info = cost(records)
    result = {"tasks": list(tasks), "seeds": list(seeds), "steps_per_stage": steps, "max_length": max_length,
              "batch_size": batch_size,
              "complete": [f"{r['task']}-s{r['seed']}" for r in records], "missing": missing,
              "in_progress": in_progress, "rows": rows, "diffs": diff_rows, "seed_dev_diffs": seed_dev(records),
              "cost": cost_info,
              "targets": targets(records, diff_rows, cost_info, len(tasks)),
              "bootstrap": {"resamples": n_resamples, "level": 0.95, "unit": "test example, pooled over seeds "
                            "(and grid points) per example; tasks weigh the same in 'all'", "seed": 0},
              "majority": majority(suite_dir, records),
              "trained_at": sorted({r.get("train_sources_commit", "?") for r in records}),
              "trained_at_changes": training_changes(records),
              "task_seed_seconds": {f"{r['task']}-s{r['seed']}": r.get("wall_seconds") for r in records}}
    from bench.suite_report import render
    return result, render(result)


def main(argv: Sequence[str] | None = None) -> int:
    from bench.common import RESULTS, provenance, write_result
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "suite", help="where the task-seeds train")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (sst2/, mr/, ...)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of suite.json / suite.md")
    ap.add_argument("--tasks", default=",".join(suite_plan.TASKS))
    ap.add_argument("--seeds", default=",".join(map(str, suite_plan.SEEDS)))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small slices of trec and bbc, one seed, a few steps")
    ap.add_argument("--report-only", action="store_true", help="train nothing: report the finished task-seeds")
    a = ap.parse_args(argv)
    tasks = [t for t in a.tasks.split(",") if t]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    if a.quick:
        tasks, seeds = list(QUICK["tasks"]), list(QUICK["seeds"])
        specs = quick_data(a.runs / "data", tasks, a.data) or quick_data(a.runs / "data", ["bbc"], a.data)
        tasks = list(specs)
        steps = {t: {"teacher": QUICK["teacher_steps"], "stage": QUICK["steps"]} for t in tasks}
        length, sel, save, batch = QUICK["max_length"], QUICK["select_every"], QUICK["save_every"], QUICK["batch_size"]
    else:
        specs = {t: "bbc" if t == "bbc" else str((a.data / t).resolve()) for t in tasks}
        steps = {t: dict(suite_plan.STEPS[t]) for t in tasks}
        length, sel, save, batch = suite_plan.MAX_LENGTH, suite_plan.SELECT_EVERY, 25, 32
        absent = [t for t in tasks if t != "bbc" and not (a.data / t).is_dir()]
        if absent and not a.report_only:
            print(f"error: no data for {', '.join(absent)} under {a.data}", file=sys.stderr)
            return 2
    outcomes = {}
    if not a.report_only:
        for seed in seeds:  # every task once before the second seed: a partial suite covers all tasks
            for t in tasks:
                ts = TaskSeed(t, specs[t], seed, steps[t]["teacher"], steps[t]["stage"], max_length=length,
                              select_every=sel, save_every=save, batch_size=batch)
                outcomes[ts.name] = run_task_seed(a.runs / ts.name, ts, a.threads)
                print(f"== {ts.name}: {outcomes[ts.name]}", flush=True)
    result, md = aggregate(a.runs, tasks=tasks, seeds=seeds, steps=steps, max_length=length, batch_size=batch)
    result["plan"] = None if a.quick else suite_plan.plan(tasks, seeds)
    result["quick"] = a.quick
    from bench.suite_report import render
    md = render(result)
    result.update(provenance())
    from bench.common import fingerprint
    result["fingerprint"] = fingerprint(a.threads)
    write_result("suite", result, md, a.out)
    print(f"wrote {a.out / 'suite.json'} and .md: {len(result['complete'])} of {len(tasks) * len(seeds)} task-seeds "
          "complete")
    return 1 if any(o.startswith("failed") for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
