"""The objective registry (`search.objectives`): a cost objective registered in a test (kept layers) is selectable,
computed in a tiny search's trials, written to trials.csv and pareto.csv and offered by the dashboard, with no
other code touched."""
from __future__ import annotations

import csv
import json

import optuna
import pytest
import torch
from optuna.trial import TrialState

from app.dashboard import charts as C
from elastic.model.config import SubnetConfig
from search.objectives import (CostObjective, column_of, cost_objective, cost_objectives, objective_names, register,
                               unregister)
from search.options import OBJECTIVES, SearchOptions
from search.pareto import finalize
from search.study import run_search
from tests.helpers_search import SCENARIO, make_tiny_run

optuna.logging.set_verbosity(optuna.logging.WARNING)
LAYERS = CostObjective(name="layers", unit="layers", column="kept_layers", label="Kept layers (count)",
                       compute=lambda cfg, ctx: len(cfg.layers), integer=True)


@pytest.fixture
def layers_objective():
    register(LAYERS)
    try:
        yield LAYERS
    finally:
        unregister(LAYERS.name)


def test_built_ins():
    assert OBJECTIVES == objective_names() == ("metric", "latency", "macs", "params")
    assert [column_of(o) for o in OBJECTIVES] == ["dev_metric", "latency_ms", "macs", "params"]
    assert cost_objective("latency").needs_latency and cost_objective("latency").front_column == "latency_pred_ms"
    with pytest.raises(ValueError, match="already registered"):
        register(cost_objective("macs"))
    with pytest.raises(ValueError, match="column 'macs' is taken"):
        register(CostObjective(name="macs2", unit="MACs", column="macs", label="x", compute=lambda c, x: 0.0))
    with pytest.raises(ValueError, match="costs are minimised"):
        register(CostObjective(name="acc", unit="%", column="acc", label="x", compute=lambda c, x: 0.0,
                               direction="maximize"))  # type: ignore[arg-type]


def test_unknown_objective_is_refused_until_registered(tmp_path, layers_objective):
    unregister("layers")
    with pytest.raises(ValueError, match=r"unknown or repeated \['layers'\]; choose from metric, latency, macs, params"):
        SearchOptions(run_dir=tmp_path, objectives=("metric", "layers"))
    register(LAYERS)
    opts = SearchOptions(run_dir=tmp_path, objectives=("metric", "layers"))
    assert opts.objectives == ("metric", "layers") and not opts.needs_latency
    assert C.cost_axes()["layers"] == "Kept layers (count)"


def test_a_registered_objective_is_searched_and_written(tmp_path, layers_objective):
    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path / "run")
    opts = SearchOptions(run_dir=run, scenario=SCENARIO, objectives=("metric", "layers"), n_trials=14, threads=1,
                         progress=False, sampler="random")
    study = run_search(opts)
    assert study.metric_names == ["dev_metric", "kept_layers"]
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 14
    for t in done:
        kept = len(SubnetConfig.from_json(t.user_attrs["config_json"]).layers)
        assert t.values[1] == kept and t.user_attrs["kept_layers"] == kept
        assert t.user_attrs["macs"] > 0  # the other registered costs are still recorded
    trials = list(csv.DictReader(open(run / "trials.csv")))
    assert {int(r["kept_layers"]) for r in trials} >= {2, 3, 4}  # the grid's depths 0.5, 0.75, 1.0 of 4 layers

    summary = finalize(study, run_dir=run, scenario=opts.scenario, objectives=opts.objectives, full_costs=[4])
    assert summary["objectives"] == ["metric", "layers"] and summary["reference_point"] == [0.0, 4.4]
    rows = list(csv.DictReader(open(run / "pareto.csv")))
    assert rows and all(int(r["kept_layers"]) == len(json.loads(r["config_json"])["layers"]) for r in rows)
    assert len({r["kept_layers"] for r in rows}) == len(rows)  # one point per depth on a (metric, layers) front

    # the dashboard's x axis of the new objective reads pareto.csv's column
    import pandas as pd
    front = pd.read_csv(run / "pareto.csv")
    assert C.x_values(front, "layers").tolist() == front["kept_layers"].astype(float).tolist()
    assert "Kept layers" in C.pareto_figure(x="layers", metric_col="dev_metric", metric_title="dev", scenario=SCENARIO,
                                            front=front).layout.xaxis.title.text
    assert LAYERS in cost_objectives()
