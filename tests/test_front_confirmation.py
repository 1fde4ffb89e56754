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


def test_heldout_split_is_the_slice_training_left_out_and_is_cached(tmp_path):
    from bench.front_confirmation import HELDOUT, HeldoutRunContext
    from elastic.model.config import SubnetConfig
    from elastic.data.tasks import EncodedSplit, encode_split
    from elastic.training.evaluate import evaluate, make_eval_loader
    from search.evaluator import CACHE_FILE
    from tests.helpers_search import make_tiny_run

    run = make_tiny_run(tmp_path, heldout=10)
    ctx = HeldoutRunContext(run)
    assert ctx.heldout_examples == 10
    # Stated independently of elastic.training.prepare: the LAST 10 examples of the encoded train split.
    enc = encode_split(ctx.task, "train", ctx.tokenizer, ctx.max_length)
    last = EncodedSplit(enc.input_ids[-10:], enc.token_type_ids[-10:], enc.labels[-10:], enc.is_regression,
                        enc.pad_token_id)
    cfgs = [SubnetConfig.full(ctx.arch), SubnetConfig.uniform(ctx.arch, 0.5, 0.5)]
    want = [float(evaluate(ctx.model, make_eval_loader(last), c, ctx.task, ctx.runtime)["metric"]) for c in cfgs]
    first = [ctx.evaluator().metric(c, HELDOUT) for c in cfgs]
    assert [v for v, _ in first] == pytest.approx(want) and not any(hit for _, hit in first)
    # Persisted in the run's eval cache beside dev and test: a new process reads it back without scoring.
    assert sum(f"{HELDOUT}:full:" in line for line in (run / CACHE_FILE).read_text().splitlines()) == 2
    again = HeldoutRunContext(run).evaluator()
    assert [again.metric(c, HELDOUT) for c in cfgs] == [(v, True) for v, _ in first] and again.n_evals == 0
    with pytest.raises(ValueError, match="whole"):
        ctx.loader(HELDOUT, 5)


def test_heldout_context_of_a_run_without_a_heldout_slice(tmp_path):
    from bench.front_confirmation import HeldoutRunContext
    from tests.helpers_search import make_tiny_run

    assert HeldoutRunContext(make_tiny_run(tmp_path)).heldout_examples == 0
