"""DynaBERT distillation losses as pure functions (no state, no module, no global setting).

Stage 1 (DynaBERT_W): 1.0 * soft-CE(student logits, teacher logits) + 0.1 * sum of hidden MSEs.
Stage 2 (DynaBERT):  1.0 * soft-CE + 1.0 * sum of hidden MSEs over the matched layers.
Regression tasks drop the logit term. No temperature; MSE over all positions (padding included),
as the released code does.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """-sum_k softmax(teacher)_k * log_softmax(student)_k, averaged over the batch.

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K); treated as a constant (detached).

    Returns:
        Scalar tensor.
    """
    target = teacher_logits.detach().softmax(dim=-1)
    return (-(target * student_logits.log_softmax(dim=-1)).sum(dim=-1)).mean()


def matched_teacher_indices(layers: Sequence[int], num_layers: int) -> list[int]:
    """Teacher hidden-state index matched to each student hidden state (embedding output is index 0).

    The released code keeps layers `floor(i / d)` and matches student hidden j to teacher hidden
    kept[j] with kept = layers + [L]: embedding <-> embedding, final <-> final, and the output of the
    student's j-th layer <-> the teacher state just before the next kept layer. For any per-layer
    config the same rule reads [0] + layers[1:] + [L].

    Args:
        layers: kept layer indices (sorted).
        num_layers: L, layers of the teacher.

    Returns:
        len(layers) + 1 teacher indices into a hidden-state tuple of length L + 1.
    """
    return [0] + [int(i) for i in layers[1:]] + [num_layers]


def hidden_mse(student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
               teacher_indices: Sequence[int]) -> torch.Tensor:
    """Sum over matched pairs of MSE(student hidden j, teacher hidden teacher_indices[j]).

    Args:
        student_hidden: the student's hidden states, embedding output first, each (B, S, H).
        teacher_hidden: the teacher's hidden states, embedding output first; treated as constants.
        teacher_indices: one teacher index per student hidden state.

    Returns:
        Scalar tensor (each MSE is a mean over all B*S*H elements).
    """
    if len(student_hidden) != len(teacher_indices):
        raise ValueError(f"{len(student_hidden)} student hidden states but {len(teacher_indices)} teacher indices")
    total = student_hidden[0].new_zeros(())
    for s, ti in zip(student_hidden, teacher_indices):
        total = total + F.mse_loss(s, teacher_hidden[ti].detach())
    return total


def hard_label_loss(logits: torch.Tensor, labels: torch.Tensor, is_regression: bool) -> torch.Tensor:
    """Cross-entropy on class ids, or MSE on scores for regression (the teacher and stage-3 loss).

    Args:
        logits: (B, K), or (B, 1) for regression.
        labels: (B,) long ids or float scores.
        is_regression: pick MSE instead of cross-entropy.

    Returns:
        Scalar tensor.
    """
    if is_regression:
        return F.mse_loss(logits.view(-1), labels.float().view(-1))
    return F.cross_entropy(logits, labels)


def distillation_loss(student_logits: torch.Tensor, student_hidden: Sequence[torch.Tensor],
                      teacher_logits: torch.Tensor, teacher_hidden: Sequence[torch.Tensor],
                      teacher_indices: Sequence[int], *, logit_weight: float, hidden_weight: float,
                      is_regression: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """The DynaBERT stage loss: logit_weight * soft-CE + hidden_weight * hidden MSE.

    Args:
        student_logits, teacher_logits: (B, K).
        student_hidden, teacher_hidden: hidden-state tuples, embedding output first.
        teacher_indices: `matched_teacher_indices` of the student's kept layers.
        logit_weight / hidden_weight: 1.0 / 0.1 in stage 1, 1.0 / 1.0 in stage 2.
        is_regression: regression tasks drop the logit term, as the released code does.

    Returns:
        (loss tensor, {"logit": float, "hidden": float} for logging).
    """
    rep = hidden_mse(student_hidden, teacher_hidden, teacher_indices)
    if is_regression:
        logit = student_logits.new_zeros(())
    else:
        logit = soft_cross_entropy(student_logits, teacher_logits)
    loss = logit_weight * logit + hidden_weight * rep
    return loss, {"logit": float(logit.detach()), "hidden": float(rep.detach())}
