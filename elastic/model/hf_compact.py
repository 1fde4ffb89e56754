"""A plain, per-layer-sized BERT for sequence classification: what `extract` produces and export saves.

This file imports only torch and transformers (never our package): `save_pretrained` copies it next
to the weights so that stock transformers can load an exported sub-network with
`AutoModelForSequenceClassification.from_pretrained(dir, trust_remote_code=True)`.

Module names mirror `transformers`' BERT so that state-dict keys are the familiar checkpoint keys.
The functional helpers at the top are shared with the elastic super-network (`elastic/model/modeling.py`) so
that both paths run exactly the same arithmetic. A backbone's differences are two layout keys of the config,
chosen by its adapter (`elastic.model.backbones`; this file cannot import it): `position_ids="padding_offset"`
counts positions from the padding index (transformers' `create_position_ids_from_input_ids`, RoBERTa) and
`head="classification_head"` is RoBERTa's head (dense + tanh + out_proj on `<s>`, no pooler); the encoder is
BERT's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

ACT_FNS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def activation(name: str):
    if name not in ACT_FNS:
        raise ValueError(f"unsupported hidden_act '{name}' (supported: {sorted(ACT_FNS)})")
    return ACT_FNS[name]


POSITION_IDS: tuple[str, ...] = ("absolute", "padding_offset")
HEADS: tuple[str, ...] = ("pooler", "classification_head")
# Exports written before the layout keys existed name only their backbone.
_LEGACY_LAYOUT = {"roberta": ("padding_offset", "classification_head")}


def position_ids(input_ids: torch.Tensor, padding_idx: Optional[int]) -> torch.Tensor:
    """Position ids: 0..S-1 (BERT, `padding_idx` None) or RoBERTa's: non-padding tokens count from
    `padding_idx + 1`, padding tokens keep `padding_idx` (transformers' create_position_ids_from_input_ids)."""
    if padding_idx is None:
        return torch.arange(input_ids.shape[1], device=input_ids.device)  # (S,)
    mask = input_ids.ne(padding_idx).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + padding_idx  # (B, S)


def sequence_logits(x: torch.Tensor, pooler: Optional[nn.Module], dropout: nn.Module,
                    classifier: nn.Module) -> torch.Tensor:
    """Logits from the last hidden states (B, S, H): BERT's pooler (dense + tanh on [CLS]), dropout and
    classifier, or, when `pooler` is None, RoBERTa's head (`classifier` is a `RobertaClassificationHead`)."""
    if pooler is None:
        return classifier(x)
    return classifier(dropout(torch.tanh(pooler.dense(x[:, 0]))))


def extended_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S) 1/0 mask -> (B, 1, 1, S) additive mask, as transformers builds it."""
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


def multi_head_attention(
    x: torch.Tensor, wq: torch.Tensor, bq: torch.Tensor, wk: torch.Tensor, bk: torch.Tensor,
    wv: torch.Tensor, bv: torch.Tensor, n_heads: int, head_dim: int, mask: torch.Tensor | None,
    dropout_p: float, gate: torch.Tensor | None = None, return_probs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention over `n_heads` heads of size `head_dim`.

    Args:
        x: (B, S, H) input. wq/wk/wv: (n_heads * head_dim, H) projections (already sliced).
        mask: (B, 1, 1, S) additive mask or None.
        gate: optional (n_heads,) multiplier of each head's attention probabilities (for importance).
        return_probs: compute attention explicitly and return the probabilities.

    Returns:
        context (B, S, n_heads * head_dim) and probabilities (B, nh, S, S) or None.
    """
    B, S, _ = x.shape
    q = F.linear(x, wq, bq).view(B, S, n_heads, head_dim).transpose(1, 2)  # (B, nh, S, hd)
    k = F.linear(x, wk, bk).view(B, S, n_heads, head_dim).transpose(1, 2)  # (B, nh, S, hd)
    v = F.linear(x, wv, bv).view(B, S, n_heads, head_dim).transpose(1, 2)  # (B, nh, S, hd)
    probs = None
    if return_probs:
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_dim)  # (B, nh, S, S)
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        ctx = torch.matmul(F.dropout(probs, dropout_p), v)  # (B, nh, S, hd)
    else:
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if gate is not None:
        # Gating the context of a head equals gating its attention probabilities (ctx = P @ V).
        ctx = ctx * gate.view(1, n_heads, 1, 1).to(ctx.dtype)
    ctx = ctx.transpose(1, 2).reshape(B, S, n_heads * head_dim)  # (B, S, nh*hd)
    return ctx, probs


