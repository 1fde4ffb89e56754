"""The run directory (`runs/<name>/`): its paths, its artifacts, `run.json`, and its stage checkpoints.

Every package reads the run directory through this module, so a file name, a CSV's columns or the order
in which stages are preferred is written once. `ARTIFACTS` describes every file of the contract (who
writes it, what it holds, a CSV's schema); docs/ARTIFACTS.md is generated from it (`app/artifacts_doc.py`). It sits in `elastic/`, the bottom of the package arrows, and imports
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
CKPT_DIR = "ckpt"  # a job's in-progress resumable checkpoint (elastic.job); `<ckpt>_best` its selected weights
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


# ---- JSON artifacts: top-level keys and their types, checked by the writer and by the reader ----------
_NUM = (int, float)


@dataclass(frozen=True)
class JsonSchema:
    """Top-level keys of one JSON artifact: their types (a key may be absent unless `required`; None is allowed
    for any key; a bool is never a number)."""

    keys: dict[str, tuple[type, ...]]
    required: tuple[str, ...] = ()

    def problem(self, name: str, data: Any) -> Optional[str]:
        """What is wrong with `data` as `name` (one line), or None."""
        if not isinstance(data, dict):
            return f"{name}: expected a JSON object, got {type(data).__name__}"
        missing = [k for k in self.required if k not in data]
        if missing:
            return f"{name}: missing key(s) {', '.join(missing)}"
        for key, types in self.keys.items():
            v = data.get(key)
            if key in data and v is not None and (not isinstance(v, types) or isinstance(v, bool) and bool not in types):
                want = " or ".join(t.__name__ for t in types)
                return f"{name}: key {key} must be {want}, got {type(v).__name__} ({v!r:.60})"
        return None


JSON_SCHEMAS: dict[str, JsonSchema] = {
    # a run made by `dynabert profile` alone has neither task nor teacher
    RUN_JSON: JsonSchema({"task": (dict, str), "teacher": (str,), "seed": (int,), "max_length": (int,),
                          "metric": (str,), "created": (str,), "stage_seconds": (dict,)}),
    IMPORTANCE_JSON: JsonSchema({"split": (str,), "n_examples": (int,), "head": (list,), "ffn": (list,),
                                 "head_order": (list,), "ffn_order": (list,)}, required=("head", "ffn")),
    # a predictor is saved once fitted; its error report (mape_pct, kendall_tau, points) comes with profiling
    PREDICTOR_JSON: JsonSchema({"scenario": (str,), "kind": (str,), "mape_pct": _NUM, "kendall_tau": _NUM,
                                "n_heldout": (int,), "points": (list,)}, required=("scenario", "kind")),
    SEARCH_JSON: JsonSchema({"scenario": (str,), "variants": (list,), "objectives": (list,), "reference_point": (list,),
                             "hypervolume": _NUM, "hypervolume_history": (list,), "knee_hash": (str,),
                             "n_trials": (int,), "seconds_per_trial": _NUM, "hypervolume_confirmed": _NUM,
                             "confirmation": (dict,)}, required=("scenario", "objectives", "n_trials")),
    DONE_JSON: JsonSchema({"steps": (int,), "epochs": _NUM, "seconds": _NUM, "finished_at": (str,)},
                          required=("steps",)),
}


def write_json(path: str | os.PathLike, data: dict[str, Any], *, schema: str, indent: int | None = 2) -> Path:
    """Write a JSON artifact atomically after checking it against `JSON_SCHEMAS[schema]` (a writer that breaks
    the contract is a bug: ValueError, nothing written)."""
    problem = JSON_SCHEMAS[schema].problem(schema, data)
    if problem:
        raise ValueError(f"refusing to write {path}: {problem}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=indent, default=str))
    os.replace(tmp, path)
    return path


# ---- the contract: every artifact, and the schema of each CSV (its writer's and its reader's) ----
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


@dataclass(frozen=True)
class Artifact:
    """One entry of the run-directory contract; docs/ARTIFACTS.md is generated from `ARTIFACTS`.

    Attributes:
        path: relative to the run directory; folders end in "/", placeholders are `<...>`.
        written_by: which step writes it (the document's words).
        content: what it holds (markdown); for a CSV, a note after its columns (which come from `schema`).
        command: the command that writes it, for "missing" messages (a CSV's is `schema.written_by`).
        schema: the columns of a CSV artifact; None for other files.
        required: a complete run has it (the dashboard names it when it is missing).
    """

    path: str
    written_by: str
    content: str = ""
    command: str = ""
    schema: CsvSchema | None = None
    required: bool = False

    def describe(self) -> str:
        """The content cell of docs/ARTIFACTS.md: a CSV's columns (from its schema), then the note."""
        if self.schema is None:
            return self.content
        columns = f"`{', '.join(self.schema.columns)}`"
        return f"{columns} {self.content}" if self.content else columns


def _csv(path: str, written_by: str, command: str, columns: tuple[str, ...], note: str = "",
         **checks: Any) -> Artifact:
    """A CSV artifact: the command is written once, in its schema (the loader's "missing" message) and here."""
    schema = CsvSchema(columns, written_by=command, **checks)
    return Artifact(path, written_by, note, command, schema, required=True)


_TRAINING = "dynabert train-teacher / train-stage1 / train-stage2"
ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(RUN_JSON, "every CLI command (merged)",
             "resolved options; `task` (= `TaskData.to_meta()`), `teacher` (path or id), `seed`, `max_length`, "
             "`metric` (primary metric name), `created` (ISO time), `stage_seconds` {stage: s}",
             "dynabert run or any stage command", required=True),
    Artifact("<stage>/", "training",
             f"`<stage>` is one of {', '.join(f'`{d}/`' for d in CHECKPOINT_DIRS)}: final checkpoint of the stage (`model.safetensors` + `elastic_config.json`, "
             "`elastic.weights.save_checkpoint`), `done.json` {steps, epochs, seconds, finished_at; with "
             "`--select-best` also select_on, select_every, selected_step, selected_score (sum of the metric in % "
             "over the stage's grid sub-networks), selected_over} once complete; `ckpt/` holds the in-progress "
             "resumable checkpoint and, with `--select-best`, `ckpt_best/` the best-scoring weights so far (both "
             "removed when the stage ends)", _TRAINING),
    Artifact(f"{TOKENIZER_DIR}/", "training (teacher stage)", "the tokenizer (`save_pretrained`)",
             "dynabert train-teacher"),
    Artifact(IMPORTANCE_JSON, "rewiring",
             '`{"split", "n_examples", "head": [[float]*num_heads]*num_layers, "ffn": [[float]*ffn]*num_layers, '
             '"head_order": [[int]], "ffn_order": [[int]]}` (scores in ORIGINAL unit order; order = new position '
             '-> old index)', "dynabert rewire", required=True),
    Artifact(f"{LOGS_DIR}/<stage>.jsonl", "training",
             "one JSON object per logged step: `step`, `loss`, `lr`, `subnets_per_s`; evaluation lines carry "
             "`dev_metric`, model-selection lines `select_score`", _TRAINING),
    _csv(GRID_CSV, "training (after each stage), one row per stage x grid point", _TRAINING,
         ("stage", "width_mult", "depth_mult", "config_hash", "config_json", "dev_metric", "test_metric",
          "dev_acc", "test_acc", "macs", "params"),
         numeric=("width_mult", "depth_mult", "dev_metric", "test_metric", "dev_acc", "test_acc", "macs", "params"),
         nullable=("test_metric", "test_acc", "dev_acc")),
    _csv(LATENCY_CSV, "profiling", "dynabert profile",
         ("config_hash", "config_json", "macs", "macs_fvcore", "params", "scenario", "device", "runtime",
          "threads", "batch", "seq_len", "median_ms", "p90_ms", "iqr_ms", "n", "fingerprint"),
         "(fingerprint = JSON string)",
         numeric=("macs", "macs_fvcore", "params", "threads", "batch", "seq_len", "median_ms", "p90_ms",
                  "iqr_ms", "n"),
         nullable=("macs_fvcore", "p90_ms", "iqr_ms")),
    Artifact(PREDICTOR_JSON, "profiling",
             '`{"scenario", "kind", "mape_pct", "kendall_tau", "n_heldout", "points": [{"config_hash", '
             '"predicted_ms", "measured_ms"}], ...model params}`', "dynabert profile", required=True),
    Artifact(STUDY_DB, "search",
             "Optuna SQLite storage (study name `search-<scenario>` by default); `study.queue.lock` beside it "
             "serializes taking queued trials between local workers", "dynabert search", required=True),
    _csv(TRIALS_CSV, "search", "dynabert search",
         ("trial", "config_hash", "config_json", "dev_metric", "latency_ms", "macs", "params", "state", "feasible",
          "scenario", "precision", "runtime"),
         "(`scenario` = the trial's deployment variant, a scenario key; `precision` fp32/int8/bf16/fp16 and "
         "`runtime` eager/ort spell it out; dev_metric and latency_ms are that variant's)",
         numeric=("trial", "dev_metric", "latency_ms", "macs", "params"),
         nullable=("dev_metric", "latency_ms", "macs", "params"), booleans=("feasible",)),
    _csv(PARETO_CSV, "search", "dynabert search",
         ("trial", "config_hash", "config_json", "dev_metric", "test_metric", "macs", "params",
          "latency_pred_ms", "latency_measured_ms", "scenario", "precision", "runtime", "knee", "dev_se",
          "confirm_metric", "confirm_se", "confirm_split", "confirm_n", "grid_point"),
         "(one front over every deployment variant searched: `scenario` is the point's variant, `precision` "
         "fp32/int8/bf16/fp16 and `runtime` eager/ort spell it out; `dev_metric`, `test_metric`, `confirm_metric` "
         "and the latencies are measured on that variant's artifact, e.g. the INT8 ONNX model in ONNX Runtime. "
         "The front is confirmed (`search.confirm`): only points scored on all of dev compete; those within one dev "
         "standard error of the dev front are re-scored on `confirm_split` (`heldout`: the slice of train no stage "
         "trained on and the search never saw; `confirm_n` examples), and the front is non-dominated on "
         "`confirm_metric`. `dev_se`/`confirm_se` = binomial standard error in points, sqrt(p(1-p)/n)*100, for "
         "accuracy; empty for other metrics (F1, MCC, correlations: none stated). `confirm_split` empty: the run "
         "has no held-out slice, the front is the dev front (search.json `confirmation.warning` says so). "
         "`grid_point` = a config of the uniform DynaBERT grid; `test_metric` is reported only, never used to "
         "choose)",
         numeric=("trial", "dev_metric", "test_metric", "macs", "params", "latency_pred_ms", "latency_measured_ms",
                  "dev_se", "confirm_metric", "confirm_se", "confirm_n"),
         nullable=("test_metric", "latency_pred_ms", "latency_measured_ms", "dev_se", "confirm_metric",
                   "confirm_se", "confirm_n"), booleans=("knee", "grid_point")),
    Artifact(SEARCH_JSON, "search",
             '`{"scenario", "objectives", "reference_point", "hypervolume", "hypervolume_history": [[n_trials, hv]], '
             '"knee_hash", "n_trials", "seconds_per_trial", "checkpoint", "variants", "hypervolume_confirmed", '
             '"confirmation": {"split", "n", "dev_n", "candidates", "seconds", ...} or {"split": null, "warning"}}`; '
             "`hypervolume` on (dev metric, measured cost), `hypervolume_confirmed` on the figures shown (confirmed "
             "where confirmed; the knee too); `scenario` = the searched "
             "variants' keys, comma-separated (one for a single variant), `variants` = their list; `checkpoint` = "
             "`<stage>@<finished_at>:` "
             "of the searched weights (the study records it too and refuses to resume on a retrained stage; export "
             "and the dashboard flag a front of older weights)", "dynabert search", required=True),
    _csv(BASELINES_CSV, "baselines", "dynabert baselines",
         ("name", "recipe", "config_json", "macs", "params", "dev_metric", "test_metric", "latency_ms",
          "scenario", "steps", "epochs"),
         "(recipe in distilbert, tinybert, int8, dynabert_int8)",
         numeric=("macs", "params", "dev_metric", "test_metric", "latency_ms", "steps", "epochs"),
         nullable=("macs", "test_metric", "latency_ms", "steps", "epochs"), config_column=None),
    Artifact(f"{BASELINES_DIR}/<student>/{DONE_JSON}", "baselines",
             '`{"steps", "epochs", "seconds", "phases": {objective: steps}, "temperature", "select_best", '
             '"selected_step", "selected_score", "config"}` (`selected_*` only with `--select-best`); the '
             "student's weights beside it", "dynabert baselines"),
    Artifact(f"{EXPORTS_DIR}/<name>/", "export",
             "HF-loadable model (config.json with model_type bert and auto_map, `model.safetensors`, "
             "`hf_compact.py`), plain BERT tokenizer, `model.onnx` (inputs input_ids, attention_mask, "
             "token_type_ids), `model.int8.onnx` for an ort-int8 variant (dynamic INT8 of model.onnx), model card "
             "`README.md` (Hub YAML metadata; the runtime, precision, latency and dev/test metric of the exported "
             "variant, its dev metric re-scored on the written files)", "dynabert export"),
)
# The schema of every CSV artifact, used by its writer and by the dashboard's loader.
CSV_SCHEMAS: dict[str, CsvSchema] = {a.path: a.schema for a in ARTIFACTS if a.schema is not None}
# What a complete run has, with the command that writes each (the dashboard's "missing" list).
REQUIRED: dict[str, str] = {a.path: a.command for a in ARTIFACTS if a.required}


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
    """Write `run.json` atomically (a reader never sees half a file), checked against its schema."""
    write_json(Path(run_dir) / RUN_JSON, run, schema=RUN_JSON)


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
