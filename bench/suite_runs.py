"""One task-seed of the task suite (bench/suite.py): its run directories, the `dynabert` commands that train
them (each resumable: finished stages are skipped, interrupted ones resume), and its record
`<root>/suite_rows.json`: every row's dev/test accuracy, MACs, test correctness vector and training seconds.

Layout of `<runs>/suite/<task>-s<seed>/`:
    standard/   teacher, rewired, stage1, and stage 2 of the standard preset (lr 2e-4, hard-label term, selection)
    nohard/     stage 2 without the hard-label term, from standard/'s stage 1 (hard-linked, not trained again)
    released/   the released code's stage 2 (lr 2e-5, no hard-label term, no selection), from the same stage 1
    students/   the three students of baselines_lr2e-4 (same steps, lr and selection as the standard stage 2),
                from standard/'s teacher and rewiring
    suite_recipe.json   what this task-seed trains with; a later run asking otherwise sets the folder aside
    suite_rows.json     the record, written once everything above has finished
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTIAL = "suite_rows.json"
RECIPE = "suite_recipe.json"
TRAIN_SOURCES = ("elastic/", "app/cli/main.py", "app/cli/common.py", "app/cli/train.py", "app/cli/runtime.py",
                 "app/workflow/train.py", "app/workflow/baselines.py", "app/cli/baselines.py")
# stage-2 variants: extra options of `dynabert train-stage2` over its defaults (the standard preset's stage 2)
VARIANTS: dict[str, tuple[str, ...]] = {"standard": (), "nohard": ("--hard-weight", "0"),
                                        "released": ("--lr", "2e-5", "--hard-weight", "0", "--select-best", "off")}
# the students of bench/registry.py's baselines_lr2e-4: suite name -> (recipe options, width, depth multipliers)
STUDENTS: dict[str, tuple[tuple[str, ...], float, float]] = {
    "distilbert-d3": (("--recipe", "distilbert", "--depth", "3"), 1.0, 0.5),
    "tinybert-d6-w0.5": (("--recipe", "tinybert", "--depth", "6", "--width", "0.5", "--tinybert-budget", "split"),
                         0.5, 1.0),
    "tinybert-d3-w0.5": (("--recipe", "tinybert", "--depth", "3", "--width", "0.5", "--tinybert-budget",
                          "per-phase"), 0.5, 0.5),
}
STUDENT_LR = "2e-4"  # the standard stage 2's


@dataclass
class TaskSeed:
    """What one task-seed trains with (its `suite_recipe.json`)."""

    task: str
    spec: str  # the --task argument: a data folder or "bbc"
    seed: int
    teacher_steps: int
    steps: int
    max_length: int = 64
    select_every: int = 50
    save_every: int = 25
    batch_size: int = 32

    @property
    def name(self) -> str:
        return f"{self.task}-s{self.seed}"


def link_tree(src: Path, dst: Path) -> None:
    """Copy a finished stage folder as hard links (no extra space; nothing rewrites a finished stage's files)."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link)
    else:
        link(str(src), str(dst))


def seed_from(src: Path, dst: Path, items: tuple[str, ...]) -> None:
    """`items` of run directory `src` into `dst` where `dst` lacks them (run.json copied: stages rewrite it)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in items:
        if not (dst / item).exists() and (src / item).exists():
            (shutil.copy2 if item == "run.json" else link_tree)(src / item, dst / item)


class Runner:
    """Runs one task-seed's commands, resumably; `log` gets one line per command."""

    def __init__(self, root: Path, ts: TaskSeed, threads: int) -> None:
        self.root, self.ts = root, ts
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

    def cli(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "app.cli", *args]
        print(f"[{self.ts.name}] + " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, env=self.env)

    def stage(self, run: Path, name: str, steps: int, *extra: str) -> None:
        self.cli(name, "--run-dir", str(run), "--max-steps", str(steps), "--save-every", str(self.ts.save_every),
                 "--batch-size", str(self.ts.batch_size), "--resume", "--no-progress", *extra)
        done = json.loads((run / name.removeprefix("train-") / "done.json").read_text())
        if int(done["steps"]) != steps:
            raise SystemExit(f"{run}/{name.removeprefix('train-')} was trained for {done['steps']} steps, the suite "
                             f"asks for {steps}: move that run directory away")

    def train(self) -> None:
        ts, std = self.ts, self.root / "standard"
        sel = ("--select-every", str(ts.select_every))
        self.stage(std, "train-teacher", ts.teacher_steps, "--task", ts.spec, "--max-length", str(ts.max_length),
                   "--seed", str(ts.seed))
        self.cli("rewire", "--run-dir", str(std), "--no-progress")
        self.stage(std, "train-stage1", ts.steps, *sel)
        for v in VARIANTS:  # seeded before any stage 2 runs: run.json as stage 1 left it
            if v != "standard":
                seed_from(std, self.root / v, ("run.json", "tokenizer", "teacher", "rewired", "importance.json",
                                               "stage1"))
        seed_from(std, self.root / "students", ("run.json", "tokenizer", "teacher", "rewired", "importance.json"))
        for v, extra in VARIANTS.items():
            self.stage(self.root / v, "train-stage2", ts.steps, *sel, *extra)
        stud = self.root / "students"
        for name, (opts, _, _) in STUDENTS.items():
            if (stud / "baselines" / student_dir(name, stud) / "done.json").exists():
                continue
            self.cli("baselines", "--run-dir", str(stud), *opts, "--max-steps", str(ts.steps), "--lr", STUDENT_LR,
                     "--select-best", "heldout", "--select-every", str(ts.select_every), "--save-every",
                     str(ts.save_every), "--batch-size", str(ts.batch_size),
                     "--scenario", f"cpu-eager-t2-b1-s{ts.max_length}", "--min-run-time", "0.05",
                     "--resume", "--no-progress")


def student_dir(name: str, run: Path) -> str:
    """The folder `dynabert baselines` saves the student `name` in (its name: recipe, width, teacher layers)."""
    from elastic.training.students import distilbert_layers
    from elastic.model.weights import load_checkpoint
    arch = load_checkpoint(run / "rewired")[0].arch
    opts, w, d = STUDENTS[name]
    layers = "-".join(map(str, distilbert_layers(arch.num_layers, int(round(d * arch.num_layers)))))
    return f"distilbert-L{layers}" if opts[1] == "distilbert" else f"tinybert-w{w:g}-L{layers}"


# ---- the record -----------------------------------------------------------------------------------
def record(root: Path, ts: TaskSeed, threads: int) -> dict[str, Any]:
    """Every row of the task-seed with its test correctness vector (in the test file's order), from the
    finished run directories."""
    import hashlib

    import numpy as np
    import pandas as pd
    import torch

    from app.workflow.baselines import int8_predictor
    from bench.suite_stats import to_bits
    from elastic.model.config import SubnetConfig
    from elastic.training.evaluate import make_eval_loader, predict_logits
    from elastic.training.prepare import load_stage_model, prepare
    from elastic.training.stage_options import StageOptions
    from elastic.model.weights import load_checkpoint
    from profiling.flops import analytic_macs

    torch.set_num_threads(threads)
    std = root / "standard"
    prep = prepare(std, StageOptions(progress=False))
    loaders = {s: make_eval_loader(prep.loaders[s].dataset) for s in ("dev", "test")}
    labels = {s: np.asarray(prep.loaders[s].dataset.labels) for s in ("dev", "test")}
    n_labels = prep.task.num_labels

    def unsort(pred_sorted: np.ndarray, split: str) -> np.ndarray:
        o = np.array(sorted(range(len(labels[split])), key=lambda i: loaders[split].dataset.lengths[i]))
        out = np.empty_like(pred_sorted)
        out[o] = pred_sorted
        return (out == labels[split]).astype(int)

    def correct(model, cfg, split="test") -> np.ndarray:
        logits, _ = predict_logits(model, loaders[split], cfg)
        return unsort(logits.argmax(-1), split)

    rows: list[dict[str, Any]] = []

    def add(name, kind, w, d, macs, dev_acc, vec, **more):
        rows.append({"name": name, "kind": kind, "width_mult": w, "depth_mult": d, "macs": int(macs),
                     "dev_acc": round(float(dev_acc), 2), "test_acc": round(100 * float(vec.mean()), 2),
                     "test_correct": to_bits(vec), **more})
    for v in VARIANTS:
        run = root / v
        model = load_stage_model(run, "stage2", n_labels)
        grid = pd.read_csv(run / "grid.csv")
        for r in grid[grid.stage == "stage2"].itertuples():
            cfg = SubnetConfig.from_json(r.config_json)
            vec = correct(model, cfg)
            add(v, "dynabert", float(r.width_mult), float(r.depth_mult), r.macs, r.dev_acc, vec,
                grid_test_acc=round(float(r.test_acc), 2))
    teacher = load_stage_model(std, "teacher", n_labels)
    full = SubnetConfig.full(teacher.arch)
    full_macs = analytic_macs(teacher.arch, full, ts.max_length, num_labels=n_labels)
    tm = json.loads((std / "run.json").read_text())["teacher_metrics"]
    add("teacher", "teacher", 1.0, 1.0, full_macs, tm["dev"]["accuracy"], correct(teacher, full))
    int8 = {}
    with __import__("tempfile").TemporaryDirectory(prefix="suite-int8-") as tmp:
        predict = int8_predictor(teacher, full, "eager-int8", Path(tmp), threads)
        for split in ("dev", "test"):
            logits = np.concatenate([predict(b) for b in loaders[split]])
            int8[split] = unsort(logits.argmax(-1), split)
    add("int8-teacher", "int8", 1.0, 1.0, full_macs, 100 * int8["dev"].mean(), int8["test"], runtime="eager-int8")
    seconds: dict[str, Any] = {"teacher": _secs(std / "teacher"), "stage1": _secs(std / "stage1"),
                               "rewire": json.loads((std / "run.json").read_text()).get("stage_seconds", {}).get(
                                   "rewired"),
                               **{f"stage2_{v}": _secs(root / v / "stage2") for v in VARIANTS}, "students": {}}
    stud = root / "students"
    for name, (_, w, d) in STUDENTS.items():
        out = stud / "baselines" / student_dir(name, stud)
        info = json.loads((out / "done.json").read_text())
        model, _ = load_checkpoint(out)
        in_teacher = SubnetConfig.from_dict(info["config"])
        cfg = in_teacher if model.arch.num_layers == teacher.arch.num_layers else SubnetConfig.full(model.arch)
        add(name, "student", w, d, analytic_macs(teacher.arch, in_teacher, ts.max_length, num_labels=n_labels),
            100 * correct(model, cfg, "dev").mean(), correct(model, cfg), student_dir=out.name,
            selected_step=info.get("selected_step"))
        seconds["students"][name] = info["seconds"]
    # which test examples the vectors are over: the same file for every seed, or (bbc) a seeded carve
    frame = prep.task.splits["test"]
    test_set = hashlib.sha1(frame.to_csv(index=False).encode()).hexdigest()[:12]
    from bench.rundirs import git, last_commit
    return {"task": ts.task, "seed": ts.seed, "complete": True, "test_set": test_set, "n_test": int(len(labels["test"])),
            "n_dev": int(len(labels["dev"])), "recipe": asdict(ts), "rows": rows, "seconds": seconds,
            "commit": git("rev-parse", "HEAD") or "unknown", "train_sources_commit": last_commit(TRAIN_SOURCES),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _secs(stage_dir: Path) -> float:
    return float(json.loads((stage_dir / "done.json").read_text())["seconds"])
