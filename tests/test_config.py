"""SubnetConfig: validation, JSON, hashing, DynaBERT's uniform grid, the random sampler."""
from __future__ import annotations

import random

import pytest
from transformers import BertConfig

from elastic.model.config import BertArch, SubnetConfig, grid, uniform_layers

BASE = BertArch(num_layers=12, hidden_size=768, num_heads=12, head_dim=64, intermediate_size=3072, vocab_size=30522)
MINILM = BertArch(num_layers=6, hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536, vocab_size=30522)


def test_arch_from_hf_config():
    arch = BertArch.from_hf_config(BertConfig(hidden_size=48, num_attention_heads=6, num_hidden_layers=3,
                                              intermediate_size=96, vocab_size=50))
    assert (arch.num_layers, arch.hidden_size, arch.num_heads, arch.head_dim, arch.intermediate_size,
            arch.vocab_size) == (3, 48, 6, 8, 96, 50)


def test_arch_rejects_non_bert():
    with pytest.raises(ValueError, match="model_type 'gpt2'"):
        BertArch.from_hf_config({"model_type": "gpt2", "n_layer": 2})


@pytest.mark.parametrize("arch,depth,layers", [
    (BASE, 0.5, [0, 2, 4, 6, 8, 10]),
    (BASE, 0.75, [0, 1, 2, 4, 5, 6, 8, 9, 10]),
    (BASE, 1.0, list(range(12))),
    (MINILM, 0.5, [0, 2, 4]),
    (MINILM, 1.0, list(range(6))),
])
def test_uniform_layers_match_official(arch, depth, layers):
    assert list(uniform_layers(arch.num_layers, depth)) == layers
    assert list(SubnetConfig.uniform(arch, 1.0, depth).layers) == layers


@pytest.mark.parametrize("width,heads,ffn", [(1.0, 12, 3072), (0.75, 9, 2304), (0.5, 6, 1536), (0.25, 3, 768)])
def test_uniform_width_counts(width, heads, ffn):
    cfg = SubnetConfig.uniform(BASE, width, 1.0)
    assert set(cfg.heads) == {heads} and set(cfg.ffn) == {ffn}


def test_grid_has_twelve_distinct_configs():
    configs = [c for _, _, c in grid(MINILM)]
    assert len(configs) == 12 and len({c.hash for c in configs}) == 12
    assert configs[0] == SubnetConfig.full(MINILM)


@pytest.mark.parametrize("kwargs,match", [
    (dict(layers=(), heads=(), ffn=()), "empty"),
    (dict(layers=(0, 12), heads=(1, 1), ffn=(1, 1)), "unknown layer 12"),
    (dict(layers=(3, 1), heads=(1, 1), ffn=(1, 1)), "sorted"),
    (dict(layers=(1, 1), heads=(1, 1), ffn=(1, 1)), "duplicates"),
    (dict(layers=(0,), heads=(0,), ffn=(8,)), "heads: layer 0 keeps 0"),
    (dict(layers=(0,), heads=(13,), ffn=(8,)), "heads: layer 0 keeps 13"),
    (dict(layers=(0,), heads=(2,), ffn=(3073,)), "ffn: layer 0 keeps 3073"),
    (dict(layers=(0,), heads=(2,), ffn=(0,)), "ffn"),
])
def test_validate_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SubnetConfig(**kwargs).validate(BASE)


def test_mismatched_lengths_and_types():
    with pytest.raises(ValueError, match="one entry per kept layer"):
        SubnetConfig((0, 1), (2,), (4, 4))
    with pytest.raises(ValueError, match="integers"):
        SubnetConfig((0,), (2.5,), (4,))


def test_json_round_trip_and_hash():
    cfg = SubnetConfig((0, 3, 5), (2, 12, 7), (192, 1536, 768)).validate(MINILM)
    again = SubnetConfig.from_json(cfg.to_json())
    assert again == cfg and again.hash == cfg.hash
    # Lists and tuples give the same config and hash (canonical form).
    assert SubnetConfig.from_dict({"layers": [0, 3, 5], "heads": [2, 12, 7], "ffn": [192, 1536, 768]}).hash == cfg.hash
    assert SubnetConfig((0, 3, 5), (2, 12, 8), (192, 1536, 768)).hash != cfg.hash
    with pytest.raises(ValueError, match="missing"):
        SubnetConfig.from_json('{"layers": [0]}')
    with pytest.raises(ValueError, match="not valid JSON"):
        SubnetConfig.from_json("{oops")


def test_random_is_seeded_and_valid():
    a = [SubnetConfig.random(MINILM, random.Random(7)) for _ in range(1)]
    b = [SubnetConfig.random(MINILM, random.Random(7)) for _ in range(1)]
    assert a == b
    rng = random.Random(3)
    cfgs = [SubnetConfig.random(MINILM, rng) for _ in range(200)]
    for c in cfgs:
        c.validate(MINILM)
        assert all(n % 192 == 0 for n in c.ffn)
    assert len({c.hash for c in cfgs}) > 150  # heterogeneous, not a handful of repeats
    assert any(len(set(c.heads)) > 1 for c in cfgs)
