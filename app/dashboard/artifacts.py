"""Loaders of every run-directory file (docs/ARTIFACTS.md), checked against its schema, for the dashboard.

The schemas and the list of artifacts are `elastic.rundir`'s (shared with the writers); listing the runs
of a runs directory is `app.dashboard.run_index`'s. Every loader checks the file against its schema and raises `ArtifactError`
(the run directory's one error type, `elastic.rundir.RunDirError`) naming the file and the problem; a file that
is not there raises its subclass `MissingArtifactError`, which also says which command writes it. JSON files are
read by `elastic.rundir.read_json`, the reader their writers' schemas come with. Loaders return plain pandas/dict
values (picklable, so the dashboard can cache them with `st.cache_data`) and never import Streamlit.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from elastic.model.config import BertArch, SubnetConfig
from elastic.export.model_card import CARD_FILE, card_body
from elastic.rundir import (CHECKPOINT_DIRS, CSV_SCHEMAS, DONE_JSON, IMPORTANCE_JSON, JSON_SCHEMAS, PARETO_CSV,
                            PREDICTOR_JSON, SEARCH_JSON, TRIALS_CSV, CsvSchema, MissingArtifactError, RunDir, RunDirError,
                            read_checkpoint_meta)
from elastic.rundir import read_json as _read_json
from elastic.rundir.files import missing as _missing

# Run-directory stage folder -> the subcommand that writes it (for "run `dynabert ...` first" hints).
STAGE_COMMANDS = {"teacher": "train-teacher", "stage1": "train-stage1", "stage2": "train-stage2",
                  "stage3": "train-stage3", "rewired": "rewire"}


# A run-directory file that is malformed (or missing): the message names the file and the problem. The run
# directory's one error type; `MissingArtifactError` (a file not there yet) is its subclass.
ArtifactError = RunDirError
__all__ = ["ArtifactError", "MissingArtifactError"]  # re-exported for the dashboard's pages


PUBLISHED_CSV = Path(__file__).resolve().parents[1] / "data" / "published_reference.csv"
PUBLISHED_COLUMNS = ("name", "source", "macs", "params", "score", "split", "note")
_TRUE = {"true", "1", "yes", "1.0"}
_FALSE = {"false", "0", "no", "0.0", ""}


# Columns an artifact gained after runs had been written (deployment variants, confirmation of the front):
# an older file without them still loads, with them empty (a variant's precision and runtime are read from
# its scenario key). Numeric ones are parsed as numbers where the file has them (empty allowed).
LATER_COLUMNS: dict[str, tuple[str, ...]] = {
    PARETO_CSV: ("precision", "runtime", "dev_se", "confirm_metric", "confirm_se", "confirm_split", "confirm_n",
                 "grid_point"),
    TRIALS_CSV: ("scenario", "precision", "runtime"),
}
LATER_NUMERIC: tuple[str, ...] = ("dev_se", "confirm_metric", "confirm_se", "confirm_n")
_EMPTY = ["", "nan", "NaN", "None"]


# ---------------------------------------------------------------------------------------------- CSV
def load_csv(path: str | os.PathLike, schema: CsvSchema | None = None) -> pd.DataFrame:
    """Read and check one CSV artifact.

    Args:
        path: the file; its name picks the schema from `CSV_SCHEMAS` unless `schema` is given.
        schema: explicit schema.

    Returns:
        The table; numeric columns as floats, boolean columns as bool, and, where the schema has a
        config column, `config` (`SubnetConfig` or None) and `describe` (its short form) added.

    Raises:
        MissingArtifactError: the file does not exist.
        ArtifactError: unreadable CSV, missing columns, non-numeric values, bad config JSON or hash.
    """
    p = Path(path)
    schema = schema or CSV_SCHEMAS[p.name]
    if not p.is_file():
        raise _missing(p, schema.written_by)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{p.name}: not a readable CSV ({str(e).strip()})") from None
    later = LATER_COLUMNS.get(p.name, ()) if schema is CSV_SCHEMAS.get(p.name) else ()
    added = [c for c in later if c not in df.columns]
    missing = [c for c in schema.columns if c not in df.columns and c not in added]
    if missing:
        raise ArtifactError(f"{p.name}: missing column(s) {', '.join(missing)} "
                            f"(expected {', '.join(schema.columns)}; see docs/ARTIFACTS.md)")
    for col in added:
        df[col] = ""
    for col in dict.fromkeys([*schema.numeric, *(c for c in LATER_NUMERIC if c in later)]):
        raw = df[col].str.strip()
        num = pd.to_numeric(raw.replace({e: None for e in _EMPTY}), errors="coerce")
        bad = num.isna() & ~raw.isin(_EMPTY)
        if bad.any():
            i = int(bad.idxmax())
            raise ArtifactError(f"{p.name}: column {col}, row {i + 1}: {raw[i]!r} is not a number")
        if col in schema.numeric and col not in schema.nullable and col not in added and num.isna().any():
            i = int(num.isna().idxmax())
            raise ArtifactError(f"{p.name}: column {col}, row {i + 1} is empty (a number is required)")
        df[col] = num.astype(float)
    if {"precision", "runtime"} & set(added) and "scenario" in df.columns:
        _fill_variant(df)
    for col in schema.booleans:
        low = df[col].str.strip().str.lower()
        unknown = ~low.isin(_TRUE | _FALSE)
        if unknown.any():
            i = int(unknown.idxmax())
            raise ArtifactError(f"{p.name}: column {col}, row {i + 1}: {df[col][i]!r} is not true/false")
        df[col] = low.isin(_TRUE)
    if schema.config_column:
        df["config"], df["describe"] = _parse_configs(df, schema.config_column, p.name)
    elif "config_json" in df.columns:
        # Baselines may have another architecture: parse where possible, never fail on it.
        cfgs = [_try_config(s) for s in df["config_json"]]
        df["config"] = cfgs
        df["describe"] = [c.describe() if c else "" for c in cfgs]
    return df


def _fill_variant(df: pd.DataFrame) -> None:
    """Empty precision/runtime cells from the row's scenario key (a file from before deployment variants)."""
    from profiling.variants import variant_columns

    for i, key in df["scenario"].items():
        if df.at[i, "precision"] and df.at[i, "runtime"]:
            continue
        try:
            cols = variant_columns(key)
        except ValueError:  # not a scenario key: the variant stays unknown
            continue
        df.at[i, "precision"] = df.at[i, "precision"] or cols["precision"]
        df.at[i, "runtime"] = df.at[i, "runtime"] or cols["runtime"]


