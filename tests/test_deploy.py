"""What the front shows is the deployed variant: an INT8 trial and front point carry the INT8 artifact's own dev
metric (never the fp32 one), and the artifact scored is the one the latency runners time."""
from __future__ import annotations

import shutil

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from elastic.model.config import SubnetConfig
from elastic.model.extract import extract
from profiling.deploy import artifact_logits, artifact_metric, build_artifact, deploy_small
from profiling.runners import build_runner, make_inputs
from profiling.scenario import Scenario
from search.evaluator import RunContext
from search.options import SearchOptions
from search.pareto import finalize, read_pareto_csv
from tests.helpers_search import make_tiny_run, tiny_elastic

optuna.logging.set_verbosity(optuna.logging.WARNING)
FP32, INT8 = "cpu-eager-t1-b1-s16", "cpu-ort-int8-t1-b1-s16"
CFG = SubnetConfig((0, 2, 3), (3, 1, 4), (40, 16, 64))


@pytest.fixture(scope="module")
def small_and_dir(tmp_path_factory):
    """The extracted tiny sub-network and a folder its artifacts share (ONNX exports take seconds)."""
    torch.set_num_threads(1)
    return extract(tiny_elastic(2), CFG).eval(), tmp_path_factory.mktemp("deploy")


@pytest.mark.parametrize("key", ["cpu-eager-t1-b2-s12", "cpu-ort-t1-b2-s12", "cpu-ort-int8-t1-b2-s12",
                                 "cpu-eager-int8-t1-b2-s12"])
def test_the_scored_artifact_is_the_timed_one(key, small_and_dir):
    """The runner the latency harness times (its own export and conversion, its defaults) and the artifact the
    metric comes from give the same logits."""
    small, folder = small_and_dir
    sc = Scenario.parse(key)
    ids, mask = make_inputs(sc, int(small.config.vocab_size))
    timed = build_runner(small, sc)()
    timed = np.asarray(timed[0] if isinstance(timed, list) else timed.float().numpy())
    with deploy_small(small, sc, workdir=folder) as art:
        scored = art.predict(ids, mask, None)
    np.testing.assert_allclose(scored, timed, atol=1e-5, rtol=0)
    if sc.int8:  # and it is really quantized: not the fp32 model's logits
        fp32 = small(ids, mask).logits.detach().numpy()
        assert np.abs(scored - fp32).max() > 1e-4


@pytest.fixture(scope="module")
def int8_search(tmp_path_factory):
    """A search over fp32 eager and INT8 ORT on a tiny run: the two largest grid configs in both variants."""
    from app.workflow.search import variant_test_fn
    from search.objective import build_objective
    from search.study import run_search

    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path_factory.mktemp("deploy"))
    opts = SearchOptions(run_dir=run, scenario=f"{FP32},{INT8}", objectives=("metric", "params"), n_trials=4,
                         threads=1, progress=False)
    ctx = RunContext(run)
    objective = build_objective(opts, ctx)
    study = run_search(opts, objective=objective)
    # The fronts timed with a stand-in clock (the harness has its own tests), test metrics per variant as search
    # does: the mixed front, and the front of an INT8-only study of the same run (its metrics come from the eval
    # cache the mixed search filled, under the INT8 variant's keys), which holds INT8 points whatever INT8 costs.
    clock = lambda cfgs: {"latency_ms": {c.hash: 1.0 for c in cfgs}}  # noqa: E731
    finalize(study, run_dir=run, scenario=opts.scenario, objectives=opts.objectives, full_costs=[1e6],
             time_front={v: clock for v in opts.variants},
             test_fn={v: variant_test_fn(objective.evaluators[v]) for v in opts.variants})
    only = SearchOptions(run_dir=run, scenario=INT8, objectives=("metric", "params"), n_trials=2, threads=1,
                         progress=False)
    obj8 = build_objective(only, ctx)
    (run / "int8_front").mkdir()
    finalize(run_search(only, objective=obj8), run_dir=run / "int8_front", scenario=INT8, objectives=only.objectives,
             full_costs=[1e6], time_front=clock, test_fn=variant_test_fn(obj8.evaluator))
    assert obj8.evaluator.n_evals == 0  # both configs came from the cache, as the INT8 artifact's metrics
    return run, study


