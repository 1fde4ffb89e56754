"""`RunDir`: one run directory (`runs/<name>/`) and every artifact in it, by path, with its typed reader and writer.

Code outside `elastic.rundir` names no artifact file: it asks a `RunDir` for the path (`rd.search_json`,
`rd.predictor(scenario)`, `rd.done_json("stage2")`) and reads or writes JSON through it (`rd.read_run()`,
`rd.read_json(rd.search_json, SEARCH_JSON)`), so a name, a schema and an error message are written once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from elastic.rundir.contract import (BASELINES_CSV, BASELINES_DIR, DONE_JSON, EVAL_CACHE, EXPORTS_DIR, GRID_CSV,
                                     IMPORTANCE_JSON, LATENCY_CACHE, LATENCY_CSV, LOGS_DIR, META_FILE, MODEL_FILE,
                                     PARETO_CSV, PIPELINE_JSON, PREDICTOR_JSON, PREDICTORS_DIR, REWIRED, RUN_JSON,
                                     SEARCH_JSON, STUDY_DB, TOKENIZER_DIR, TRIALS_CSV)
from elastic.rundir.files import MissingArtifactError, RunDirError, read_json, write_json


@dataclass(frozen=True)
class RunDir:
    """A run directory: one path method or property per artifact of the contract (`ARTIFACTS`), and its readers.

    Args:
        root: the run directory (need not exist yet).
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    # ---- files at the top --------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def pipeline_json(self) -> Path:
        return self.root / PIPELINE_JSON

    @property
    def importance_json(self) -> Path:
        return self.root / IMPORTANCE_JSON

    @property
    def grid_csv(self) -> Path:
        return self.root / GRID_CSV

    @property
    def latency_csv(self) -> Path:
        return self.root / LATENCY_CSV

    @property
    def latency_cache(self) -> Path:
        return self.root / LATENCY_CACHE

    @property
    def predictor_json(self) -> Path:
        """The default variant's latency predictor (the first profiled)."""
        return self.root / PREDICTOR_JSON

    def predictor(self, scenario: str) -> Path:
        """The latency predictor of one deployment variant (`scenario` = its key)."""
        return self.root / PREDICTORS_DIR / f"{scenario}.json"

    @property
    def study_db(self) -> Path:
        return self.root / STUDY_DB

    @property
    def eval_cache(self) -> Path:
        return self.root / EVAL_CACHE

    @property
    def trials_csv(self) -> Path:
        return self.root / TRIALS_CSV

    @property
    def pareto_csv(self) -> Path:
        return self.root / PARETO_CSV

    @property
    def search_json(self) -> Path:
        return self.root / SEARCH_JSON

    @property
    def baselines_csv(self) -> Path:
        return self.root / BASELINES_CSV

    # ---- folders -----------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Path:
        return self.root / TOKENIZER_DIR

    def stage(self, name: str) -> Path:
        """A stage's checkpoint folder (`teacher`, `rewired`, `stage1` ...)."""
        return self.root / name

    def done_json(self, stage: str) -> Path:
        """The record of a finished stage."""
        return self.stage(stage) / DONE_JSON

    @property
    def logs(self) -> Path:
        return self.root / LOGS_DIR

    def log(self, stage: str) -> Path:
        """A stage's training log (JSON lines)."""
        return self.logs / f"{stage}.jsonl"

    @property
    def baselines(self) -> Path:
        return self.root / BASELINES_DIR

    def student(self, name: str) -> Path:
        """A baseline student's folder (its weights and done.json)."""
        return self.baselines / name

    def student_done(self, name: str) -> Path:
        return self.student(name) / DONE_JSON

    @property
    def baselines_latency_cache(self) -> Path:
        return self.baselines / LATENCY_CACHE

    @property
    def exports_dir(self) -> Path:
        return self.root / EXPORTS_DIR

    def exports(self, name: str) -> Path:
        """One exported sub-network's folder."""
        return self.exports_dir / name

    def locate(self, artifact: str, *placeholders: str) -> Path:
        """The path of a contract entry (`Artifact.path`), its `<...>` placeholders filled in order."""
        attr = getattr(self, LOCATORS[artifact])
        return attr(*placeholders) if callable(attr) else attr

    # ---- readers and writers -----------------------------------------------------------------------
    def read_json(self, path: Path, schema: Optional[str] = None, **kw: Any) -> dict[str, Any]:
        """A JSON artifact of this run checked against its schema (`elastic.rundir.read_json`)."""
        return read_json(path, schema, **kw)

    def write_json(self, path: Path, data: dict[str, Any], schema: str, **kw: Any) -> Path:
        """Write a JSON artifact of this run atomically, checked against its schema."""
        return write_json(path, data, schema=schema, **kw)

    def read_run(self, *, required: bool = False) -> dict[str, Any]:
        """`run.json`: the recorded options and metadata ({} when missing and not `required`)."""
        if not self.run_json.is_file():
            if required:
                raise MissingArtifactError(
                    f"{self.root} has no run.json: not a run directory (train one with `dynabert run --run-dir DIR "
                    "--task ...`, or `dynabert train-teacher --run-dir DIR --task ...` and the stages after it)")
            return {}
        return read_json(self.run_json, RUN_JSON, label=str(self.run_json))

    def write_run(self, run: dict[str, Any]) -> Path:
        """Write `run.json` atomically, checked against its schema."""
        return write_json(self.run_json, run, schema=RUN_JSON)

    def done(self, stage: str) -> Optional[dict[str, Any]]:
        """The `done.json` of a finished stage; None while unfinished."""
        return read_done(self.stage(stage))

    def find_stage(self, stages: Sequence[str], *, finished: bool = True,
                   weights: bool = False) -> Optional[tuple[str, Path]]:
        """The first of `stages` whose folder holds a checkpoint (see `find_stage`)."""
        for name in stages:
            d = self.stage(name)
            if not (d / META_FILE).exists() or weights and not (d / MODEL_FILE).exists():
                continue
            if finished and name != REWIRED and not (d / DONE_JSON).exists():
                continue
            return name, d
        return None