def _try_config(text: str) -> SubnetConfig | None:
    try:
        return SubnetConfig.from_json(text) if text.strip() else None
    except ValueError:
        return None


def _parse_configs(df: pd.DataFrame, col: str, name: str) -> tuple[list[Any], list[str]]:
    cfgs: list[SubnetConfig | None] = []
    for i, text in enumerate(df[col]):
        if not text.strip():
            if "state" in df.columns and df["state"][i] != "COMPLETE":
                cfgs.append(None)
                continue
            raise ArtifactError(f"{name}: row {i + 1} has an empty {col}")
        try:
            cfg = SubnetConfig.from_json(text)
        except ValueError as e:
            raise ArtifactError(f"{name}: row {i + 1}: bad {col}: {e}") from None
        if "config_hash" in df.columns and df["config_hash"][i].strip() and df["config_hash"][i] != cfg.hash:
            raise ArtifactError(f"{name}: row {i + 1}: config_hash {df['config_hash'][i]} does not match "
                                f"its config_json (hash {cfg.hash})")
        cfgs.append(cfg)
    return cfgs, [c.describe() if c else "" for c in cfgs]


# --------------------------------------------------------------------------------------------- JSON
def read_json(path: str | os.PathLike, written_by: str = "") -> dict[str, Any]:
    """Read a JSON object; `ArtifactError` (naming file, line and column) when it is not one."""
    return _read_json(path, written_by=written_by)


_NUM = (int, float)


def _check_keys(name: str, data: dict[str, Any], schema: str, *, shown: Sequence[str] = ()) -> None:
    """`data` against the JSON schema its writer used (`elastic.rundir.JSON_SCHEMAS`), plus the optional keys
    the dashboard shows (`shown`)."""
    problem = JSON_SCHEMAS[schema].problem(name, data)
    missing = [k for k in shown if k not in data]
    if problem is None and missing:
        problem = f"{name}: missing key(s) {', '.join(missing)}"
    if problem:
        raise ArtifactError(problem)


