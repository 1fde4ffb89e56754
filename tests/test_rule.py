"""The Mix'n'Match rule (search/rule.py): a deterministic family of valid per-layer configs, grid first, monotone
width schedules on the trained ladder, layer-drop patterns, no duplicates, budgets respected and nested."""
from __future__ import annotations

import pytest

from elastic.model.config import GRID_WIDTHS, BertArch, SubnetConfig, grid
from search.rule import (even_order, layer_patterns, ordered_family, ramp, rule_configs, rule_family, snap)
from search.space import ffn_choices, params_for
from tests.conftest import TINY

ARCHS = [TINY, BertArch(num_layers=6, hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536,
                        vocab_size=100)]


@pytest.mark.parametrize("arch", ARCHS, ids=["tiny", "minilm"])
def test_family_is_valid_deduplicated_and_on_the_search_lattice(arch):
    fam = rule_family(arch)
    hashes = [e.config.hash for e in fam]
    assert len(hashes) == len(set(hashes))
    legal = set(ffn_choices(arch))
    for e in fam:
        e.config.validate(arch)
        assert set(e.config.ffn) <= legal
        params_for(e.config, arch)  # expressible as an enqueued trial
        # heads and FFN follow the uniform rule at the layer's (ladder) width
        for w, h, n in zip(e.widths, e.config.heads, e.config.ffn):
            assert w in GRID_WIDTHS
            assert h == round(arch.num_heads * w) and n == int(h / arch.num_heads * arch.intermediate_size)
    kinds = {e.kind for e in fam}
    assert kinds == {"grid", "uniform", "rise", "fall"}


@pytest.mark.parametrize("arch", ARCHS, ids=["tiny", "minilm"])
def test_grid_comes_first_and_is_all_there(arch):
    g = [cfg for _, _, cfg in grid(arch)]
    for seed in (0, 1, 2):
        assert rule_configs(arch, 100, seed=seed)[:12] == g
    assert rule_configs(arch, 5) == g[:5]


def test_schedules_are_monotone_and_rise_and_fall():
    fam = rule_family(TINY)
    for e in fam:
        pairs = list(zip(e.widths, e.widths[1:]))
        if e.kind == "rise":
            assert all(a <= b for a, b in pairs) and e.widths[0] < e.widths[-1]
        elif e.kind == "fall":
            assert all(a >= b for a, b in pairs) and e.widths[0] > e.widths[-1]
        else:
            assert len(set(e.widths)) == 1
    assert ramp(4, 0.25, 1.0, GRID_WIDTHS) == (0.25, 0.5, 0.75, 1.0)
    assert ramp(3, 1.0, 0.25, GRID_WIDTHS) == (1.0, 0.75, 0.25)  # midpoint 0.625: the tie goes to the wider
    assert snap(0.625, GRID_WIDTHS) == 0.75 and snap(0.3, GRID_WIDTHS) == 0.25
    # heads rise with the width of a rising schedule
    rising = next(e for e in fam if e.kind == "rise" and e.pattern == "full")
    assert list(rising.config.heads) == sorted(rising.config.heads)


def test_layer_drop_patterns():
    pats = dict((name, layers) for name, layers in layer_patterns(12))
    assert pats["full"] == tuple(range(12))
    assert pats["dynabert-d0.5"] == (0, 2, 4, 6, 8, 10) and pats["mirror-d0.5"] == (1, 3, 5, 7, 9, 11)
    assert pats["dynabert-d0.75"] == (0, 1, 2, 4, 5, 6, 8, 9, 10)
    assert pats["mirror-d0.75"] == (1, 2, 3, 5, 6, 7, 9, 10, 11)
    assert pats["drop-last-d0.5"] == (0, 1, 2, 3, 4, 5) and pats["drop-first-d0.5"] == (6, 7, 8, 9, 10, 11)
    assert len(pats) == 9
    # on 4 layers, depth 0.75's drop-last is DynaBERT's rule and drop-first is its mirror: kept once
    assert len(layer_patterns(4)) == 7 and len({l for _, l in layer_patterns(4)}) == 7
    # every pattern carries every ladder width and both ramp directions
    fam = rule_family(TINY)
    assert {e.pattern for e in fam if e.kind == "rise"} == {n for n, _ in layer_patterns(4)}


def test_budget_respected_deterministic_and_nested():
    n = len(rule_family(TINY))
    for budget in (1, 12, 13, 40, n):
        a = rule_configs(TINY, budget, seed=1)
        assert len(a) == budget and len({c.hash for c in a}) == budget
        assert a == rule_configs(TINY, budget, seed=1)  # deterministic
        assert rule_configs(TINY, budget + 7, seed=1)[:budget] == a  # a larger budget extends a smaller one
    # a budget beyond the family: all of it, and no more
    everything = rule_configs(TINY, 10 * n, seed=0)
    assert len(everything) == n and {c.hash for c in everything} == {e.config.hash for e in rule_family(TINY)}
    assert {c.hash for c in rule_configs(TINY, n, seed=2)} == {c.hash for c in everything}
    # seeds shift the subsample, not the grid
    assert rule_configs(TINY, 40, seed=0)[12:] != rule_configs(TINY, 40, seed=1)[12:]
    with pytest.raises(ValueError, match="budget"):
        rule_configs(TINY, 0)


def test_the_subsample_is_even():
    """Every prefix of the order is spread over the family: the first k indices leave no gap much wider than n/k."""
    n = 100
    order = even_order(n, seed=3)
    assert sorted(order) == list(range(n))
    for k in (4, 10, 25):
        picked = sorted(order[:k])
        gaps = [b - a for a, b in zip(picked, picked[1:])] + [picked[0] + n - picked[-1]]
        assert max(gaps) <= 2 * n / k
    # the subsample of the family covers every kind, not just the first patterns enumerated
    fam = ordered_family(TINY, seed=0)
    assert {e.kind for e in fam[12:40]} == {"uniform", "rise", "fall"}
    assert len({e.pattern for e in fam[12:40]}) == len(layer_patterns(4))


def test_configs_are_subnet_configs():
    assert all(isinstance(c, SubnetConfig) for c in rule_configs(TINY, 20))


def test_enqueue_rule_puts_the_configs_first_in_every_variant():
    import optuna

    from search.rule import enqueue_rule
    from search.space import config_from_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    cfgs = enqueue_rule(study, TINY, 20, seed=2, variants=("cpu-a", "cpu-b"))
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)]
    assert len(waiting) == 40 and cfgs == rule_configs(TINY, 20, seed=2)
    assert [p["variant"] for p in waiting] == ["cpu-a"] * 20 + ["cpu-b"] * 20
    assert [config_from_params({k: v for k, v in p.items() if k != "variant"}, TINY) for p in waiting[20:]] == cfgs
    enqueue_rule(study, TINY, 25, seed=2, variants=("cpu-a", "cpu-b"))  # already enqueued ones are skipped
    assert len(study.get_trials(deepcopy=False)) == 50
