"""The elastic BERT super-network: full-size weights, sliced at forward time by a `SubnetConfig`.

Stateless: `model(input_ids, attention_mask, subnet=cfg)`; no width is ever stored on the model.
Modules (and so state-dict keys) are the same as in `transformers`' BertForSequenceClassification
(RoBERTa: `bert.*` holds what transformers calls `roberta.*`; the head is `classifier.dense/out_proj`); what
differs per family comes from its adapter (`elastic.model.backbones`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from elastic.model.backbones import backbone_for
from elastic.model.config import BertArch, SubnetConfig
from elastic.model.hf_compact import (CompactBertConfig, CompactBertForSequenceClassification,
                                extended_attention_mask, multi_head_attention, sequence_logits)


@dataclass
class ElasticOutput:
    """Logits and, on request, hidden states (embedding output first, then each kept layer) and
    attention probabilities (one (B, h, S, S) tensor per kept layer)."""

    logits: torch.Tensor
    hidden_states: Optional[tuple[torch.Tensor, ...]] = None
    attentions: Optional[tuple[torch.Tensor, ...]] = None


def config_from_arch(arch: BertArch, num_labels: int, *, hidden_dropout_prob: float = 0.1,
                     attention_probs_dropout_prob: float = 0.1) -> CompactBertConfig:
    """Full-size `CompactBertConfig` for an architecture (every layer at full width)."""
    return CompactBertConfig(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads, attention_head_size=arch.head_dim,
        intermediate_size=arch.intermediate_size, hidden_act=arch.hidden_act,
        hidden_dropout_prob=hidden_dropout_prob, attention_probs_dropout_prob=attention_probs_dropout_prob,
        max_position_embeddings=arch.max_position_embeddings, type_vocab_size=arch.type_vocab_size,
        layer_norm_eps=arch.layer_norm_eps, pad_token_id=arch.pad_token_id, num_labels=num_labels,
        **backbone_for(arch.model_type).compact_config())


def _rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """The first `n` rows of a weight or bias. The whole tensor is returned as is, not as a slice: the backward
    of a slice allocates a full-size zero gradient and copies into it, wasted work at full width."""
    return t if n == t.shape[0] else t[:n]


def _cols(t: torch.Tensor, n: int) -> torch.Tensor:
    """The first `n` columns of a weight (the whole tensor when `n` is its width; see `_rows`)."""
    return t if n == t.shape[1] else t[:, :n]


class ElasticBertForSequenceClassification(nn.Module):
    """BERT (or RoBERTa) classifier whose layers, heads and FFN neurons can be cut per forward call.

    Args:
        arch: the full architecture.
        num_labels: classifier outputs (1 = regression).
        hidden_dropout_prob / attention_probs_dropout_prob: as in BERT.
    """

    def __init__(self, arch: BertArch, num_labels: int, *, hidden_dropout_prob: float = 0.1,
                 attention_probs_dropout_prob: float = 0.1):
        super().__init__()
        self.arch, self.num_labels = arch, num_labels
        cfg = config_from_arch(arch, num_labels, hidden_dropout_prob=hidden_dropout_prob,
                               attention_probs_dropout_prob=attention_probs_dropout_prob)
        # Borrow the full-size modules of the compact model: same keys, same initialisation.
        full = CompactBertForSequenceClassification(cfg)
        self.bert, self.dropout, self.classifier = full.bert, full.dropout, full.classifier
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, subnet: Optional[SubnetConfig] = None,
                *, output_hidden_states: bool = False, output_attentions: bool = False,
                head_gates: Optional[Sequence[torch.Tensor]] = None,
                word_embeds: Optional[torch.Tensor] = None) -> ElasticOutput:
        """Run the sub-network `subnet` (the full network when None).

        Args:
            input_ids, attention_mask, token_type_ids: (B, S) LongTensors.
            subnet: which layers/heads/neurons run; validated against `self.arch`.
            output_hidden_states: return the embedding output and every kept layer's output.
            output_attentions: return attention probabilities (explicit attention instead of SDPA).
            head_gates: one (num_heads,) tensor per KEPT layer multiplying each head's attention
                probabilities (gradients w.r.t. them give head importance).
            word_embeds: (B, S, H) word-embedding lookup of `input_ids`, when the caller shares one lookup
                between several sub-networks (see `elastic.training.train.SharedWordLookup`).

        Returns:
            ElasticOutput.
        """
        cfg = subnet if subnet is not None else SubnetConfig.full(self.arch)
        if subnet is not None:
            cfg.validate(self.arch)
        x, mask = self.embed(input_ids, attention_mask, token_type_ids, word_embeds)
        hidden, attns = [x], []
        for j, (li, h, n) in enumerate(zip(cfg.layers, cfg.heads, cfg.ffn)):
            gate = None if head_gates is None else head_gates[j][:h]
            x, probs = self.run_layer(x, mask, li, h, n, gate=gate, output_attentions=output_attentions)
            hidden.append(x)
            attns.append(probs)
        return ElasticOutput(logits=self.logits(x),
                             hidden_states=tuple(hidden) if output_hidden_states else None,
                             attentions=tuple(attns) if output_attentions else None)

    def embed(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
              token_type_ids: Optional[torch.Tensor] = None,
              word_embeds: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The embedding output (B, S, H), the same for every sub-network, and the additive attention mask."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.bert.embeddings(input_ids, token_type_ids, word_embeds)
        mask = None if attention_mask is None else extended_attention_mask(attention_mask, x.dtype)
        return x, mask

    def run_layer(self, x: torch.Tensor, mask: Optional[torch.Tensor], li: int, h: int, n: int, *,
                  gate: Optional[torch.Tensor] = None,
                  output_attentions: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Layer `li` with its first `h` heads and `n` FFN neurons on hidden states `x`; (output, attention
        probabilities or None)."""
        layer = self.bert.encoder.layer[li]
        sa, ao = layer.attention.self, layer.attention.output
        hd, train = self.arch.head_dim, self.training
        inner = h * hd
        # Q/K/V keep their first `h` heads (rows); the output projection the matching columns.
        ctx, probs = multi_head_attention(
            x, _rows(sa.query.weight, inner), _rows(sa.query.bias, inner), _rows(sa.key.weight, inner),
            _rows(sa.key.bias, inner), _rows(sa.value.weight, inner), _rows(sa.value.bias, inner), h, hd,
            mask, self.attention_probs_dropout_prob if train else 0.0, gate=gate, return_probs=output_attentions)
        a = F.linear(ctx, _cols(ao.dense.weight, inner), ao.dense.bias)
        x = ao.LayerNorm(F.dropout(a, self.hidden_dropout_prob, train) + x)
        # FFN-in keeps its first `n` rows, FFN-out the matching columns.
        mid = layer.act(F.linear(x, _rows(layer.intermediate.dense.weight, n), _rows(layer.intermediate.dense.bias, n)))
        o = F.linear(mid, _cols(layer.output.dense.weight, n), layer.output.dense.bias)
        return layer.output.LayerNorm(F.dropout(o, self.hidden_dropout_prob, train) + x), probs

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier head on the last kept layer's hidden states."""
        return sequence_logits(x, self.bert.pooler, self.dropout, self.classifier)