class CompactBertConfig(PretrainedConfig):
    """BERT config with per-layer head and FFN counts (`layer_heads`, `layer_ffn`).

    `model_type` is "bert": stock transformers then reads an export's config.json without running its code
    (what `AutoTokenizer.from_pretrained(dir)` does, with no trust_remote_code prompt), while
    `AutoModelForSequenceClassification.from_pretrained(dir, trust_remote_code=True)` follows `auto_map` to
    this class, so the per-layer sizes are honoured.
    """

    model_type = "bert"

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, attention_head_size: int = 64,
                 intermediate_size: int = 3072, layer_heads: Optional[list[int]] = None,
                 layer_ffn: Optional[list[int]] = None, source_layers: Optional[list[int]] = None,
                 hidden_act: str = "gelu", hidden_dropout_prob: float = 0.1,
                 attention_probs_dropout_prob: float = 0.1, max_position_embeddings: int = 512,
                 type_vocab_size: int = 2, layer_norm_eps: float = 1e-12, pad_token_id: int = 0,
                 classifier_dropout: Optional[float] = None, backbone: str = "bert",
                 position_ids: Optional[str] = None, head: Optional[str] = None, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        legacy = _LEGACY_LAYOUT.get(backbone, ("absolute", "pooler"))
        self.backbone = backbone  # the family's name (model cards); the layout keys below decide the arithmetic
        self.position_ids = position_ids or legacy[0]
        self.head = head or legacy[1]
        if self.position_ids not in POSITION_IDS or self.head not in HEADS:
            raise ValueError(f"position_ids must be one of {POSITION_IDS} and head one of {HEADS}, got "
                             f"'{self.position_ids}' and '{self.head}'")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.attention_head_size = attention_head_size
        self.intermediate_size = intermediate_size
        self.layer_heads = list(layer_heads) if layer_heads is not None else [num_attention_heads] * num_hidden_layers
        self.layer_ffn = list(layer_ffn) if layer_ffn is not None else [intermediate_size] * num_hidden_layers
        # Which layers of the super-network these are (for model cards; not used by forward).
        self.source_layers = list(source_layers) if source_layers is not None else list(range(num_hidden_layers))
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.classifier_dropout = classifier_dropout
        if len(self.layer_heads) != num_hidden_layers or len(self.layer_ffn) != num_hidden_layers:
            raise ValueError("layer_heads and layer_ffn need one entry per hidden layer")


@dataclass
class CompactOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    hidden_states: Optional[tuple[torch.Tensor, ...]] = None
    attentions: Optional[tuple[torch.Tensor, ...]] = None


