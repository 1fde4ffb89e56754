"""The front confirmation bench's arithmetic on fixtures with known answers: which configs are re-scored, the
front chosen on the second opinion, the pooled metric, grid points covered (weakly dominated) on test."""
from __future__ import annotations

import pytest

from bench.front_confirmation import confirmed_front, covered_on_test, near_front, pooled
from bench.search_metrics import Point, Trial, dominated_on_test


def test_grid_points_covered_on_test_count_a_grid_config_on_the_front():
    grid = [Point("g1", dev=99.0, test=80.0, latency_ms=2.0), Point("g2", dev=70.0, test=90.0, latency_ms=1.0)]
    assert covered_on_test(grid, grid[1:]) == 2  # g2 on the front covers itself and g1 (90 >= 80, 1 <= 2)
    assert dominated_on_test(grid, grid[1:]) == 1  # ... but strictly dominates only g1
    assert covered_on_test(grid, [Point("f", 0.0, 80.0, 2.0)]) == 1  # equal to g1 covers it; g2 is faster
    assert covered_on_test(grid, [Point("f", 0.0, 79.9, 0.5)]) == 0
    assert covered_on_test(grid, []) == 0


def test_near_front_keeps_configs_within_the_margin_of_the_best_at_most_as_slow():
    trials = [Trial(0, (80.0, 1.0), "a"), Trial(1, (79.5, 1.5), "b"), Trial(2, (85.0, 2.0), "c"),
              Trial(3, (84.2, 2.5), "d"), Trial(4, (83.0, 3.0), "e"), Trial(5, (80.0, 1.0), "a")]
    assert [t.number for t in near_front(trials, 6, 0.0)] == [0, 2]  # the searched front; a's repeat counts once
    # b: best at <= 1.5 ms is 80.0, 79.5 >= 79.0; d: best at <= 2.5 is 85.0, 84.2 >= 84.0; e: 83.0 < 84.0
    assert [t.number for t in near_front(trials, 6, 1.0)] == [0, 1, 2, 3]
    assert [t.number for t in near_front(trials, 2, 1.0)] == [0, 1]  # only the first 2 trials
    with pytest.raises(ValueError, match="margin"):
        near_front(trials, 6, -1.0)


def test_confirmed_front_is_chosen_on_the_second_opinion():
    trials = [Trial(0, (80.0, 1.0), "a"), Trial(1, (79.5, 1.0), "b"), Trial(2, (85.0, 2.0), "c"),
              Trial(3, (84.2, 2.5), "d")]
    second = {"a": 78.0, "b": 81.0, "c": 83.0, "d": 84.0}.__getitem__  # a and c topped dev by luck
    assert [t.number for t in confirmed_front(trials, 4, 1.0, second)] == [1, 2, 3]  # b beats a at equal cost
    assert [t.number for t in confirmed_front(trials, 4, 0.0, second)] == [0, 2]  # margin 0: the dev front only
    assert confirmed_front(trials, 0, 1.0, second) == []


def test_pooled_metric_weights_by_examples():
    assert pooled(80.0, 3, 90.0, 1) == pytest.approx(82.5)
    assert pooled(80.0, 0, 90.0, 5) == pytest.approx(90.0)
    with pytest.raises(ValueError):
        pooled(80.0, 0, 90.0, 0)
