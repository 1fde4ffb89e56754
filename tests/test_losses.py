"""Distillation losses against hand computation."""
from __future__ import annotations

import math

import pytest
import torch

from elastic.model.config import uniform_layers
from elastic.training.losses import (distillation_loss, hard_label_loss, hidden_mse, matched_teacher_indices,
                            soft_cross_entropy)


def test_soft_cross_entropy_by_hand():
    s = torch.tensor([[1.0, 2.0], [0.5, -0.5]])
    t = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    expected = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        zt = sum(math.exp(v) for v in trow)
        zs = sum(math.exp(v) for v in srow)
        expected += -sum(math.exp(tv) / zt * (sv - math.log(zs)) for sv, tv in zip(srow, trow))
    expected /= 2
    assert soft_cross_entropy(s, t).item() == pytest.approx(expected, abs=1e-6)


def test_soft_cross_entropy_is_minimal_at_teacher_and_does_not_train_teacher():
    t = torch.tensor([[0.3, -1.2, 2.0]], requires_grad=True)
    at_teacher = soft_cross_entropy(t.detach().clone(), t)
    other = soft_cross_entropy(torch.tensor([[2.0, 0.0, 0.3]]), t)
    assert at_teacher < other
    s = torch.zeros(1, 3, requires_grad=True)
    soft_cross_entropy(s, t).backward()
    assert t.grad is None and s.grad is not None


def test_hidden_mse_sums_matched_pairs():
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 3, 4, generator=g) for _ in range(3)]
    teacher = [torch.randn(2, 3, 4, generator=g) for _ in range(5)]
    idx = [0, 2, 4]
    expected = sum(((student[j] - teacher[i]) ** 2).mean() for j, i in enumerate(idx))
    assert hidden_mse(student, teacher, idx).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="teacher indices"):
        hidden_mse(student, teacher, [0, 1])


def test_matched_indices_follow_released_code():
    # kept = [floor(i / d) for i < round(L d)] + [L]
    assert matched_teacher_indices(uniform_layers(12, 0.5), 12) == [0, 2, 4, 6, 8, 10, 12]
    assert matched_teacher_indices(uniform_layers(12, 0.75), 12) == [0, 1, 2, 4, 5, 6, 8, 9, 10, 12]
    assert matched_teacher_indices(uniform_layers(6, 1.0), 6) == list(range(7))
    # per-layer config that skips layer 0: embedding still matches embedding, final matches final
    assert matched_teacher_indices((1, 3), 4) == [0, 3, 4]


def test_distillation_loss_weights_and_regression():
    g = torch.Generator().manual_seed(1)
    sl, tl = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    sh = [torch.randn(4, 5, 8, generator=g) for _ in range(2)]
    th = [torch.randn(4, 5, 8, generator=g) for _ in range(3)]
    idx = [0, 2]
    ce, mse = soft_cross_entropy(sl, tl).item(), hidden_mse(sh, th, idx).item()
    loss, parts = distillation_loss(sl, sh, tl, th, idx, logit_weight=1.0, hidden_weight=0.1, is_regression=False)
    assert loss.item() == pytest.approx(ce + 0.1 * mse, rel=1e-6)
    assert parts == pytest.approx({"logit": ce, "hidden": mse}, rel=1e-6)
    loss_r, parts_r = distillation_loss(sl[:, :1], sh, tl[:, :1], th, idx, logit_weight=1.0, hidden_weight=1.0,
                                        is_regression=True)
    assert loss_r.item() == pytest.approx(mse, rel=1e-6) and parts_r["logit"] == 0.0


def test_hard_label_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.e))) / 2
    assert hard_label_loss(logits, labels, False).item() == pytest.approx(expected, abs=1e-6)
    reg = hard_label_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0]), True)
    assert reg.item() == pytest.approx((1 + 4) / 2)
