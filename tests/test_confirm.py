"""Front figures a user can trust (search.confirm): the front is confirmed on the run's held-out slice of train, each
point in its own deployment variant; pareto.csv states the confirmed figure (split, size, standard error) beside the
dev one; a point scored on a dev subset never reaches the front; a run without a held-out slice says so."""
from __future__ import annotations

import json
import math

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution

from elastic.model.config import SubnetConfig, grid
from profiling.deploy import artifact_metric, build_artifact
from search.confirm import Confirmer, near_front_mask, standard_error_pct
from search.evaluator import HELDOUT, RunContext
from search.options import SearchOptions
from search.pareto import finalize, front_trials, read_pareto_csv
from tests.helpers_search import make_tiny_run

optuna.logging.set_verbosity(optuna.logging.WARNING)
FP32, INT8 = "cpu-eager-t1-b1-s16", "cpu-ort-int8-t1-b1-s16"
CLOCK = lambda cfgs: {"latency_ms": {c.hash: 1.0 for c in cfgs}}  # noqa: E731  (timing has its own tests)


def test_standard_error_and_the_candidates_near_the_dev_front():
    assert standard_error_pct(80.0, 400) == pytest.approx(2.0)  # sqrt(.8 * .2 / 400) = 0.02
    assert standard_error_pct(100.0, 5) == 0.0
    with pytest.raises(ValueError):
        standard_error_pct(50.0, 0)
    pts = [[80.0, 1.0], [79.5, 1.5], [85.0, 2.0], [84.2, 2.5], [83.0, 3.0]]
    assert near_front_mask(pts, 0.0).tolist() == [True, False, True, False, False]  # margin 0: the dev front
    # b: best at <= 1.5 is 80.0 (79.5 >= 79.0); d: best at <= 2.5 is 85.0 (84.2 >= 84.0); e: 83.0 < 84.0
    assert near_front_mask(pts, 1.0).tolist() == [True, True, True, True, False]
    assert near_front_mask(pts, [0.0, 0.0, 0.0, 0.0, 2.5]).tolist() == [True, False, True, False, True]


@pytest.fixture(scope="module")
def confirmed_run(tmp_path_factory):
    """A tiny run with a held-out slice, searched over fp32 eager and INT8 ORT, its front finalized as
    `dynabert search` does (a stand-in clock)."""
    from app.workflow.search import variant_test_fn
    from search.confirm import run_confirmer
    from search.objective import build_objective
    from search.study import run_search

    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path_factory.mktemp("confirm"), heldout=10)
    opts = SearchOptions(run_dir=run, scenario=f"{FP32},{INT8}", objectives=("metric", "params"), n_trials=6,
                         threads=1, progress=False)
    ctx = RunContext(run)
    objective = build_objective(opts, ctx)
    study = run_search(opts, objective=objective)
    summary = finalize(study, run_dir=run, scenario=opts.scenario, objectives=opts.objectives, full_costs=[1e6],
                       time_front={v: CLOCK for v in opts.variants},
                       test_fn={v: variant_test_fn(objective.evaluators[v]) for v in opts.variants},
                       confirmer=run_confirmer(ctx, objective.evaluators),
                       grid_hashes={c.hash for _, _, c in grid(ctx.arch)})
    return run, summary


def test_front_rows_carry_the_heldout_figure_of_a_fresh_artifact(confirmed_run):
    run, summary = confirmed_run
    rows = read_pareto_csv(run / "pareto.csv")
    assert rows and summary["confirmation"]["split"] == HELDOUT and summary["confirmation"]["n"] == 10
    fresh = RunContext(run)  # a new process's view: no memo
    n_dev = len(fresh.task.splits["dev"])
    grid_hashes = {c.hash for _, _, c in grid(fresh.arch)}
    for r in rows:
        cfg = SubnetConfig.from_json(r["config_json"])
        assert r["confirm_split"] == HELDOUT and int(r["confirm_n"]) == 10
        if r["scenario"] == INT8:  # the INT8 ONNX model's own figure, never the fp32 model's
            with build_artifact(fresh.model, cfg, INT8) as art:
                want = artifact_metric(art, fresh.loader(HELDOUT), fresh.task)
        else:
            want = fresh.metric(cfg, HELDOUT, None)
        assert float(r["confirm_metric"]) == pytest.approx(want, abs=1e-9)
        p = float(r["confirm_metric"]) / 100
        assert float(r["confirm_se"]) == pytest.approx(100 * math.sqrt(p * (1 - p) / 10), abs=1e-3)
        d = float(r["dev_metric"]) / 100
        assert float(r["dev_se"]) == pytest.approx(100 * math.sqrt(d * (1 - d) / n_dev), abs=1e-3)
        assert (r["grid_point"] == "True") == (cfg.hash in grid_hashes)
        assert r["test_metric"] != ""
    # the front is non-dominated on the confirmed figure (with the searched cost)
    pts = [(float(r["confirm_metric"]), float(r["params"])) for r in rows]
    assert not any(o[0] >= p[0] and o[1] <= p[1] and o != p for p in pts for o in pts)
    saved = json.loads((run / "search.json").read_text())
    assert saved["confirmation"]["split"] == HELDOUT and "hypervolume_confirmed" in saved


