"""Run directories of the benches: reuse one whose training code is unchanged, set aside (never delete) one
that is not, and seed a students' run from a trained one.

A run directory trained by `make bench` holds `bench_stamp.json`: the last commit that touched its training
code when training started, and whether that code had uncommitted changes. A later `make bench` reuses it
(the scripts skip finished stages and resume interrupted ones) while that commit is still the last one and
the code is clean; otherwise the folder is renamed `<name>.old-<UTC time>` and trained again.

    python -m bench.rundirs seed runs/sst2_dynabert runs/sst2_dynabert_students_lr1e-4
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
STAMP = "bench_stamp.json"


def git(*args: str, root: Path = ROOT) -> str:
    """stdout of a git command in `root` ("" when it fails: no git, not a repository)."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def tree_dirty(root: Path = ROOT) -> bool:
    """Uncommitted changes to tracked files outside results/ and app/data/step_rates.json (the benches of a chain
    rewrite results/ one after another, and bench/pipeline_quick.py the step rates derived from its result, so
    those files say nothing about the code that runs)."""
    return bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
                    ":(exclude)app/data/step_rates.json", root=root))


def last_commit(paths: Sequence[str], root: Path = ROOT) -> str:
    """The last commit touching any of `paths` ("" when none or no git)."""
    return git("log", "-1", "--format=%H", "--", *paths, root=root)


def paths_dirty(paths: Sequence[str], root: Path = ROOT) -> bool:
    """Uncommitted changes to tracked files under `paths`."""
    return bool(git("status", "--porcelain", "--untracked-files=no", "--", *paths, root=root))


def reusable(run_dir: Path, train_sources: Sequence[str], root: Path = ROOT) -> bool:
    """True when `run_dir` was trained by this training code (stamp commit = last commit of the sources,
    trained and now clean)."""
    stamp = run_dir / STAMP
    if not stamp.is_file():
        return False
    rec = json.loads(stamp.read_text())
    current = last_commit(train_sources, root)
    return bool(current) and rec.get("train_sources_commit") == current and not rec.get("dirty") \
        and not paths_dirty(train_sources, root)


def set_aside(path: Path) -> Path:
    """Rename `path` to `<name>.old-<UTC time>` (`-2`, `-3`, ... when that exists) and return the new path."""
    stem, n = f"{path.name}.old-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}", 1
    aside = path.with_name(stem)
    while aside.exists():  # two set aside within one second
        n += 1
        aside = path.with_name(f"{stem}-{n}")
    path.rename(aside)
    return aside


def prepare(run_dir: Path, train_sources: Sequence[str], root: Path = ROOT, *, reuse: bool = True) -> dict[str, Any]:
    """Reuse `run_dir` when `reuse` and `reusable`, else set it aside and start it anew with a fresh stamp.

    Returns:
        {"run_dir", "reused": bool, "set_aside": the old folder's new path or None, "train_sources_commit"}.
    """
    aside = None
    if reuse and reusable(run_dir, train_sources, root):
        rec = json.loads((run_dir / STAMP).read_text())
        return {"run_dir": str(run_dir), "reused": True, "set_aside": None,
                "train_sources_commit": rec["train_sources_commit"]}
    if run_dir.exists():
        aside = str(set_aside(run_dir))
    run_dir.mkdir(parents=True)
    rec = {"train_sources": list(train_sources), "train_sources_commit": last_commit(train_sources, root),
           "dirty": paths_dirty(train_sources, root), "started_at_commit": git("rev-parse", "HEAD", root=root),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (run_dir / STAMP).write_text(json.dumps(rec, indent=2) + "\n")
    return {"run_dir": str(run_dir), "reused": False, "set_aside": aside,
            "train_sources_commit": rec["train_sources_commit"]}


# What a students' run takes from the trained run: the teacher and its rewiring, not DynaBERT's stages,
# students or searches.
_NOT_SEEDED = {"baselines", "baselines.csv", "exports", "stage1", "stage2", "stage3", "study.db", "bench_search.db",
               "pareto.csv", "trials.csv", "search.json", STAMP}


def seed(src: Path, dst: Path) -> list[str]:
    """Copy the trained teacher and its rewiring (and the run's records) from `src` into `dst` where `dst`
    does not have them yet; returns what was copied."""
    if not (src / "rewired").is_dir():
        raise SystemExit(f"error: {src} has no rewired/ teacher: train it first (make bench ONLY=sst2_dynabert)")
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in sorted(src.iterdir()):
        if item.name in _NOT_SEEDED or (dst / item.name).exists():
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, dst / item.name)
        copied.append(item.name)
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed", help="copy a trained run's teacher and rewiring into another run directory")
    s.add_argument("src", type=Path)
    s.add_argument("dst", type=Path)
    a = ap.parse_args(argv)
    print(f"seeded {a.dst} from {a.src}: {', '.join(seed(a.src, a.dst)) or 'nothing new'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
