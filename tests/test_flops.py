"""Analytic MACs and parameter counts against fvcore and the extracted model (tiny random BERT)."""
from __future__ import annotations

import random

import pytest
import torch

from elastic.model.config import SubnetConfig, grid
from elastic.model.extract import extract
from elastic.model.modeling import ElasticBertForSequenceClassification
from profiling.flops import analytic_macs, fvcore_macs, param_count
from tests.conftest import TINY

ARCH = TINY
SEQ = 16


@pytest.fixture(scope="module")
def model() -> ElasticBertForSequenceClassification:
    torch.manual_seed(0)
    return ElasticBertForSequenceClassification(ARCH, 2).eval()


def _configs() -> list[SubnetConfig]:
    rng = random.Random(1)
    return [c for _, _, c in grid(ARCH)] + [SubnetConfig.random(ARCH, rng) for _ in range(20)]


def test_analytic_matches_fvcore_with_sdpa_handle(model):
    for cfg in _configs():
        small = extract(model, cfg)
        ours, theirs = analytic_macs(ARCH, cfg, SEQ), fvcore_macs(small, SEQ)
        assert abs(ours - theirs) <= 0.01 * theirs, (cfg.describe(), ours, theirs)


def test_analytic_matches_fvcore_at_batch_and_labels():
    torch.manual_seed(0)
    m3 = ElasticBertForSequenceClassification(ARCH, 3).eval()
    cfg = SubnetConfig(layers=(0, 3), heads=(1, 4), ffn=(8, 64))
    assert analytic_macs(ARCH, cfg, 10, batch=3, num_labels=3) == fvcore_macs(extract(m3, cfg), 10, batch=3)


def test_fvcore_without_handle_undercounts_by_exactly_attention(model):
    cfg = SubnetConfig.full(ARCH)
    small = extract(model, cfg)
    with_h, without = fvcore_macs(small, SEQ), fvcore_macs(small, SEQ, sdpa_handle=False)
    attention = sum(2 * h * SEQ * SEQ * ARCH.head_dim for h in cfg.heads)
    assert without < with_h
    assert with_h - without == attention
    # The analytic count is NOT met without the handle: the handle is what makes them agree.
    assert abs(analytic_macs(ARCH, cfg, SEQ) - without) > 0.05 * without


def test_param_count_equals_extracted_numel(model):
    for cfg in _configs():
        small = extract(model, cfg)
        assert param_count(ARCH, cfg, 2) == sum(p.numel() for p in small.parameters()), cfg.describe()


def test_macs_grow_with_size_and_seq():
    full, half = SubnetConfig.full(ARCH), SubnetConfig.uniform(ARCH, 0.5, 0.5)
    assert analytic_macs(ARCH, half, SEQ) < analytic_macs(ARCH, full, SEQ)
    assert analytic_macs(ARCH, full, 2 * SEQ) > 2 * analytic_macs(ARCH, full, SEQ) - 1  # attention is quadratic


@pytest.mark.parametrize("kwargs, word", [({"seq_len": 0}, "seq_len"), ({"seq_len": 4, "batch": 0}, "batch")])
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        analytic_macs(ARCH, SubnetConfig.full(ARCH), **kwargs)


def test_roberta_costs_equal_berts_and_fvcore():
    """RoBERTa's head (dense + out_proj on <s>) costs what BERT's pooler + classifier cost; fvcore agrees."""
    from tests.conftest import TINY_ROBERTA, seeded_tiny
    roberta = seeded_tiny(TINY_ROBERTA, 3)
    for cfg in (SubnetConfig.full(TINY_ROBERTA), SubnetConfig(layers=(0, 3), heads=(1, 4), ffn=(8, 64))):
        small = extract(roberta, cfg)
        assert analytic_macs(TINY_ROBERTA, cfg, 10, batch=3, num_labels=3) == fvcore_macs(small, 10, batch=3)
        assert param_count(TINY_ROBERTA, cfg, 3) == sum(p.numel() for p in small.parameters())