def _trial(study, number_metric, params, fidelity, cfg):
    study.add_trial(optuna.trial.create_trial(
        values=[number_metric, params], params={"x": 0.0}, distributions={"x": FloatDistribution(0, 1)},
        user_attrs={"config_json": cfg.to_json(), "config_hash": cfg.hash, "fidelity": fidelity,
                    "scenario": FP32, "precision": "fp32", "runtime": "eager"}))


def test_a_subset_fidelity_point_never_reaches_the_front(tmp_path):
    from tests.conftest import TINY

    study = optuna.create_study(directions=["maximize", "minimize"])
    cfgs = [c for _, _, c in grid(TINY)]
    _trial(study, 99.0, 1.0, "subset-8", cfgs[5])  # would dominate everything: scored on 8 dev examples only
    _trial(study, 80.0, 10.0, "full", cfgs[0])
    _trial(study, 70.0, 5.0, "full", cfgs[1])
    assert [t.number for t in front_trials(study)] == [1, 2]
    scores = {cfgs[0].hash: 75.0, cfgs[1].hash: 72.0, cfgs[5].hash: 100.0}
    conf = Confirmer(HELDOUT, 50, 40, "accuracy", {FP32: lambda cfg: scores[cfg.hash]})
    finalize(study, run_dir=tmp_path, scenario=FP32, objectives=("metric", "params"), full_costs=[20.0],
             confirmer=conf)
    rows = read_pareto_csv(tmp_path / "pareto.csv")
    assert sorted(r["config_hash"] for r in rows) == sorted([cfgs[0].hash, cfgs[1].hash])
    assert {r["config_hash"]: float(r["confirm_metric"]) for r in rows} == {cfgs[0].hash: 75.0, cfgs[1].hash: 72.0}


def test_confirmation_picks_the_config_that_holds_up_on_heldout(tmp_path):
    from tests.conftest import TINY

    study = optuna.create_study(directions=["maximize", "minimize"])
    cfgs = [c for _, _, c in grid(TINY)]
    _trial(study, 80.0, 5.0, "full", cfgs[0])  # the dev winner at cost 5, by luck
    _trial(study, 79.0, 5.0, "full", cfgs[1])  # within one dev SE (sqrt(.8 .2 / 100) = 4 points)
    scores = {cfgs[0].hash: 70.0, cfgs[1].hash: 78.0}
    conf = Confirmer(HELDOUT, 100, 100, "accuracy", {FP32: lambda cfg: scores[cfg.hash]})
    out = finalize(study, run_dir=tmp_path, scenario=FP32, objectives=("metric", "params"), full_costs=[20.0],
                   confirmer=conf)
    [row] = read_pareto_csv(tmp_path / "pareto.csv")
    assert row["config_hash"] == cfgs[1].hash and float(row["confirm_metric"]) == 78.0
    assert out["confirmation"]["candidates"] == 2 and out["knee_hash"] == cfgs[1].hash


def test_a_run_without_heldout_slice_keeps_the_dev_front_and_says_so(tmp_path, capsys):
    from app.cli.main import main

    run = make_tiny_run(tmp_path)
    code = main(["search", "--run-dir", str(run), "--scenario", FP32, "--objectives", "metric,macs", "--n-trials",
                 "6", "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    rows = read_pareto_csv(run / "pareto.csv")
    assert rows and all(r["confirm_split"] == "" and r["confirm_metric"] == "" for r in rows)
    assert all(r["dev_se"] != "" for r in rows)
    conf = json.loads((run / "search.json").read_text())["confirmation"]
    assert conf["split"] is None and "held-out" in conf["warning"] and "not confirmed" in err


def test_the_card_states_the_confirmed_figure_of_the_written_artifact(confirmed_run, tmp_path):
    from app.workflow.export import ExportOptions, export

    run, _ = confirmed_run
    rows = {r["config_hash"] + r["scenario"]: r for r in read_pareto_csv(run / "pareto.csv")}
    written = export(ExportOptions(run_dir=run, pareto=True, out=tmp_path / "all", onnx=False, measure=False))
    assert len(written) == len(rows)
    for e in written:
        card = (e.path / "README.md").read_text()
        [row] = [r for r in rows.values() if r["config_hash"] == e.config.hash
                 and f"precision {r['precision']}, runtime {r['runtime']}" in card]
        conf, se = float(row["confirm_metric"]), float(row["confirm_se"])
        assert f"confirmed accuracy: {conf:.4g} % ± {se:.2f} on the 10 examples of the heldout split" in card
        assert "dev accuracy: " in card and "the search chose on it" in card
