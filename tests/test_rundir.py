"""elastic/rundir/: the one owner of run.json, the run-dir error, the artifact list and finding a stage's checkpoint."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from elastic import rundir
from elastic.rundir import RunDir, RunDirError, find_stage, read_run, write_run


def test_one_error_class_importable_where_it_was():
    from elastic.training.stages import RunDirError as from_stages
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
    from elastic.training.baselines import BASELINE_COLUMNS
    from elastic.training.evaluate import GRID_COLUMNS
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

    from app.dashboard.artifacts import ArtifactError, load_search
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


# ---- the run directory owns every artifact (issue 33) ----------------------------------------------
_ROOT = Path(__file__).resolve().parents[1]
_LAYERS = ("elastic", "profiling", "search", "app")
# the must-show grep of issue 33, and the names of the other artifacts the contract lists
_NAMES = re.compile(r'"(run|done|search|predictor|pipeline)\.json"')
_OTHER = re.compile(r'"(importance\.json|grid\.csv|latency\.csv|trials\.csv|pareto\.csv|baselines\.csv|study\.db|'
                    r'latency_cache\.jsonl|eval_cache\.jsonl)"')


def _literals(pattern: re.Pattern) -> list[str]:
    """`grep -rn --include=*.py -E PATTERN elastic profiling search app`, outside elastic/rundir/."""
    hits = []
    for pkg in _LAYERS:
        for path in sorted((_ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(_ROOT).as_posix()
            if rel.startswith("elastic/rundir/"):
                continue
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if pattern.search(line):
                    hits.append(f"{rel}:{i}: {line.strip()}")
    return hits


def test_no_artifact_name_outside_the_run_directory_package():
    for pattern in (_NAMES, _OTHER):
        hits = _literals(pattern)
        assert hits == [], "artifact names outside elastic/rundir/ (use RunDir):\n" + "\n".join(hits)
    # the grep finds the package itself: the check reads the right files
    own = [p for p in (_ROOT / "elastic" / "rundir").glob("*.py") if _NAMES.search(p.read_text())]
    assert own, "the run-directory package declares the names"


def test_every_artifact_has_a_path_method_and_a_row_in_the_docs():
    docs = (_ROOT / "docs" / "ARTIFACTS.md").read_text()
    rd = RunDir(Path("/r"))
    paths = {a.path for a in rundir.ARTIFACTS}
    for needed in ("pipeline.json", "latency_cache.jsonl", "predictors/<scenario>.json", "eval_cache.jsonl",
                   "baselines/latency_cache.jsonl"):
        assert needed in paths, f"{needed} is not in the contract"
    for a in rundir.ARTIFACTS:
        assert f"| `{a.path}` |" in docs, f"{a.path} has no row in docs/ARTIFACTS.md"
        assert a.path in rundir.LOCATORS, f"RunDir has no path method for {a.path}"
        holes = re.findall(r"<\w+>", a.path)
        assert rd.locate(a.path, *holes) == Path("/r") / a.path.rstrip("/"), a.path
    assert rd.done_json("stage2") == Path("/r/stage2/done.json") and rd.predictor("k") == Path("/r/predictors/k.json")


@pytest.mark.parametrize("name", sorted(rundir.JSON_SCHEMAS))
def test_a_broken_json_artifact_is_one_error_naming_the_file(tmp_path, name):
    f = tmp_path / name
    f.write_text('{"steps": 3, ')
    with pytest.raises(RunDirError, match=re.escape(name) + ": not valid JSON .*fix or delete it"):
        rundir.read_json(f, name)
    f.write_text("[1, 2]")
    with pytest.raises(RunDirError, match=re.escape(name) + ": expected a JSON object"):
        rundir.read_json(f, name)
    with pytest.raises(rundir.MissingArtifactError, match=f"{re.escape(name)} is missing in .*written by"):
        rundir.read_json(tmp_path / "nope" / name, name)


def test_every_run_file_reader_raises_run_dir_error(tmp_path):
    """run.json, done.json and pipeline.json have one reader each, and the dashboard's error is the same type."""
    from app.dashboard.artifacts import ArtifactError, load_run_json
    from app.workflow.checks import _recorded_task
    from elastic.training.job import read_done

    rd = RunDir(tmp_path)
    for path in (rd.run_json, rd.done_json("stage1"), rd.pipeline_json):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{oops")
    assert ArtifactError is RunDirError
    for read in (lambda: rd.read_run(), lambda: load_run_json(rd.run_json), lambda: read_done(rd.stage("stage1")),
                 lambda: rd.done("stage1"), lambda: _recorded_task(tmp_path)):
        with pytest.raises(ValueError, match="not valid JSON") as e:
            read()
        assert isinstance(e.value, RunDirError) or "pipeline.json" in str(e.value)


def test_an_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    rd = RunDir(tmp_path)
    rd.write_run({"seed": 1})
    real_replace = os.replace

    def crash(src, dst):  # the process dies between writing the temporary file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        rd.write_run({"seed": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    assert rd.read_run() == {"seed": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left
    with pytest.raises(ValueError, match="refusing to write"):  # against the schema: nothing written
        rd.write_json(rd.search_json, {"scenario": "x"}, rundir.SEARCH_JSON)
    assert not rd.search_json.exists()
