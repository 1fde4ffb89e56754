"""The run-directory contract: every artifact's name, what writes it, and the schema of each JSON and CSV file.

`ARTIFACTS` describes every file of `runs/<name>/` (who writes it, what it holds, a CSV's columns); docs/ARTIFACTS.md
is generated from it (`elastic/rundir/doc.py`), and `elastic.rundir.RunDir` has one path method per entry. Nothing
here touches the disk.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# ---- paths (docs/ARTIFACTS.md) -------------------------------------------------------------------
RUN_JSON = "run.json"
DONE_JSON = "done.json"
CKPT_DIR = "ckpt"  # a job's in-progress resumable checkpoint (elastic.training.job); `<ckpt>_best` its selected weights
MODEL_FILE = "model.safetensors"  # a checkpoint's weights (elastic.model.weights.save_checkpoint)
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
PIPELINE_JSON = "pipeline.json"  # `dynabert run`'s resolved options and each stage's seconds
PREDICTORS_DIR = "predictors"  # predictors/<scenario>.json: one latency predictor per deployment variant
LATENCY_CACHE = "latency_cache.jsonl"  # measured latencies, keyed by model, config, scenario and machine
EVAL_CACHE = "eval_cache.jsonl"  # sub-network metrics of the search, keyed by checkpoint, split, fidelity, config

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
    PIPELINE_JSON: JsonSchema({"options": (dict,), "stage_seconds": (dict,), "started": (str,), "finished": (str,),
                               "total_seconds": _NUM}),
}



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
             "`elastic.model.weights.save_checkpoint`), `done.json` {steps, epochs, seconds, finished_at; with "
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
    Artifact(f"{PREDICTORS_DIR}/<scenario>.json", "profiling",
             "the latency predictor of one deployment variant (`<scenario>` = its scenario key), in the format of "
             "`predictor.json`; `predictor.json` is the default variant's (the first profiled)", "dynabert profile"),
    Artifact(LATENCY_CACHE, "profiling, search (measured fronts), export",
             '`{"key", "record"}` per line, one latency measurement each: `key` = the model shape hash, config_hash, '
             'scenario key and machine fingerprint hash joined by a vertical bar (and `ort-fused` for ONNX Runtime), '
             '`record` = a `latency.csv` row with its fingerprint; reused only on the same machine in the same state; a '
             'broken line (an interrupted write) is skipped (`profiling.latency_cache`)', "dynabert profile"),
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
    Artifact(EVAL_CACHE, "search (and its confirmation), export",
             '`{"key", "metric", "split", "n_examples", "config_json", "seconds", "pid"}` per line, one '
             'sub-network score (metric in %): `key` = `<stage>@<finished_at>:[<variant>:]<split>:<n examples or '
             'full>:<config_hash>`, so a retrained stage is scored again; `eval_cache.jsonl.locks/` holds the '
             'per-key locks that make a second worker wait instead of scoring a config twice (`search.eval_cache`)', "dynabert search"),
    Artifact(PIPELINE_JSON, "`dynabert run`",
             '`{"options": {resolved configuration}, "stage_seconds": {stage: s}, "started", "finished", '
             '"total_seconds"}`; a re-run refuses another task in the same directory', "dynabert run"),
    Artifact(f"{BASELINES_DIR}/<student>/{DONE_JSON}", "baselines",
             '`{"steps", "epochs", "seconds", "phases": {objective: steps}, "temperature", "select_best", '
             '"selected_step", "selected_score", "config"}` (`selected_*` only with `--select-best`); the '
             "student's weights beside it", "dynabert baselines"),
    Artifact(f"{BASELINES_DIR}/{LATENCY_CACHE}", "baselines",
             "the baselines' latency measurements, in the format of `latency_cache.jsonl`", "dynabert baselines"),
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
