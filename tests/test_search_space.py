"""Search space: per-layer parameters, FFN lattice with the grid on it, repair, grid enqueued first."""
from __future__ import annotations

import random

import optuna
import pytest

from elastic.model.config import BertArch, SubnetConfig, grid
from search.space import config_from_params, enqueue_grid, ffn_choices, params_for, suggest_subnet
from tests.conftest import TINY

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_ffn_choices_default_step_holds_every_grid_value():
    assert ffn_choices(TINY) == [8, 16, 24, 32, 40, 48, 56, 64]
    minilm = BertArch(num_layers=6, hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536,
                      vocab_size=30522)
    choices = ffn_choices(minilm)
    assert choices == list(range(192, 1537, 192))
    assert {n for _, _, c in grid(minilm) for n in c.ffn} <= set(choices)


def test_off_lattice_grid_values_are_added():
    # step 24: lattice 24, 48 (+ full 64); grid widths need 16 and 32 too
    assert ffn_choices(TINY, 24) == [16, 24, 32, 48, 64]
    with pytest.raises(ValueError, match="ffn_step"):
        ffn_choices(TINY, 0)


@pytest.mark.parametrize("step", [None, 24])
def test_params_round_trip(step):
    rng = random.Random(0)
    for _ in range(30):
        cfg = SubnetConfig.random(TINY, rng, ffn_step=step or 8)
        if any(n not in ffn_choices(TINY, step) for n in cfg.ffn):
            continue
        params = params_for(cfg, TINY, ffn_step=step)
        assert set(params) == {f"{k}_{i}" for k in ("keep", "heads", "ffn") for i in range(4)}
        assert suggest_subnet(optuna.trial.FixedTrial(params), TINY, ffn_step=step) == cfg


def test_all_dropped_is_repaired_deterministically():
    params = {**{f"keep_{i}": False for i in range(4)}, **{f"heads_{i}": i + 1 for i in range(4)},
              **{f"ffn_{i}": 8 * (i + 1) for i in range(4)}}
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(params)
    trial = study.ask()
    cfg = suggest_subnet(trial, TINY)
    assert cfg == SubnetConfig((0,), (1,), (8,))
    assert "kept layer 0" in trial.user_attrs["repaired"]
    assert config_from_params(params, TINY) == cfg


def test_grid_enqueued_first_and_once():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    cfgs = enqueue_grid(study, TINY)
    enqueue_grid(study, TINY)  # a resumed search must not run the grid twice
    assert len(study.trials) == 12
    got = []
    for _ in range(14):
        trial = study.ask()
        got.append(suggest_subnet(trial, TINY))
        study.tell(trial, [0.0, 1.0])
    assert got[:12] == [c for _, _, c in grid(TINY)] == cfgs
    assert study.trials[0].user_attrs["config_hash"] == cfgs[0].hash
    # every layer's width is a parameter even when dropped: a static space for NSGA-II/TPE
    assert all(len(t.params) == 12 for t in study.trials)