# contract entry (`Artifact.path`) -> the `RunDir` member that gives its path
LOCATORS: dict[str, str] = {
    RUN_JSON: "run_json", PIPELINE_JSON: "pipeline_json", IMPORTANCE_JSON: "importance_json", GRID_CSV: "grid_csv",
    LATENCY_CSV: "latency_csv", LATENCY_CACHE: "latency_cache", PREDICTOR_JSON: "predictor_json",
    f"{PREDICTORS_DIR}/<scenario>.json": "predictor", STUDY_DB: "study_db", EVAL_CACHE: "eval_cache",
    TRIALS_CSV: "trials_csv", PARETO_CSV: "pareto_csv", SEARCH_JSON: "search_json", BASELINES_CSV: "baselines_csv",
    f"{TOKENIZER_DIR}/": "tokenizer", "<stage>/": "stage", f"<stage>/{DONE_JSON}": "done_json",
    f"{LOGS_DIR}/<stage>.jsonl": "log", f"{BASELINES_DIR}/<student>/{DONE_JSON}": "student_done",
    f"{BASELINES_DIR}/{LATENCY_CACHE}": "baselines_latency_cache", f"{EXPORTS_DIR}/<name>/": "exports",
}


def read_checkpoint_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint folder's `elastic_config.json` (`arch`, `num_labels`, `meta`; `elastic.model.weights.save_checkpoint`).

    Raises:
        RunDirError: missing, not valid JSON, or without an `arch` object.
    """
    path = Path(folder) / META_FILE
    info = read_json(path, label=str(path), fix="train that stage again (or delete its folder)")
    if not isinstance(info.get("arch"), dict):
        raise RunDirError(f"{path}: no `arch` object; train that stage again (or delete its folder)")
    return info


def read_done(folder: str | os.PathLike) -> Optional[dict[str, Any]]:
    """The `done.json` of a finished job in `folder` (a stage or a student); None while unfinished.

    Raises:
        RunDirError: not valid JSON or against its schema (the message says to delete it and train again).
    """
    path = Path(folder) / DONE_JSON
    if not path.is_file():
        return None
    return read_json(path, DONE_JSON, label=str(path), fix="delete it (and its folder) to train again")


# ---- the functions of old, on RunDir -----------------------------------------------------------------
def read_run(run_dir: str | os.PathLike, *, required: bool = False) -> dict[str, Any]:
    """`run.json` of a run directory ({} when missing and not `required`).

    Raises:
        RunDirError: run.json is not valid JSON or against its schema, or is missing and `required`
            (`MissingArtifactError`).
    """
    return RunDir(Path(run_dir)).read_run(required=required)


def write_run(run_dir: str | os.PathLike, run: dict[str, Any]) -> None:
    """Write `run.json` atomically (a reader never sees half a file), checked against its schema."""
    RunDir(Path(run_dir)).write_run(run)


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
    return RunDir(Path(run_dir)).find_stage(stages, finished=finished, weights=weights)
