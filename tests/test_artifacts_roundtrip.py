"""Every artifact of docs/ARTIFACTS.md, written by its real writer (tests/real_run.py), read by every real reader.

The run is made once per session by the real commands; here each file goes through the dashboard's loader
(`app.dashboard.artifacts`) and the reader of the package that uses it (search, profiling, elastic), and the two must
agree with each other and with the schema the writer used.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.dashboard import artifacts as A
from app.dashboard import run_index
from elastic import rundir
from elastic.model.config import SubnetConfig
from tests.conftest import TINY
from tests.real_run import BASELINE_STEPS, N_TRIALS, RUN, SCENARIOS, fake_ms


@pytest.fixture(scope="module")
def run(real_runs: Path) -> Path:
    return real_runs / RUN


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh))


def test_a_complete_run_has_every_required_artifact(run: Path) -> None:
    assert run_index.missing_artifacts(run) == []
    summary = run_index.summarize_run(run)
    assert summary.problem == "" and summary.task == "task"
    for a in rundir.ARTIFACTS:  # the folders and per-stage files of the contract exist too (pipeline.json is
        if "<" not in a.path and a.path != rundir.PIPELINE_JSON:  # `dynabert run`'s; this run was made step by step
            assert (run / a.path).exists(), a.path


@pytest.mark.parametrize("name", sorted(rundir.CSV_SCHEMAS))
def test_csv_header_is_the_schema(run: Path, name: str) -> None:
    columns = list(rundir.CSV_SCHEMAS[name].columns)
    header = _header(run / name)
    assert header[:len(columns)] == columns, f"{name}: the writer's columns are not its schema's"
    df = A.load_csv(run / name)
    assert len(df) > 0 and not df.empty


def test_grid_csv(run: Path) -> None:
    grid = A.load_csv(run / rundir.GRID_CSV)
    assert grid["stage"].value_counts().to_dict() == {"teacher": 1, "stage1": 12, "stage2": 12}
    assert all(c.validate(TINY) for c in grid["config"])
    assert grid["dev_metric"].between(0, 100).all() and (grid["params"] > 0).all()


def test_latency_csv_both_readers_agree(run: Path) -> None:
    from profiling.latency_csv import read_latency_csv

    records = read_latency_csv(run / rundir.LATENCY_CSV)
    df = A.load_csv(run / rundir.LATENCY_CSV)
    assert [r["config_hash"] for r in records] == list(df["config_hash"])
    assert [r["median_ms"] for r in records] == list(df["median_ms"])
    assert {r["scenario"] for r in records} == set(SCENARIOS)
    for r in records:  # the fixed clock of tests/real_run.py went through measure -> CSV -> both readers
        assert r["median_ms"] == pytest.approx(fake_ms(SubnetConfig.from_json(r["config_json"]), r["scenario"]))
        assert isinstance(r["fingerprint"], dict) and r["fingerprint"]
    assert json.loads(df["fingerprint"][0]) == records[0]["fingerprint"]


def test_predictor_json_both_readers_agree(run: Path) -> None:
    from profiling.predictor import LatencyPredictor
    from search.evaluator import predictor_path

    assert predictor_path(run, SCENARIOS[0]) == run / "predictors" / f"{SCENARIOS[0]}.json"
    pred = LatencyPredictor.load(run / rundir.PREDICTOR_JSON)
    report = A.load_predictor(run / rundir.PREDICTOR_JSON)
    assert pred.scenario == report["scenario"] == SCENARIOS[0]
    assert report["n_heldout"] == len(report["points"]) == 4
    assert report["mape_pct"] == pred.report["mape_pct"]
    for pt in report["points"].itertuples():
        assert pt.predicted_ms > 0 and pt.measured_ms > 0


def test_trials_csv_is_the_study(run: Path) -> None:
    from search.pareto import load_study

    study = load_study(run)
    trials = A.load_csv(run / rundir.TRIALS_CSV)
    assert list(trials["trial"].astype(int)) == [t.number for t in study.trials]
    assert trials["state"].value_counts().to_dict() == {"COMPLETE": N_TRIALS, "FAIL": 1}
    done = trials[trials["state"] == "COMPLETE"]
    assert done["config"].notna().all() and not trials[trials["state"] == "FAIL"]["feasible"].any()
    values = {t.number: t.values for t in study.trials if t.values}
    for r in done.itertuples():
        assert [r.dev_metric, r.latency_ms] == pytest.approx(values[int(r.trial)])


def test_pareto_csv_and_search_json_agree(run: Path) -> None:
    from search.evaluator import checkpoint_stamp
    from search.pareto import read_pareto_csv, searched_checkpoint

    rows = read_pareto_csv(run / rundir.PARETO_CSV)
    front = A.load_csv(run / rundir.PARETO_CSV)
    assert [r["config_hash"] for r in rows] == list(front["config_hash"]) and len(rows) >= 2
    assert front["knee"].sum() == 1 and set(front["scenario"]) == {SCENARIOS[0]}
    search = A.load_search(run / rundir.SEARCH_JSON)
    assert search["knee_hash"] == front[front["knee"]]["config_hash"].iloc[0]
    assert search["n_trials"] == N_TRIALS and search["scenario"] == SCENARIOS[0]
    assert [n for n, _ in search["hypervolume_history"]][-1] == N_TRIALS
    assert searched_checkpoint(run) == search["checkpoint"] == checkpoint_stamp("stage2", run / "stage2")
    assert A.stale_search_note(run, search) is None
    for r in front.itertuples():  # re-measured on the same clock
        assert r.latency_measured_ms == pytest.approx(fake_ms(r.config, SCENARIOS[0]))


def test_baselines_csv_and_the_students_done_json(run: Path) -> None:
    base = A.load_csv(run / rundir.BASELINES_CSV)
    assert list(base["recipe"]) == ["distilbert"] and list(base["steps"]) == [BASELINE_STEPS]
    assert base["latency_ms"].iloc[0] == pytest.approx(fake_ms(base["config"].iloc[0], SCENARIOS[0]))
    done = A.read_json(run / rundir.BASELINES_DIR / base["name"].iloc[0] / rundir.DONE_JSON)
    assert done["steps"] == BASELINE_STEPS and SubnetConfig.from_json(json.dumps(done["config"])) == base["config"].iloc[0]


def test_run_json_both_readers_agree(run: Path) -> None:
    meta = rundir.read_run(run, required=True)
    loaded = A.load_run_json(run / rundir.RUN_JSON)
    assert loaded["task_name"] == meta["task"]["name"] and loaded["seed"] == meta["seed"] == 42
    assert set(meta["stage_seconds"]) == {"teacher", "rewired", "stage1", "stage2"}
    assert meta["max_length"] == 16 and meta["metric"] == "accuracy"


def test_importance_json(run: Path) -> None:
    imp = A.load_importance(run / rundir.IMPORTANCE_JSON)
    assert len(imp["head"]) == len(imp["ffn"]) == TINY.num_layers
    assert {len(r) for r in imp["head"]} == {TINY.num_heads} and {len(r) for r in imp["ffn"]} == {TINY.intermediate_size}
    assert all(sorted(o) == list(range(TINY.num_heads)) for o in imp["head_order"])


@pytest.mark.parametrize("stage", ["teacher", "stage1", "stage2"])
def test_logs_and_done_json(run: Path, stage: str) -> None:
    log = A.load_log(run / rundir.LOGS_DIR / f"{stage}.jsonl")
    assert list(log["step"])[-1] == 2 and (log["loss"] > 0).all()
    assert "dev_metric" in log.columns
    done = A.load_done(run / stage / rundir.DONE_JSON)
    assert done["steps"] == 2 and done["finished_at"]
    assert rundir.find_stage(run, (stage,)) == (stage, run / stage)


def test_study_db_and_exports(run: Path) -> None:
    [study] = A.study_summaries(run / rundir.STUDY_DB)
    assert study["name"] == f"search-{SCENARIOS[0]}" and study["n_trials"] == N_TRIALS + 1
    [export] = A.list_exports(run)
    assert export.name == "knee" and export.card and "model.safetensors" in dict(export.files)
    assert A.load_arch(run) == TINY
