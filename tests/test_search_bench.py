"""The search benchmark's arithmetic on fixtures with known answers: fronts without duplicate configs, the
hypervolume on test accuracy of a front chosen on dev, spread over seeds, the sampler comparison."""
from __future__ import annotations

import pytest

from bench.search_metrics import (Point, Trial, beats_by_one_sd, compare_with_rule, dedup, dominated_on_test,
                                  front_shortfall_on_test, hv, searched_front, spread, standard_error_pct)

REF = [50.0, 3.0]  # accuracy %, latency ms


def test_hypervolume_on_test_accuracy_of_a_front_chosen_on_dev():
    a = Point("a", dev=90.0, test=80.0, latency_ms=1.0)
    b = Point("b", dev=85.0, test=88.0, latency_ms=2.0)
    # test: (80, 1) and (88, 2) are both non-dominated: 30 x 2 + 8 x 1
    assert hv([a, b], REF, "test") == pytest.approx(68.0)
    # dev: (90, 1) dominates (85, 2): 40 x 2
    assert hv([a, b], REF, "dev") == pytest.approx(80.0)
    # a point worse than the reference adds nothing
    assert hv([a, Point("c", 40.0, 40.0, 0.5)], REF, "test") == pytest.approx(60.0)
    with pytest.raises(ValueError, match="on must be"):
        hv([a], REF, "train")


def test_front_counts_a_config_once_and_only_within_the_budget():
    trials = [Trial(3, (60.0, 2.0), "c"), Trial(0, (80.0, 1.0), "a"), Trial(1, (80.0, 1.0), "a"),
              Trial(2, (70.0, 0.5), "b"), Trial(4, (85.0, 3.0), "d")]
    assert [t.number for t in searched_front(trials, 4)] == [0, 2]  # the repeat of "a" (trial 1) is dropped
    assert [t.number for t in searched_front(trials, 5)] == [0, 2, 4]
    assert searched_front(trials, 0) == []
    assert dedup([3, 1, 3, 2, 1], key=lambda x: x) == [3, 1, 2]


def test_spread_and_sampler_comparison():
    s = spread([1.0, 2.0, 3.0])
    assert (s["mean"], s["std"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 1.0, 3.0, 3)
    assert spread([5.0])["std"] == 0.0
    assert beats_by_one_sd([10, 11, 12], [8, 9, 10])            # 2 > 1
    assert beats_by_one_sd([10, 11, 12], [9.5, 10, 10.5])       # 1 > sqrt((1 + 0.25) / 2) = 0.79
    assert not beats_by_one_sd([10, 11, 12], [9.2, 10.2, 11.2])  # 0.8 < 1
    assert not beats_by_one_sd([10, 11, 12], [10, 11, 12])


def test_grid_points_dominated_on_test():
    grid = [Point("g1", dev=99.0, test=80.0, latency_ms=2.0), Point("g2", dev=70.0, test=90.0, latency_ms=1.0)]
    front = [Point("f", dev=60.0, test=85.0, latency_ms=1.5)]  # dev plays no part
    assert dominated_on_test(grid, front) == 1
    assert dominated_on_test(grid, [Point("f", 0.0, 95.0, 0.5)]) == 2
    assert dominated_on_test(grid[1:], grid[1:]) == 0  # a point does not dominate itself


def test_shortfall_of_the_front_against_the_grid_on_test():
    grid = [Point("g1", 0.0, 90.0, 10.0), Point("g2", 0.0, 85.0, 5.0)]
    assert front_shortfall_on_test(grid, [Point("f", 0.0, 91.0, 4.0)]) == 0.0  # one point beats both
    # g1 (10 ms) is matched by nothing at <= 10 ms better than 88.5; g2 (5 ms) by 84.0 at 4 ms
    assert front_shortfall_on_test(grid, [Point("a", 0.0, 84.0, 4.0), Point("b", 0.0, 88.5, 9.0),
                                 Point("slow", 0.0, 99.0, 11.0)]) == pytest.approx(1.5)
    assert front_shortfall_on_test(grid, [Point("a", 0.0, 99.0, 6.0)]) is None  # nothing as fast as g2
    assert front_shortfall_on_test(grid, grid) == 0.0
    assert standard_error_pct(90.0, 900) == pytest.approx(1.0)


def test_search_against_the_rule_is_decided_on_dev_and_reported_on_test():
    hv_test = {"tpe_100": [10, 11, 12], "rule_100": [12, 12, 12], "tpe_300": [20, 21, 22], "rule_300": [15, 15, 15]}
    hv_dev = {"tpe_100": [10, 11, 12], "rule_100": [10.5, 11, 11.5], "tpe_300": [30, 31, 32], "rule_300": [20, 20, 20]}
    v = compare_with_rule(hv_test, hv_dev, "tpe", (100, 300))
    assert (v["sampler"], v["budget"]) == ("tpe", 300)
    assert (v["hv_test_search"], v["hv_test_rule"], v["sd"]) == (21.0, 15.0, {"search": 1.0, "rule": 0.0})
    assert v["better_on_dev"] == "search" and not v["rule_as_good"] and not v["rule_as_good_at_every_budget"]
    # at 100 the rule is better on test, but dev decides: within one sd there, a tie, so the rule is as good
    at100 = v["by_budget"]["100"]
    assert at100["hv_test_rule"] > at100["hv_test_search"] and at100["better_on_dev"] == "tie" and at100["rule_as_good"]
    hv_dev["rule_300"] = [40, 40, 40]
    assert compare_with_rule(hv_test, hv_dev, "tpe", (100, 300))["better_on_dev"] == "rule"
