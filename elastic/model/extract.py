"""Physical extraction: copy a sub-network's slices into a plain, smaller dense model."""
from __future__ import annotations

import torch

from elastic.model.config import SubnetConfig
from elastic.model.hf_compact import CompactBertConfig, CompactBertForSequenceClassification
from elastic.model.modeling import ElasticBertForSequenceClassification, config_from_arch


def compact_config(model: ElasticBertForSequenceClassification, cfg: SubnetConfig) -> CompactBertConfig:
    """The small model's own config: only kept layers, with their head and FFN counts."""
    full = config_from_arch(model.arch, model.num_labels, hidden_dropout_prob=model.hidden_dropout_prob,
                            attention_probs_dropout_prob=model.attention_probs_dropout_prob)
    d = full.to_dict()
    d.update(num_hidden_layers=len(cfg.layers), layer_heads=list(cfg.heads), layer_ffn=list(cfg.ffn),
             source_layers=list(cfg.layers))
    for k in ("model_type", "transformers_version", "architectures", "auto_map"):
        d.pop(k, None)
    return CompactBertConfig(**d)


@torch.no_grad()
def extract(model: ElasticBertForSequenceClassification, cfg: SubnetConfig) -> CompactBertForSequenceClassification:
    """A standalone dense model computing exactly `model(..., subnet=cfg)`.

    Args:
        model: the elastic super-network (rewired, so prefixes hold the most important units).
        cfg: the sub-network to copy out.

    Returns:
        A `CompactBertForSequenceClassification` with only the kept layers, rows and columns; it holds
        no reference to `model` (every tensor is a copy). Same train/eval mode as `model`.
    """
    cfg.validate(model.arch)
    small = CompactBertForSequenceClassification(compact_config(model, cfg))
    hd = model.arch.head_dim
    src, dst = model.bert, small.bert
    dst.embeddings.load_state_dict(src.embeddings.state_dict())
    if src.pooler is not None:  # RoBERTa has none: its head is all in `classifier`
        dst.pooler.load_state_dict(src.pooler.state_dict())
    small.classifier.load_state_dict(model.classifier.state_dict())
    for j, (li, h, n) in enumerate(zip(cfg.layers, cfg.heads, cfg.ffn)):
        s, d = src.encoder.layer[li], dst.encoder.layer[j]
        inner = h * hd
        for name in ("query", "key", "value"):
            getattr(d.attention.self, name).weight.copy_(getattr(s.attention.self, name).weight[:inner])
            getattr(d.attention.self, name).bias.copy_(getattr(s.attention.self, name).bias[:inner])
        d.attention.output.dense.weight.copy_(s.attention.output.dense.weight[:, :inner])
        d.attention.output.dense.bias.copy_(s.attention.output.dense.bias)
        d.attention.output.LayerNorm.load_state_dict(s.attention.output.LayerNorm.state_dict())
        d.intermediate.dense.weight.copy_(s.intermediate.dense.weight[:n])
        d.intermediate.dense.bias.copy_(s.intermediate.dense.bias[:n])
        d.output.dense.weight.copy_(s.output.dense.weight[:, :n])
        d.output.dense.bias.copy_(s.output.dense.bias)
        d.output.LayerNorm.load_state_dict(s.output.LayerNorm.state_dict())
    small.train(model.training)
    return small
