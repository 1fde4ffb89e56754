"""Compute cost of a sub-network: analytic multiply-adds, fvcore's count, and parameter counts.

Unit: MACs (multiply-accumulates). fvcore calls these "flops" (it counts one fused multiply-add as
one flop); a FLOP count in the usual sense is 2x these numbers. The analytic count mirrors exactly
what fvcore counts on the extracted model so that the two agree:

- every linear layer: B * S_in * in * out (Q, K, V, attention output, FFN in/out; pooler and
  classifier run on the [CLS] row only, so S_in = 1 there);
- attention: Q K^T and P V, each B * h * S * S * head_dim;
- LayerNorm: fvcore's norm handle counts 5 per element (affine) -> 5 * B * S * hidden per LayerNorm;
- embedding lookups, softmax, GELU, tanh, residual adds: 0 (fvcore ignores them).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from elastic.model.config import BertArch, SubnetConfig

# fvcore's norm_flop_counter: "5 is just a rough estimate" per element for an affine norm.
LAYERNORM_MACS_PER_ELEMENT = 5


def analytic_macs(arch: BertArch, cfg: SubnetConfig, seq_len: int, *, batch: int = 1,
                  num_labels: int = 2) -> int:
    """Multiply-adds of one forward pass of sub-network `cfg` (embeddings and classifier included).

    Args:
        arch: the full architecture (hidden size, head size).
        cfg: the sub-network; validated against `arch`.
        seq_len: tokens per sequence.
        batch: sequences per forward pass.
        num_labels: classifier outputs.

    Returns:
        MACs (int), equal to what fvcore (with an SDPA handle) counts on `extract(model, cfg)`.

    Raises:
        ValueError: bad seq_len/batch/num_labels, or a cfg invalid for `arch`.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    cfg.validate(arch)
    H, d, tokens = arch.hidden_size, arch.head_dim, batch * seq_len
    ln = LAYERNORM_MACS_PER_ELEMENT * tokens * H
    total = ln  # embedding LayerNorm; the lookups themselves are free
    for h, n in zip(cfg.heads, cfg.ffn):
        inner = h * d
        total += 3 * tokens * H * inner           # Q, K, V projections
        total += 2 * batch * h * seq_len * seq_len * d  # Q K^T and P V
        total += tokens * inner * H               # attention output projection
        total += 2 * tokens * H * n               # FFN in and out
        total += 2 * ln                           # two LayerNorms
    total += batch * H * H + batch * H * num_labels  # pooler and classifier on [CLS]
    return int(total)


def param_count(arch: BertArch, cfg: SubnetConfig, num_labels: int = 2) -> int:
    """Parameters of the extracted sub-network (`sum(p.numel() for p in extract(model, cfg).parameters())`).

    Args:
        arch: the full architecture.
        cfg: the sub-network; validated against `arch`.
        num_labels: classifier outputs.

    Returns:
        Parameter count (int).
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    cfg.validate(arch)
    H, d = arch.hidden_size, arch.head_dim
    total = (arch.vocab_size + arch.max_position_embeddings + arch.type_vocab_size) * H + 2 * H
    for h, n in zip(cfg.heads, cfg.ffn):
        inner = h * d
        total += 3 * (H * inner + inner)   # Q, K, V
        total += inner * H + H + 2 * H     # attention output + its LayerNorm
        total += H * n + n                 # FFN in
        total += n * H + H + 2 * H         # FFN out + its LayerNorm
    total += H * H + H + H * num_labels + num_labels  # pooler, classifier
    return int(total)


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for `aten::scaled_dot_product_attention`: Q K^T plus P V, in MACs.

    q: (..., S_q, d), k: (..., S_k, d), v: (..., S_k, d_v).
    """
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    batch_heads = 1
    for dim in q[:-2]:
        batch_heads *= dim
    s_q, d, s_k, d_v = q[-2], q[-1], k[-2], v[-1]
    return batch_heads * s_q * s_k * d + batch_heads * s_q * s_k * d_v


class _LogitsOnly(nn.Module):
    """Tracing wrapper: fvcore's jit trace wants tensors out, not a ModelOutput."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids, attention_mask)
        return out.logits


def fvcore_macs(model: nn.Module, seq_len: int, batch: int = 1, *, sdpa_handle: bool = True) -> int:
    """fvcore's `FlopCountAnalysis` total (MACs) of one forward pass with random tokens.

    Args:
        model: an extracted `CompactBertForSequenceClassification` (or the elastic model at full size).
        seq_len: tokens per sequence.
        batch: sequences.
        sdpa_handle: register the attention handle; without it fvcore counts SDPA as 0 (undercounts).

    Returns:
        MACs (int).
    """
    from fvcore.nn import FlopCountAnalysis

    if seq_len < 1 or batch < 1:
        raise ValueError(f"seq_len and batch must be >= 1, got seq_len={seq_len}, batch={batch}")
    vocab = model.config.vocab_size if hasattr(model, "config") else model.arch.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq_len), generator=gen)
    mask = torch.ones_like(ids)
    was_training = model.training
    model.eval()
    try:
        analysis = FlopCountAnalysis(_LogitsOnly(model), (ids, mask))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        if sdpa_handle:
            analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
        with torch.no_grad():
            return int(analysis.total())
    finally:
        model.train(was_training)
