"""The run directory (`runs/<name>/`): the one owner of every artifact's path, schema, reader and writer.

`RunDir` gives the path of each artifact (`rd.run_json`, `rd.done_json(stage)`, `rd.predictor(scenario)` ...) and
reads and writes the JSON ones through one checked reader and one atomic writer; every problem a user can cause
raises `RunDirError` naming the file and the fix. `ARTIFACTS` (the contract, with every CSV's columns) is what
docs/ARTIFACTS.md is generated from (`elastic/rundir/doc.py`). Code outside this package names no artifact file.
It sits in `elastic/`, the bottom of the package arrows, and imports nothing heavy (no torch): the dashboard and
`dynabert --help` use it too.

- `contract`: names, `ARTIFACTS`, `JSON_SCHEMAS`, `CSV_SCHEMAS`, `REQUIRED`, the stage folders.
- `files`: `RunDirError`, `read_json`, `write_json`, atomic writes.
- `run_dir`: `RunDir`, and `read_run`, `write_run`, `find_stage` on it.
"""
from __future__ import annotations

from elastic.rundir.contract import (ARTIFACTS, BASELINES_CSV, BASELINES_DIR, CHECKPOINT_DIRS, CKPT_DIR, CSV_SCHEMAS,
                                     DONE_JSON, DYNABERT_STAGES, EVAL_CACHE, EXPORTS_DIR, GRID_CSV, IMPORTANCE_JSON,
                                     JSON_SCHEMAS, LATENCY_CACHE, LATENCY_CSV, LOGS_DIR, META_FILE, MODEL_FILE,
                                     PARETO_CSV, PIPELINE_JSON, PREDICTOR_JSON, PREDICTORS_DIR, REQUIRED, REWIRED,
                                     RUN_JSON, SEARCH_JSON, STUDY_DB, TEACHER, TOKENIZER_DIR, TRIALS_CSV, Artifact,
                                     CsvSchema, JsonSchema)
from elastic.rundir.files import (MissingArtifactError, RunDirError, read_json, write_json,
                                  write_text_atomic)
from elastic.rundir.run_dir import (LOCATORS, RunDir, find_stage, read_checkpoint_meta, read_done, read_run,
                                    write_run)

__all__ = ["ARTIFACTS", "BASELINES_CSV", "BASELINES_DIR", "CHECKPOINT_DIRS", "CKPT_DIR", "CSV_SCHEMAS", "DONE_JSON",
           "DYNABERT_STAGES", "EVAL_CACHE", "EXPORTS_DIR", "GRID_CSV", "IMPORTANCE_JSON", "JSON_SCHEMAS",
           "LATENCY_CACHE", "LATENCY_CSV", "LOCATORS", "LOGS_DIR", "META_FILE", "MODEL_FILE", "PARETO_CSV",
           "PIPELINE_JSON", "PREDICTOR_JSON", "PREDICTORS_DIR", "REQUIRED", "REWIRED", "RUN_JSON", "SEARCH_JSON",
           "STUDY_DB", "TEACHER", "TOKENIZER_DIR", "TRIALS_CSV", "Artifact", "CsvSchema", "JsonSchema",
           "MissingArtifactError", "RunDir", "RunDirError", "find_stage", "read_checkpoint_meta", "read_done", "read_json", "read_run",
           "write_json", "write_run", "write_text_atomic"]
