"""elastic/rundir.py: the one owner of run.json, the run-dir error, the artifact list and finding a stage's checkpoint."""
from __future__ import annotations

import json

import pytest

from elastic import rundir
from elastic.rundir import RunDirError, find_stage, read_run, write_run


def test_one_error_class_importable_where_it_was():
    from elastic.stages import RunDirError as from_stages
    from search.evaluator import RunDirError as from_evaluator
    assert from_stages is RunDirError and from_evaluator is RunDirError and issubclass(RunDirError, ValueError)


def test_run_json_round_trip_and_errors(tmp_path):
    assert read_run(tmp_path) == {}
    with pytest.raises(RunDirError, match="has no run.json"):
        read_run(tmp_path, required=True)
    write_run(tmp_path / "r", {"seed": 3, "task": {"name": "t"}})
    assert read_run(tmp_path / "r", required=True) == {"seed": 3, "task": {"name": "t"}}
    assert not (tmp_path / "r" / "run.json.tmp").exists()
    (tmp_path / "r" / rundir.RUN_JSON).write_text("{broken")
    with pytest.raises(RunDirError, match="not valid JSON"):
        read_run(tmp_path / "r")


def _ckpt(run, name, *, done=True, weights=True):
    d = run / name
    d.mkdir(parents=True)
    (d / rundir.META_FILE).write_text(json.dumps({"arch": {}}))
    if weights:
        (d / rundir.MODEL_FILE).write_bytes(b"")
    if done:
        (d / rundir.DONE_JSON).write_text("{}")


def test_find_stage_order_and_conditions(tmp_path):
    assert find_stage(tmp_path, rundir.DYNABERT_STAGES) is None
    _ckpt(tmp_path, "stage1")
    _ckpt(tmp_path, "stage2", done=False)  # interrupted: not finished
    _ckpt(tmp_path, "rewired", done=False)  # rewiring writes no done.json and is finished anyway
    _ckpt(tmp_path, "teacher", weights=False)
    assert find_stage(tmp_path, rundir.DYNABERT_STAGES) == ("stage1", tmp_path / "stage1")
    assert find_stage(tmp_path, ("stage2",), finished=False) == ("stage2", tmp_path / "stage2")
    assert find_stage(tmp_path, ("rewired",)) == ("rewired", tmp_path / "rewired")
    assert find_stage(tmp_path, ("teacher", "rewired"), weights=True) == ("rewired", tmp_path / "rewired")
    assert find_stage(tmp_path, ("teacher", "rewired")) == ("teacher", tmp_path / "teacher")


def test_writers_use_the_schemas():
    from elastic.baselines import BASELINE_COLUMNS
    from elastic.evaluate import GRID_COLUMNS
    from profiling.latency_csv import LATENCY_COLUMNS
    from search.pareto import PARETO_COLUMNS, TRIALS_COLUMNS
    s = rundir.CSV_SCHEMAS
    assert GRID_COLUMNS == s[rundir.GRID_CSV].columns and LATENCY_COLUMNS == s[rundir.LATENCY_CSV].columns
    assert PARETO_COLUMNS == s[rundir.PARETO_CSV].columns and TRIALS_COLUMNS == s[rundir.TRIALS_CSV].columns
    assert BASELINE_COLUMNS == s[rundir.BASELINES_CSV].columns


def test_json_writers_and_readers_check_one_schema(tmp_path):
    """A JSON artifact is checked against `JSON_SCHEMAS` when written (a bug: nothing is written) and when the
    dashboard reads it (a damaged file: one line naming the key)."""
    import json

    import pytest

    from app.artifacts import ArtifactError, load_search
    from elastic.rundir import JSON_SCHEMAS, SEARCH_JSON, write_json

    good = {"scenario": "cpu-eager-t2-b1-s128", "objectives": ["metric", "latency"], "n_trials": 3}
    with pytest.raises(ValueError, match="n_trials must be int"):
        write_json(tmp_path / SEARCH_JSON, {**good, "n_trials": "3"}, schema=SEARCH_JSON)
    assert not (tmp_path / SEARCH_JSON).exists()
    with pytest.raises(ValueError, match="missing key"):
        write_json(tmp_path / SEARCH_JSON, {"scenario": "x"}, schema=SEARCH_JSON)
    write_json(tmp_path / SEARCH_JSON, good, schema=SEARCH_JSON)
    assert load_search(tmp_path / SEARCH_JSON)["n_trials"] == 3
    (tmp_path / SEARCH_JSON).write_text(json.dumps({**good, "n_trials": True}))  # a bool is not a count
    with pytest.raises(ArtifactError) as e:
        load_search(tmp_path / SEARCH_JSON)
    assert str(e.value) == JSON_SCHEMAS[SEARCH_JSON].problem("search.json", {**good, "n_trials": True})
