"""Importance and rewiring on the tiny model: function unchanged, prefixes = best units, zeroed head last."""
from __future__ import annotations

import copy

import pytest
import torch

from elastic.model.config import SubnetConfig, grid
from elastic.training.losses import hard_label_loss
from elastic.training.rewire import compute_importance, importance_record, rewire
from tests.conftest import TINY


def _batches(n_batches: int = 3, seed: int = 5, labels: int = 3):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(1, TINY.vocab_size, (6, 10), generator=g)
        mask = torch.ones_like(ids)
        mask[0, 7:] = 0
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
                    "labels": torch.randint(0, labels, (6,), generator=g)})
    return out


def test_rewiring_keeps_full_logits_and_prefixes_hold_best_units(tiny_model, tiny_batch):
    original = copy.deepcopy(tiny_model)
    g = torch.Generator().manual_seed(3)
    head = torch.rand(TINY.num_layers, TINY.num_heads, generator=g)
    ffn = torch.rand(TINY.num_layers, TINY.intermediate_size, generator=g)
    before = tiny_model(**tiny_batch).logits
    head_order, ffn_order = rewire(tiny_model, head, ffn)
    after = tiny_model(**tiny_batch).logits
    assert (before - after).abs().max().item() < 1e-5
    hd = TINY.head_dim
    for _, _, cfg in grid(TINY):
        for li, h, n in zip(cfg.layers, cfg.heads, cfg.ffn):
            best_heads = torch.argsort(head[li], descending=True)[:h]
            best_ffn = torch.argsort(ffn[li], descending=True)[:n]
            assert head_order[li][:h] == best_heads.tolist()
            rows = torch.cat([torch.arange(b * hd, (b + 1) * hd) for b in best_heads])
            src, dst = original.bert.encoder.layer[li], tiny_model.bert.encoder.layer[li]
            for name in ("query", "key", "value"):
                assert torch.equal(getattr(dst.attention.self, name).weight[:h * hd],
                                   getattr(src.attention.self, name).weight[rows])
            assert torch.equal(dst.attention.output.dense.weight[:, :h * hd], src.attention.output.dense.weight[:, rows])
            assert torch.equal(dst.intermediate.dense.weight[:n], src.intermediate.dense.weight[best_ffn])
            assert torch.equal(dst.intermediate.dense.bias[:n], src.intermediate.dense.bias[best_ffn])
            assert torch.equal(dst.output.dense.weight[:, :n], src.output.dense.weight[:, best_ffn])
    assert ffn_order[0] == torch.argsort(ffn[0], descending=True).tolist()


def test_zeroed_head_has_smallest_importance(tiny_model):
    layer, dead = 2, 1
    hd = TINY.head_dim
    with torch.no_grad():
        tiny_model.bert.encoder.layer[layer].attention.output.dense.weight[:, dead * hd:(dead + 1) * hd] = 0
    head, ffn, n = compute_importance(tiny_model, _batches(), is_regression=False)
    assert n == 18
    assert head[layer].argmin().item() == dead
    assert head[layer, dead].item() < 1e-8 < head[layer].max().item()
    assert all(p.grad is None for p in tiny_model.parameters())


def test_ffn_importance_is_the_official_formula(tiny_model):
    batch = _batches(1)[0]
    _, ffn, _ = compute_importance(tiny_model, [batch], is_regression=False)
    model = copy.deepcopy(tiny_model).eval()
    hard_label_loss(model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits,
                    batch["labels"], False).backward()
    layer = model.bert.encoder.layer[1]
    w1, b1, w2 = layer.intermediate.dense.weight, layer.intermediate.dense.bias, layer.output.dense.weight
    j = 5
    by_hand = (abs(sum(w1[j, k] * w1.grad[j, k] for k in range(TINY.hidden_size)) + b1[j] * b1.grad[j])
               + abs(sum(w2[k, j] * w2.grad[k, j] for k in range(TINY.hidden_size))))
    assert ffn[1, j].item() == pytest.approx(by_hand.item(), rel=1e-4, abs=1e-9)


def test_rewire_rejects_wrong_shapes_and_records_json(tiny_model):
    with pytest.raises(ValueError, match="head importance"):
        rewire(tiny_model, torch.zeros(3, 4), torch.zeros(4, 64))
    head, ffn = torch.rand(4, 4), torch.rand(4, 64)
    ho, fo = rewire(tiny_model, head, ffn)
    rec = importance_record("dev", 10, head, ffn, ho, fo)
    assert len(rec["head"]) == 4 and len(rec["ffn"][0]) == 64 and rec["head_order"] == ho
    assert sorted(rec["ffn_order"][3]) == list(range(64))
