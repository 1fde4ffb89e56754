"""The runs of a runs directory, as the dashboard's run picker and Runs page list them.

Where the runs directory is (`--runs-dir`, env `DYNABERT_RUNS_DIR`, `./runs`), which folders are runs, and
a summary of each (task, teacher, date, stage timings, missing artifacts, a broken run.json). The artifacts
themselves are read by `app.dashboard.artifacts`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from app.dashboard.artifacts import ArtifactError, load_run_json
from elastic.rundir import CHECKPOINT_DIRS, REQUIRED, RunDir


@dataclass
class RunSummary:
    """One run directory as the run picker shows it."""

    name: str
    path: Path
    task: str = "?"
    teacher: str = "?"
    created: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    problem: str = ""  # run.json problem, if any


def resolve_runs_dir(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Path:
    """`--runs-dir X` from argv, else env `DYNABERT_RUNS_DIR`, else `./runs`."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir", default=None)
    args, _ = parser.parse_known_args(list(argv or []))
    env = os.environ if env is None else env
    return Path(args.runs_dir or env.get("DYNABERT_RUNS_DIR") or "runs").expanduser().resolve()


def is_run_dir(path: Path) -> bool:
    """A folder holding at least one known artifact or stage checkpoint."""
    return path.is_dir() and (any((path / n).exists() for n in REQUIRED)
                              or any((path / d).is_dir() for d in CHECKPOINT_DIRS))


def missing_artifacts(run_dir: Path) -> list[str]:
    """Names of the contract files this run does not have (yet)."""
    return [n for n in REQUIRED if not (run_dir / n).exists()]


def summarize_run(run_dir: Path) -> RunSummary:
    """Summary of one run; a bad run.json is reported in `problem`, never raised."""
    s = RunSummary(name=run_dir.name, path=run_dir, missing=missing_artifacts(run_dir))
    try:
        meta = load_run_json(RunDir(run_dir).run_json)
    except ArtifactError as e:
        s.problem = str(e)
        return s
    s.task, s.teacher = meta["task_name"], str(meta.get("teacher") or "?")
    s.created = str(meta.get("created") or "")
    s.stage_seconds = {k: float(v) for k, v in (meta.get("stage_seconds") or {}).items()}
    return s


def list_runs(runs_dir: str | os.PathLike) -> list[RunSummary]:
    """Every run directly under `runs_dir`, newest first (by run.json `created`, then name)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = [summarize_run(p) for p in sorted(root.iterdir()) if is_run_dir(p)]
    return sorted(runs, key=lambda r: (r.created, r.name), reverse=True)
