"""The run directory (`runs/<name>/`, docs/ARTIFACTS.md): its paths, `run.json`, and its stage checkpoints.

Every package reads the run directory through this module, so a file name or the order in which stages
are preferred is written once. It sits in `elastic/`, the bottom of the package arrows, and imports
nothing heavy (no torch): the dashboard and `dynabert --help` use it too.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

# ---- paths (docs/ARTIFACTS.md) -------------------------------------------------------------------
RUN_JSON = "run.json"
DONE_JSON = "done.json"
MODEL_FILE = "model.safetensors"  # a checkpoint's weights (elastic.weights.save_checkpoint)
META_FILE = "elastic_config.json"  # a checkpoint's architecture and options
TOKENIZER_DIR = "tokenizer"
IMPORTANCE_JSON = "importance.json"
GRID_CSV = "grid.csv"
LATENCY_CSV = "latency.csv"
PREDICTOR_JSON = "predictor.json"
STUDY_DB = "study.db"
TRIALS_CSV = "trials.csv"
PARETO_CSV = "pareto.csv"
SEARCH_JSON = "search.json"
BASELINES_CSV = "baselines.csv"
BASELINES_DIR = "baselines"
EXPORTS_DIR = "exports"
LOGS_DIR = "logs"

TEACHER = "teacher"
REWIRED = "rewired"
# Folders that hold a stage's checkpoint, in training order.
CHECKPOINT_DIRS: tuple[str, ...] = (TEACHER, REWIRED, "stage1", "stage2", "stage3")
# The trained DynaBERT stages, latest first: what search, evaluation and the dashboard use by default.
DYNABERT_STAGES: tuple[str, ...] = ("stage3", "stage2", "stage1")


# ---- CSV schemas: one per CSV artifact, used by its writer and by the dashboard's loader -------------
@dataclass(frozen=True)
class CsvSchema:
    """Columns of one CSV artifact.

    Attributes:
        columns: every required column.
        numeric: columns that must parse as numbers.
        nullable: numeric columns that may be empty (e.g. test metric without a test split).
        booleans: columns holding true/false.
        config_column: column with `SubnetConfig.to_json()`; parsed into a `config` column.
        written_by: the command that writes the file (for the "missing" message).
    """

    columns: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    nullable: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()
    config_column: str | None = "config_json"
    written_by: str = ""


CSV_SCHEMAS: dict[str, CsvSchema] = {
    GRID_CSV: CsvSchema(
        ("stage", "width_mult", "depth_mult", "config_hash", "config_json", "dev_metric", "test_metric",
         "dev_acc", "test_acc", "macs", "params"),
        numeric=("width_mult", "depth_mult", "dev_metric", "test_metric", "dev_acc", "test_acc", "macs", "params"),
        nullable=("test_metric", "test_acc", "dev_acc"), written_by="dynabert train-teacher / train-stage1 / train-stage2"),
    LATENCY_CSV: CsvSchema(
        ("config_hash", "config_json", "macs", "macs_fvcore", "params", "scenario", "device", "runtime",
         "threads", "batch", "seq_len", "median_ms", "p90_ms", "iqr_ms", "n", "fingerprint"),
        numeric=("macs", "macs_fvcore", "params", "threads", "batch", "seq_len", "median_ms", "p90_ms",
                 "iqr_ms", "n"),
        nullable=("macs_fvcore", "p90_ms", "iqr_ms"), written_by="dynabert profile"),
    TRIALS_CSV: CsvSchema(
        ("trial", "config_hash", "config_json", "dev_metric", "latency_ms", "macs", "params", "state",
         "feasible"),
        numeric=("trial", "dev_metric", "latency_ms", "macs", "params"),
        nullable=("dev_metric", "latency_ms", "macs", "params"), booleans=("feasible",),
        written_by="dynabert search"),
    PARETO_CSV: CsvSchema(
        ("trial", "config_hash", "config_json", "dev_metric", "test_metric", "macs", "params",
         "latency_pred_ms", "latency_measured_ms", "scenario", "knee"),
        numeric=("trial", "dev_metric", "test_metric", "macs", "params", "latency_pred_ms",
                 "latency_measured_ms"),
        nullable=("test_metric", "latency_pred_ms", "latency_measured_ms"), booleans=("knee",),
        written_by="dynabert search"),
    BASELINES_CSV: CsvSchema(
        ("name", "recipe", "config_json", "macs", "params", "dev_metric", "test_metric", "latency_ms",
         "scenario", "steps", "epochs"),
        numeric=("macs", "params", "dev_metric", "test_metric", "latency_ms", "steps", "epochs"),
        nullable=("macs", "test_metric", "latency_ms", "steps", "epochs"), config_column=None,
        written_by="dynabert baselines"),
}


class RunDirError(ValueError):
    """A run directory that does not fit the command (no run.json, other task, missing stage, ...)."""


# ---- run.json ------------------------------------------------------------------------------------
def read_run(run_dir: str | os.PathLike, *, required: bool = False) -> dict[str, Any]:
    """`run.json` of a run directory.

    Args:
        run_dir: the run directory.
        required: raise when there is no run.json (else an empty dict: a run not started yet).

    Returns:
        The recorded options and metadata.

    Raises:
        RunDirError: run.json is not valid JSON, or is missing and `required`.
    """
    f = Path(run_dir) / RUN_JSON
    if not f.exists():
        if required:
            raise RunDirError(f"{run_dir} has no run.json: not a run directory (train one with `dynabert "
                              "train-teacher --run-dir DIR --task ...` and the stages after it)")
        return {}
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise RunDirError(f"{f} is not valid JSON ({e}); fix or delete it") from None


def write_run(run_dir: str | os.PathLike, run: dict[str, Any]) -> None:
    """Write `run.json` atomically (a reader never sees half a file)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RUN_JSON + ".tmp")
    tmp.write_text(json.dumps(run, indent=2, default=str))
    os.replace(tmp, run_dir / RUN_JSON)


# ---- stage checkpoints ---------------------------------------------------------------------------
def find_stage(run_dir: str | os.PathLike, stages: Sequence[str], *, finished: bool = True,
               weights: bool = False) -> Optional[tuple[str, Path]]:
    """The first of `stages` whose folder holds a checkpoint: the one function that finds a stage's weights.

    Args:
        run_dir: the run directory.
        stages: folder names to try, in order of preference (e.g. `DYNABERT_STAGES`).
        finished: only a completed stage (its `done.json`; `rewired/` is complete once its checkpoint is
            written, it has no done.json).
        weights: also require the weights file (`model.safetensors`), not only the architecture.

    Returns:
        (stage name, its directory), or None when none of `stages` has one.
    """
    for name in stages:
        d = Path(run_dir) / name
        if not (d / META_FILE).exists() or weights and not (d / MODEL_FILE).exists():
            continue
        if finished and name != REWIRED and not (d / DONE_JSON).exists():
            continue
        return name, d
    return None