def load_run_json(path: str | os.PathLike) -> dict[str, Any]:
    """run.json: resolved options, `task` (dict from `TaskData.to_meta()` or a name), `teacher`,
    `created` (ISO time), `stage_seconds` {stage: seconds}. Adds `task_name`. Read by the run directory's one
    reader of run.json (`RunDir.read_run`)."""
    data = RunDir(Path(path).parent).read_run(required=True)
    for stage, s in (data.get("stage_seconds") or {}).items():
        if not isinstance(s, _NUM) or isinstance(s, bool):
            raise ArtifactError(f"run.json: stage_seconds[{stage!r}] must be a number of seconds, got {s!r}")
    if data.get("created"):
        try:
            pd.Timestamp(data["created"])
        except ValueError:
            raise ArtifactError(f"run.json: created {data['created']!r} is not an ISO time") from None
    task = data.get("task") or data.get("task_spec") or "?"
    data["task_name"] = task.get("name", "?") if isinstance(task, dict) else str(task)
    return data


def load_importance(path: str | os.PathLike) -> dict[str, Any]:
    """importance.json: `head` [layers][heads] and `ffn` [layers][neurons] scores in original unit order."""
    data = read_json(path)
    _check_keys(IMPORTANCE_JSON, data, IMPORTANCE_JSON)
    for key in ("head", "ffn", "head_order", "ffn_order"):
        rows = data.get(key)
        if rows is None:
            continue
        if not rows or not all(isinstance(r, list) and r for r in rows):
            raise ArtifactError(f"importance.json: {key} must be a non-empty list of per-layer lists")
        if len({len(r) for r in rows}) != 1:
            raise ArtifactError(f"importance.json: {key} rows have different lengths {sorted({len(r) for r in rows})}")
        if not all(isinstance(v, _NUM) and not isinstance(v, bool) and math.isfinite(v) for r in rows for v in r):
            raise ArtifactError(f"importance.json: {key} holds a value that is not a finite number")
    if len(data["head"]) != len(data["ffn"]):
        raise ArtifactError(f"importance.json: head has {len(data['head'])} layers but ffn has {len(data['ffn'])}")
    return data


def load_predictor(path: str | os.PathLike) -> dict[str, Any]:
    """predictor.json: scenario, kind, mape_pct, kendall_tau, n_heldout, points [{config_hash, predicted_ms,
    measured_ms}]. Returns the dict with `points` as a DataFrame."""
    data = read_json(path)
    _check_keys(PREDICTOR_JSON, data, PREDICTOR_JSON, shown=("mape_pct", "kendall_tau", "points"))
    for i, pt in enumerate(data["points"]):
        if not isinstance(pt, dict) or not all(k in pt for k in ("config_hash", "predicted_ms", "measured_ms")):
            raise ArtifactError(f"predictor.json: points[{i}] needs config_hash, predicted_ms, measured_ms")
        if not all(isinstance(pt[k], _NUM) for k in ("predicted_ms", "measured_ms")):
            raise ArtifactError(f"predictor.json: points[{i}] predicted_ms/measured_ms must be numbers (ms)")
    data["points"] = pd.DataFrame(data["points"], columns=["config_hash", "predicted_ms", "measured_ms"])
    return data


def load_search(path: str | os.PathLike) -> dict[str, Any]:
    """search.json: scenario, objectives, reference_point, hypervolume, hypervolume_history [[n, hv]],
    knee_hash, n_trials, seconds_per_trial."""
    data = read_json(path)
    _check_keys(SEARCH_JSON, data, SEARCH_JSON)
    for i, pair in enumerate(data.get("hypervolume_history") or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, _NUM) for v in pair)):
            raise ArtifactError(f"search.json: hypervolume_history[{i}] must be [n_trials, hypervolume], got {pair!r}")
    return data


