"""Pareto front, hypervolume, knee and the written artifacts, on hand-made Optuna trials."""
from __future__ import annotations

import csv
import json
import warnings

import optuna
import pytest
from optuna.distributions import IntDistribution

from elastic.model.config import SubnetConfig
from search.pareto import (PARETO_COLUMNS, count_dominated, finalize, hypervolume, hypervolume_history,
                           knee_index, pareto_mask, reference_point)

optuna.logging.set_verbosity(optuna.logging.WARNING)
REF = [0.0, 20.0]


def _study(points, constraints=None):
    study = optuna.create_study(directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["dev_metric", "latency_ms"])
    for i, (m, c) in enumerate(points):
        cfg = SubnetConfig((0,), (i % 4 + 1,), (8 * (i + 1),))
        attrs = {"config_json": cfg.to_json(), "config_hash": cfg.hash, "latency_ms": c, "macs": 100 * i,
                 "params": 10 * i, "eval_seconds": 0.5}
        system = {} if constraints is None else {"constraints": [constraints[i]]}
        study.add_trial(optuna.trial.create_trial(values=[m, c], user_attrs=attrs, system_attrs=system,
                                                  params={"x": i}, distributions={"x": IntDistribution(0, 99)}))
    return study


def test_front_and_hypervolume_hand_checked():
    study = _study([(80, 10), (70, 5), (60, 6), (50, 25)])
    front = sorted(study.best_trials, key=lambda t: t.number)
    assert [t.number for t in front] == [0, 1]  # (60, 6) is dominated by (70, 5); (50, 25) is not
    # boxes in (-metric, cost) space up to (0, 20): 80*10 + 70*15 - overlap 70*10 = 1150
    assert hypervolume([[80, 10], [70, 5]], REF) == pytest.approx(1150.0)
    # dominated points and points beyond the reference add nothing
    assert hypervolume([[80, 10], [70, 5], [60, 6], [50, 25]], REF) == pytest.approx(1150.0)
    assert hypervolume([], REF) == 0.0
    assert hypervolume([[10, 1, 1]], [0, 2, 2]) == pytest.approx(10.0)  # 3 objectives: a 10x1x1 box


def test_pareto_mask_and_dominated_count():
    assert pareto_mask([[80, 10], [70, 5], [60, 6], [80, 10]]).tolist() == [True, True, False, True]
    searched = [[80, 10], [70, 5], [75, 4]]
    # (70, 5) is dominated by (75, 4); (80, 10) equal to a searched point is not dominated
    assert count_dominated([[80, 10], [70, 5], [60, 3]], searched) == 1


def test_knee_is_farthest_from_the_extremes_line():
    assert knee_index([[50, 1], [78, 2], [80, 10]]) == 1
    assert knee_index([[50, 1], [60, 5], [80, 10]]) in (0, 1, 2)
    assert knee_index([[70, 3]]) == 0
    assert knee_index([[60, 2], [80, 9]]) == 1  # tie: the more accurate one
    # the demo's front, confirmed metric vs re-measured ms: a point below the chord (27.5 at 0.748 ms) or dominated
    # after re-measurement is never the knee
    demo = [[96.6, 1.001], [74.2, 0.769], [21.3, 0.278], [95.5, 0.981], [27.5, 0.748], [74.7, 0.674]]
    assert knee_index(demo) == 5  # 74.7 at 0.674 ms: the non-dominated point farthest above the chord
    assert knee_index([[90, 1], [50, 2], [95, 3]]) == 2  # the dominated middle point is not the knee; two left: the more accurate
    with pytest.raises(ValueError):
        knee_index([])


def test_reference_point_and_history():
    assert reference_point([10.0]) == [0.0, pytest.approx(11.0)]
    study = _study([(60, 6), (70, 5), (80, 10)])
    hist = hypervolume_history(study, REF, every=1)
    assert [n for n, _ in hist] == [1, 2, 3]
    assert hist[0][1] == pytest.approx(60 * 14)
    assert hist[-1][1] == pytest.approx(1150.0)
    assert all(a[1] <= b[1] for a, b in zip(hist, hist[1:]))


