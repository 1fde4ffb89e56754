"""Helpers shared by the dashboard pages: the selected run, cached artifact loading, clear error messages.

Not a page itself (main.py lists the pages explicitly). Loaders are cached with `st.cache_data`, keyed
by the file's path and modification time, so a rewritten artifact is re-read on the next rerun.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st

from app.dashboard import artifacts as A
from elastic.rundir import (CSV_SCHEMAS, DONE_JSON, DYNABERT_STAGES, IMPORTANCE_JSON, LOGS_DIR, PREDICTOR_JSON, RUN_JSON,
                            SEARCH_JSON, STUDY_DB)

LOADERS: dict[str, Callable[[Path], Any]] = {
    RUN_JSON: A.load_run_json,
    IMPORTANCE_JSON: A.load_importance,
    PREDICTOR_JSON: A.load_predictor,
    SEARCH_JSON: A.load_search,
    **{name: A.load_csv for name in CSV_SCHEMAS},
}


def _loader_for(name: str) -> Callable[[Path], Any]:
    if name.startswith(f"{LOGS_DIR}/"):
        return A.load_log
    if name.endswith(f"/{DONE_JSON}"):
        return A.load_done
    if name == STUDY_DB:
        return A.study_summaries
    return LOADERS[name]


@st.cache_data(show_spinner=False, max_entries=128)
def _cached(name: str, path: str, mtime_ns: int) -> Any:
    """Load one artifact; the mtime argument only keys the cache."""
    return _loader_for(name)(Path(path))


@st.cache_data(show_spinner=False)
def _published(path: str, mtime_ns: int) -> pd.DataFrame:
    return A.load_published_reference(path)


def published_reference() -> pd.DataFrame | None:
    """The shipped published reference points, or None (with a warning) if the file is broken."""
    p = A.PUBLISHED_CSV
    try:
        return _published(str(p), p.stat().st_mtime_ns if p.exists() else 0)
    except A.ArtifactError as e:
        st.warning(f"Published reference points unavailable: {e}")
        return None


def load(run_dir: Path, name: str, *, quiet_missing: bool = False) -> Any:
    """Load `name` from the run, or show why not (info if missing, error if malformed) and return None.

    Args:
        run_dir: the run directory.
        name: an artifact path relative to the run, from docs/ARTIFACTS.md (e.g. `pareto.csv`,
            `logs/stage2.jsonl`, `stage2/done.json`, `study.db`).
        quiet_missing: show nothing when the file is simply absent (optional extras).
    """
    path = run_dir / name
    try:
        mtime = path.stat().st_mtime_ns if path.exists() else 0
        return _cached(name, str(path), mtime)
    except A.MissingArtifactError as e:
        if not quiet_missing:
            st.info(f"{e}. This part of the page needs it.")
    except A.ArtifactError as e:
        st.error(f"Cannot read `{name}` of run `{run_dir.name}`: {e}")
    return None


def runs_dir() -> Path:
    """The runs directory main.py resolved (--runs-dir, DYNABERT_RUNS_DIR or ./runs)."""
    return Path(st.session_state.get("runs_dir", "runs"))


def current_run() -> Path:
    """The run picked in the sidebar; shows a clear page and stops the script when there is none."""
    name = st.session_state.get("run_name")
    root = runs_dir()
    if not name or not (root / name).is_dir():
        no_runs_page(root)
        st.stop()
    return root / name


def no_runs_page(root: Path) -> None:
    """What to show when the runs directory holds no run."""
    st.info(f"No runs found under `{root}`.\n\nA run directory is created by `dynabert run --run-dir "
            f"{root}/<name> ...` (or its stage commands, e.g. `dynabert train-teacher`); point the dashboard "
            "elsewhere with `dynabert dashboard --runs-dir DIR` or the environment variable `DYNABERT_RUNS_DIR`.")


def metric_name(run_dir: Path) -> str:
    """The run's primary metric name (from run.json), for axis titles; 'metric' if unknown."""
    meta = load(run_dir, RUN_JSON, quiet_missing=True)
    if not meta:
        return "metric"
    task = meta.get("task")
    return str(meta.get("metric") or (task.get("metric") if isinstance(task, dict) else None) or "metric")


def stage2_grid(grid: pd.DataFrame | None) -> pd.DataFrame | None:
    """The uniform-grid rows of the last trained stage (stage2 normally; stage3 if fine-tuned)."""
    if grid is None or grid.empty:
        return None
    for stage in DYNABERT_STAGES:
        if (grid["stage"] == stage).any():
            return grid[grid["stage"] == stage].reset_index(drop=True)
    return grid


def config_choices(front: pd.DataFrame | None, grid: pd.DataFrame | None) -> dict[str, pd.Series]:
    """Labelled configs to pick from: front points (by trial) then uniform grid points."""
    from app.dashboard import front_view as V

    out: dict[str, pd.Series] = {}
    if front is not None:
        for _, r in front.sort_values("dev_metric", ascending=False).iterrows():
            knee = " (knee)" if r.get("knee") else ""
            variant = f" · {V.variant_label(r.get('precision'), r.get('runtime'))}" if r.get("precision") else ""
            out[f"front · trial {int(r.trial)}{knee}{variant} · {V.confirmation_text(r)} · {r['describe']}"] = r
    if grid is not None:
        for _, r in grid.iterrows():
            out[f"grid · width {r.width_mult:g} × depth {r.depth_mult:g} · dev {r.dev_metric:.2f} %"] = r
    return out


def frame_for_display(df: pd.DataFrame) -> pd.DataFrame:
    """Drop object columns (parsed configs) that Arrow cannot show."""
    return df.drop(columns=[c for c in ("config",) if c in df.columns])