def stale_search_note(run_dir: Path, search: dict[str, Any]) -> str | None:
    """A note when search.json's front was searched on other weights than the run's checkpoint of that
    stage now (the stage was retrained after the search); None when they agree or nothing was recorded."""
    from search.evaluator import checkpoint_stamp  # light: json and paths only

    searched = search.get("checkpoint")
    if not isinstance(searched, str) or "@" not in searched:
        return None
    stage = searched.split("@", 1)[0]
    ckpt = Path(run_dir) / stage
    try:
        if checkpoint_stamp(stage, ckpt) == searched:
            return None
    except OSError:  # neither done.json's finished_at nor the weights
        return f"The searched front comes from a `{stage}` checkpoint that this run no longer has."
    return (f"The searched front was searched on an earlier training of `{stage}` ({searched.rstrip(':')}): its "
            "metrics are not the current weights'. Run `dynabert search --study-name NEW` again.")


def load_published_reference(path: str | os.PathLike = PUBLISHED_CSV) -> pd.DataFrame:
    """The published SST-2 reference points shipped with the app (not measured here).

    Returns:
        name, source, macs (multiply-adds at seq 128, may be NaN), params (count, may be NaN),
        score (%), split (dev/test), note.
    """
    df = load_csv(path, CsvSchema(PUBLISHED_COLUMNS, numeric=("macs", "params", "score"),
                                  nullable=("macs", "params"), config_column=None, written_by="the app package"))
    return df


def load_log(path: str | os.PathLike) -> pd.DataFrame:
    """logs/<stage>.jsonl: one object per logged step with `step`, `loss` (and `lr`, `subnets_per_s`;
    evaluation lines add `dev_metric`). Returns one row per line."""
    p = Path(path)
    if not p.is_file():
        raise _missing(p, f"dynabert {STAGE_COMMANDS.get(p.stem, 'run')}")
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ArtifactError(f"logs/{p.name}: line {i} is not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or not isinstance(row.get("loss"), _NUM):
            raise ArtifactError(f"logs/{p.name}: line {i} needs an integer step and a numeric loss")
        rows.append(row)
    return pd.DataFrame(rows)


def load_done(path: str | os.PathLike) -> dict[str, Any]:
    """<stage>/done.json: {steps, epochs, seconds, finished_at} once a stage is complete."""
    stage = Path(path).parent.name
    return _read_json(path, DONE_JSON, label=f"{stage}/{DONE_JSON}",
                      written_by=f"dynabert {STAGE_COMMANDS.get(stage, 'run')}")


def study_summaries(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Studies in an Optuna SQLite file: [{name, n_trials, directions}]."""
    import optuna

    p = Path(path)
    if not p.is_file():
        raise _missing(p, "dynabert search")
    try:
        # Read-only URI: the dashboard must never create tables in (or migrate) a run's database.
        storage = optuna.storages.RDBStorage(f"sqlite:///file:{p.resolve()}?mode=ro&uri=true",
                                             skip_compatibility_check=True)
        return [{"name": s.study_name, "n_trials": s.n_trials, "directions": [d.name for d in s.directions]}
                for s in optuna.study.get_all_study_summaries(storage)]
    except Exception as e:  # noqa: BLE001 - SQLAlchemy/Optuna raise many kinds on a foreign file
        raise ArtifactError(f"{p.name}: not an Optuna SQLite study ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------------------- checkpoints, exports
def load_arch(run_dir: Path) -> BertArch | None:
    """The full architecture from a stage checkpoint's elastic_config.json, if any stage wrote one."""
    for d in CHECKPOINT_DIRS:
        try:
            return BertArch.from_dict(read_checkpoint_meta(RunDir(run_dir).stage(d))["arch"])
        except (ValueError, KeyError, TypeError):  # RunDirError (missing, broken) is a ValueError
            continue
    return None


@dataclass
class ExportInfo:
    """One exported sub-network under `<run>/exports/<name>/`."""

    name: str
    path: Path
    card: str | None
    files: list[tuple[str, int]]  # (relative path, bytes)


def list_exports(run_dir: Path) -> list[ExportInfo]:
    """Exports of a run, with their model card text (None when the card is missing)."""
    root = RunDir(run_dir).exports_dir
    if not root.is_dir():
        return []
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted((str(f.relative_to(d)), f.stat().st_size) for f in d.rglob("*") if f.is_file())
        card = d / CARD_FILE
        out.append(ExportInfo(d.name, d, card_body(card.read_text(encoding="utf-8")) if card.is_file() else None,
                              files))
    return out
