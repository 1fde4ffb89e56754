"""RoBERTa (Liu et al. 2019): BERT's encoder with positions counted from its padding index, one token type and
a classification head of its own (dense + tanh + out_proj on `<s>`, no pooler)."""
from __future__ import annotations

from elastic.model.backbones.base import Backbone

ROBERTA = Backbone(
    name="roberta",
    display_name="RoBERTa",
    model_types=("roberta",),
    checkpoint_prefixes=("roberta.",),
    ignored_prefixes=("lm_head.",),  # the MLM head of pretraining checkpoints
    position_ids="padding_offset",  # transformers' create_position_ids_from_input_ids
    head="classification_head",
    uses_token_types=False,  # type_vocab_size 1: segment ids are all zero
    hf_model_class="RobertaForSequenceClassification",
    tokenizer_note="byte-level BPE; <s> a </s></s> b </s>, pad id 1 (so positions start at 2), no segment ids.",
)
