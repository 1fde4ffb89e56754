"""BERT (Devlin et al. 2019): the reference family; the elastic model's module names are its checkpoint keys."""
from __future__ import annotations

from elastic.model.backbones.base import Backbone

BERT = Backbone(
    name="bert",
    display_name="BERT",
    model_types=("bert",),
    checkpoint_prefixes=("bert.",),
    ignored_prefixes=("cls.",),  # MLM + NSP heads of pretraining checkpoints
    position_ids="absolute",
    head="pooler",
    uses_token_types=True,
    hf_model_class="BertForSequenceClassification",
    tokenizer_note="WordPiece; [CLS] a [SEP] b [SEP], segment ids 0/1 tell the two texts apart.",
)