def test_constraints_exclude_infeasible_trials():
    study = _study([(90, 1), (70, 5)], constraints=[1.0, -1.0])  # the best one is infeasible
    assert [t.number for t in study.best_trials] == [1]


def test_finalize_writes_pareto_and_search_json(tmp_path):
    study = _study([(80, 10), (70, 5), (60, 6), (78, 6)])
    tested, timed_calls = [], []

    searched = {SubnetConfig.from_json(t.user_attrs["config_json"]).hash: t.values[1] for t in study.trials}

    def time_front(cfgs):  # the whole front in one call: one clock for all its points; the searched order kept
        timed_calls.append(len(cfgs))
        return {"latency_ms": {c.hash: 2.0 + searched[c.hash] / 10 for c in cfgs},
                "fingerprint": {"cpu": "test"}, "full_model_ms": 9.5, "method": "fake"}

    def test_fn(cfg):
        tested.append(cfg.hash)
        return 42.0

    out = finalize(study, run_dir=tmp_path, scenario="cpu-eager-t1-b1-s16", objectives=("metric", "latency"),
                   full_costs=[10.0], time_front=time_front, test_fn=test_fn)
    rows = list(csv.DictReader(open(tmp_path / "pareto.csv")))
    assert tuple(rows[0]) == PARETO_COLUMNS
    assert [int(r["trial"]) for r in rows] == [0, 1, 3]
    assert len(tested) == 3  # the test metric only for front points, never for choosing
    assert sum(r["knee"] == "True" for r in rows) == 1
    assert all(float(r["latency_measured_ms"]) > 2.0 for r in rows)
    saved = json.loads((tmp_path / "search.json").read_text())
    assert saved == json.loads(json.dumps(out))
    for key in ("scenario", "objectives", "reference_point", "hypervolume", "hypervolume_history", "knee_hash",
                "n_trials", "seconds_per_trial"):
        assert key in saved
    assert saved["reference_point"] == [0.0, pytest.approx(11.0)]
    measured = [[float(r["dev_metric"]), float(r["latency_measured_ms"])] for r in rows]
    assert saved["hypervolume"] == pytest.approx(hypervolume(measured, saved["reference_point"]))
    assert saved["n_trials"] == 4 and saved["n_dominated_once_measured"] == 0
    assert saved["fingerprint"] == {"cpu": "test"}
    assert timed_calls == [3] and saved["latency_timing"] == {"full_model_ms": 9.5, "method": "fake"}


def test_finalize_empty_study_is_one_clear_error(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="no feasible completed trial"):
        finalize(study, run_dir=tmp_path, scenario="cpu-eager-t1-b1-s16", objectives=("metric", "latency"),
                 full_costs=[1.0])


def test_a_config_proposed_twice_is_one_front_row(tmp_path):
    """A sampler may propose a config again (its cached metric makes an equal point): pareto.csv lists it once,
    as its first trial, and the front's hypervolume is unchanged."""
    study = _study([(80, 10), (70, 5), (60, 6)])
    again = study.trials[1]  # trial 1's config and values, proposed again as trial 3
    study.add_trial(optuna.trial.create_trial(values=list(again.values), user_attrs=dict(again.user_attrs),
                                              params={"x": 50}, distributions={"x": IntDistribution(0, 99)}))
    assert len(study.best_trials) == 3  # Optuna keeps both equal points
    searched = {SubnetConfig.from_json(t.user_attrs["config_json"]).hash: t.values[1] for t in study.trials}
    out = finalize(study, run_dir=tmp_path, scenario="cpu-eager-t1-b1-s16", objectives=("metric", "latency"),
                   full_costs=[10.0], time_front=lambda cfgs: {"latency_ms": {c.hash: searched[c.hash] for c in cfgs}})
    rows = list(csv.DictReader(open(tmp_path / "pareto.csv")))
    assert [int(r["trial"]) for r in rows] == [0, 1] and out["n_front"] == 2
    assert len({r["config_hash"] for r in rows}) == 2
