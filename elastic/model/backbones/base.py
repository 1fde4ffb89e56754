"""What differs between the encoder families DynaBERT Explorer loads: one `Backbone` adapter per family.

The elastic encoder is the same for every backbone (BERT's post-LayerNorm transformer); an adapter says how a
family's Hugging Face checkpoints and configs map onto it: which `model_type` names it accepts, the checkpoint's
key prefix and the pretraining heads to drop, how position ids are counted, whether token types carry
information, which classification head it has, and what the compact export records. This file imports nothing
of ours (the registry in `elastic.model.backbones` and `elastic.model.config` both import it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

# Layouts understood by the compact model (`elastic.model.hf_compact`): a new backbone picks among them.
PositionIds = Literal["absolute", "padding_offset"]  # 0..S-1, or counted from padding_idx + 1 (RoBERTa)
HeadLayout = Literal["pooler", "classification_head"]  # pooler + linear, or dense + tanh + out_proj on token 0
# Checkpoint prefixes every family may carry: sentence-transformers' wrappers.
_COMMON_PREFIXES: tuple[str, ...] = ("model.", "0.auto_model.")
# Buffers that are not weights.
_COMMON_IGNORED = re.compile(r"^embeddings\.(position_ids|token_type_ids)$")


@dataclass(frozen=True)
class Backbone:
    """One encoder family.

    Attributes:
        name: the canonical `model_type` (stored in `BertArch.model_type`, the export's `backbone`, card tags).
        display_name: as written in prose (model cards, messages).
        model_types: HF `config.json` `model_type` values loaded by this adapter.
        checkpoint_prefixes: the encoder's prefix in HF checkpoints (`bert.`, `roberta.`), stripped on load.
        ignored_prefixes: pretraining heads dropped on load (MLM/NSP).
        position_ids: how position ids are counted (`absolute`, or RoBERTa's `padding_offset`).
        head: the classification head's layout (`pooler`: BERT's pooler + linear classifier;
            `classification_head`: RoBERTa's dense + tanh + out_proj on the first token, no pooler).
        uses_token_types: False when the family has one token type (RoBERTa): segment ids are all zero.
        hf_model_class: transformers' sequence-classification class of the family (parity tests, docs).
        ort_model_type: onnxruntime's transformer optimizer model type of the compact export's graph.
        tokenizer_note: what to know about the family's tokenizer.
    """

    name: str
    display_name: str
    model_types: tuple[str, ...]
    checkpoint_prefixes: tuple[str, ...]
    ignored_prefixes: tuple[str, ...]
    position_ids: PositionIds
    head: HeadLayout
    uses_token_types: bool
    hf_model_class: str
    ort_model_type: str = "bert"
    tokenizer_note: str = ""

    def position_offset(self, pad_token_id: int) -> int:
        """Rows of the position table before the first real position (RoBERTa: pad + 1)."""
        return pad_token_id + 1 if self.position_ids == "padding_offset" else 0

    def max_seq_len(self, max_position_embeddings: int, pad_token_id: int) -> int:
        """Longest input the position table allows."""
        return max_position_embeddings - self.position_offset(pad_token_id)

    def checkpoint_key(self, hf_key: str) -> Optional[str]:
        """An HF checkpoint key in our names (the encoder without its prefix, `classifier.*` as is), or None for a
        key we knowingly drop (pretraining heads, buffers)."""
        key = hf_key
        for p in self.checkpoint_prefixes + _COMMON_PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                break
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if key.startswith(self.ignored_prefixes) or _COMMON_IGNORED.match(key):
            return None
        return key

    def compact_config(self) -> dict[str, Any]:
        """The keys of `CompactBertConfig` that carry this family's layout (written into an export's config.json)."""
        return {"backbone": self.name, "position_ids": self.position_ids, "head": self.head}