def test_an_int8_trial_reports_the_int8_artifacts_metric(int8_search):
    run, study = int8_search
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.params.get("variant") for t in trials] == [FP32, INT8, FP32, INT8]  # grid first, in both variants
    int8 = [t for t in trials if t.user_attrs["precision"] == "int8"]
    assert {t.user_attrs["runtime"] for t in int8} == {"ort"} and all(t.user_attrs["scenario"] == INT8 for t in int8)
    fresh = RunContext(run)  # a new process's view: no memo, no cache
    for t in int8:
        cfg = SubnetConfig.from_json(t.user_attrs["config_json"])
        with build_artifact(fresh.model, cfg, INT8) as art:
            own = artifact_metric(art, fresh.loader("dev"), fresh.task)
            q_logits, _ = artifact_logits(art, fresh.loader("dev"))
        fp32 = fresh.metric(cfg, "dev", None)
        assert t.values[0] == pytest.approx(own, abs=1e-9)
        if own != fp32:
            assert t.values[0] != fp32
        with build_artifact(fresh.model, cfg, FP32) as ref:
            assert np.abs(q_logits - artifact_logits(ref, fresh.loader("dev"))[0]).max() > 1e-4  # really INT8
    # the same config in fp32 eager is another trial with the fp32 metric
    t0 = next(t for t in trials if t.params["variant"] == FP32)
    assert t0.values[0] == pytest.approx(fresh.metric(SubnetConfig.from_json(t0.user_attrs["config_json"]), "dev", None))


def test_an_int8_front_point_carries_the_quantized_models_own_accuracy(int8_search):
    """The issue's must-show: pareto.csv's INT8 point = the quantized artifact's own dev (and test) accuracy."""
    run, _ = int8_search
    rows = read_pareto_csv(run / "int8_front" / "pareto.csv")
    ctx = RunContext(run)
    points = [r for r in rows if r["precision"] == "int8"]
    assert points and len(points) == len(rows)
    for r in points:
        assert r["scenario"] == INT8 and r["runtime"] == "ort"
        cfg = SubnetConfig.from_json(r["config_json"])
        with build_artifact(ctx.model, cfg, INT8) as art:
            assert float(r["dev_metric"]) == pytest.approx(artifact_metric(art, ctx.loader("dev"), ctx.task))
            assert float(r["test_metric"]) == pytest.approx(artifact_metric(art, ctx.loader("test"), ctx.task))
    mixed = read_pareto_csv(run / "pareto.csv")  # one front over both variants, each point labelled
    assert {(r["precision"], r["runtime"]) for r in mixed} <= {("fp32", "eager"), ("int8", "ort")}
    assert all(r["scenario"] in (FP32, INT8) for r in mixed)


def _int8_trial(study) -> int:
    return next(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs["precision"] == "int8")


def test_export_writes_the_int8_variant_and_its_card(int8_search, tmp_path):
    from app.workflow.export import ExportOptions, export

    run, study = int8_search
    number = _int8_trial(study)
    [done] = export(ExportOptions(run_dir=run, trial=number, study_name=study.study_name, out=tmp_path / "m",
                                  measure=False))
    names = {p.name for p in done.path.iterdir()}
    assert {"model.int8.onnx", "model.onnx", "model.safetensors", "config.json", "README.md"} <= names
    ctx = RunContext(run)
    from profiling.deploy import load_artifact

    with load_artifact(done.path, INT8) as art:  # the written file, in ONNX Runtime
        dev = artifact_metric(art, ctx.loader("dev"), ctx.task)
    assert dev == pytest.approx(study.trials[number].values[0])
    card = (done.path / "README.md").read_text()
    assert "precision int8, runtime ort" in card and "model.int8.onnx" in card and INT8 in card
    [line] = [ln for ln in card.splitlines() if ln.startswith("- dev accuracy: ")]
    assert line.startswith(f"- dev accuracy: {dev:.4g} % ± ") and "(re-scored on the exported files)" in line


def test_export_refuses_when_the_artifact_misses_the_fronts_claim(int8_search, tmp_path):
    from app.workflow.export import ExportOptions, RescoreMismatch, export

    run, _ = int8_search
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    rows = read_pareto_csv(run / "int8_front" / "pareto.csv")
    rows[0]["dev_metric"] = float(rows[0]["dev_metric"]) + 0.5  # a claim the INT8 model does not reach
    from search.pareto import write_pareto_csv

    write_pareto_csv(rows[:1], copy / "pareto.csv")
    out = tmp_path / "exports"
    with pytest.raises(RescoreMismatch, match="more than 0.1 point"):
        export(ExportOptions(run_dir=copy, pareto=True, out=out, measure=False))
    assert not out.exists() or list(out.iterdir()) == []  # nothing written, no staging left behind
    rows[0]["dev_metric"] = float(rows[0]["dev_metric"]) - 0.45  # within 0.1 point: accepted
    write_pareto_csv(rows[:1], copy / "pareto.csv")
    [done] = export(ExportOptions(run_dir=copy, pareto=True, out=out, measure=False))
    assert (done.path / "model.int8.onnx").exists() and [p.name for p in out.iterdir()] == [done.path.name]