class _Embeddings(nn.Module):
    def __init__(self, c: CompactBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        # RoBERTa counts positions from its padding index (and keeps that row out of training).
        self.padding_idx = c.pad_token_id if c.position_ids == "padding_offset" else None
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size, padding_idx=self.padding_idx)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                words: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embedding output (B, S, H); `words`, when given, is `word_embeddings(input_ids)` computed by the caller."""
        pos = position_ids(input_ids, self.padding_idx)
        words = self.word_embeddings(input_ids) if words is None else words
        x = words + self.token_type_embeddings(token_type_ids) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class _Linear(nn.Module):
    """A `dense` holder so that keys read `...output.dense.weight` as in BERT checkpoints."""

    def __init__(self, n_in: int, n_out: int, with_norm: bool = False, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if with_norm:
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(hidden, inner), nn.Linear(hidden, inner), nn.Linear(hidden, inner)


class _Attention(nn.Module):
    def __init__(self, c: CompactBertConfig, n_heads: int):
        super().__init__()
        inner = n_heads * c.attention_head_size
        self.self = _SelfAttention(c.hidden_size, inner)
        self.output = _Linear(inner, c.hidden_size, with_norm=True, eps=c.layer_norm_eps)


class CompactBertLayer(nn.Module):
    def __init__(self, c: CompactBertConfig, n_heads: int, n_ffn: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, c.attention_head_size
        self.attn_dropout, self.hidden_dropout = c.attention_probs_dropout_prob, c.hidden_dropout_prob
        self.act = activation(c.hidden_act)
        self.attention = _Attention(c, n_heads)
        self.intermediate = _Linear(c.hidden_size, n_ffn)
        self.output = _Linear(n_ffn, c.hidden_size, with_norm=True, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, return_probs: bool = False):
        sa, drop = self.attention.self, self.training
        ctx, probs = multi_head_attention(
            x, sa.query.weight, sa.query.bias, sa.key.weight, sa.key.bias, sa.value.weight, sa.value.bias,
            self.n_heads, self.head_dim, mask, self.attn_dropout if drop else 0.0, return_probs=return_probs)
        ao = self.attention.output
        x = ao.LayerNorm(F.dropout(ao.dense(ctx), self.hidden_dropout, drop) + x)
        h = self.act(self.intermediate.dense(x))
        x = self.output.LayerNorm(F.dropout(self.output.dense(h), self.hidden_dropout, drop) + x)
        return x, probs


class _Encoder(nn.Module):
    def __init__(self, c: CompactBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(CompactBertLayer(c, h, n) for h, n in zip(c.layer_heads, c.layer_ffn))


class _Bert(nn.Module):
    def __init__(self, c: CompactBertConfig):
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)
        self.pooler = _Linear(c.hidden_size, c.hidden_size) if c.head == "pooler" else None


class RobertaClassificationHead(nn.Module):
    """RoBERTa's head, as transformers': dropout, dense + tanh, dropout, out_proj, on the `<s>` token."""

    def __init__(self, c: CompactBertConfig, p: float):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(p)
        self.out_proj = nn.Linear(c.hidden_size, c.num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout(features[:, 0])  # (B, H): the <s> token
        return self.out_proj(self.dropout(torch.tanh(self.dense(x))))


class CompactBertForSequenceClassification(PreTrainedModel):
    """Dense BERT (or RoBERTa) classifier whose layers each have their own head and FFN counts."""

    config_class = CompactBertConfig
    base_model_prefix = "bert"
    _supports_sdpa = True

    def __init__(self, config: CompactBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = _Bert(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = (RobertaClassificationHead(config, p) if config.head == "classification_head"
                           else nn.Linear(config.hidden_size, config.num_labels))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                output_hidden_states: bool = False, output_attentions: bool = False,
                return_dict: Optional[bool] = None, **kwargs) -> CompactOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.bert.embeddings(input_ids, token_type_ids)
        mask = None if attention_mask is None else extended_attention_mask(attention_mask, x.dtype)
        hidden, attns = [x], []
        for layer in self.bert.encoder.layer:
            x, probs = layer(x, mask, return_probs=output_attentions)
            hidden.append(x)
            attns.append(probs)
        logits = sequence_logits(x, self.bert.pooler, self.dropout, self.classifier)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = F.cross_entropy(logits, labels)
        return CompactOutput(loss=loss, logits=logits,
                             hidden_states=tuple(hidden) if output_hidden_states else None,
                             attentions=tuple(attns) if output_attentions else None)
