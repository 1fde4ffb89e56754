"""The backbone registry (`elastic.model.backbones`): each adapter's parity with transformers on a tiny random config,
the one message for other model types, and a new family added by registration alone."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers

from elastic.model.backbones import Backbone, backbone_for, register, supported, unregister
from elastic.model.config import BertArch, SubnetConfig
from elastic.model.extract import extract
from elastic.model.hf_compact import CompactBertConfig
from elastic.model.modeling import ElasticBertForSequenceClassification, config_from_arch
from elastic.model.weights import map_hf_state_dict

from tests.conftest import TINY_BY_BACKBONE, batch_for


def test_registry_lists_bert_and_roberta():
    assert supported()[:2] == ("bert", "roberta")
    assert backbone_for({}).name == "bert"  # a config.json without model_type is BERT's
    assert backbone_for(TINY_BY_BACKBONE["roberta"]).name == "roberta"


def _reference(adapter: Backbone, arch: BertArch, num_labels: int = 3):
    """transformers' own classifier of the family on `arch`, seeded, with non-trivial LayerNorm/bias values."""
    cls = getattr(transformers, adapter.hf_model_class)
    hc = cls.config_class(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads, intermediate_size=arch.intermediate_size, num_labels=num_labels,
        max_position_embeddings=arch.max_position_embeddings, type_vocab_size=arch.type_vocab_size,
        layer_norm_eps=arch.layer_norm_eps, pad_token_id=arch.pad_token_id, hidden_act=arch.hidden_act)
    torch.manual_seed(0)
    hf = cls(hc).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return hf


@pytest.mark.parametrize("name", supported())
def test_each_adapter_matches_transformers(name):
    """Loaded by its key map, the elastic model and its extracted full network give transformers' logits and hidden
    states (a padded batch, so RoBERTa's position ids count)."""
    adapter = backbone_for(name)
    assert name in TINY_BY_BACKBONE, f"a new backbone needs its tiny architecture in tests/conftest.py ({name})"
    arch = TINY_BY_BACKBONE[name]
    hf = _reference(adapter, arch)
    assert BertArch.from_hf_config(hf.config) == arch
    ours = ElasticBertForSequenceClassification(arch, 3).eval()
    state, missing = map_hf_state_dict(hf.state_dict(), ours)
    assert missing == []
    ours.load_state_dict(state, strict=True)
    batch = batch_for(arch)
    if not adapter.uses_token_types:
        assert int(batch["token_type_ids"].max()) == 0
    with torch.no_grad():
        ref = hf(**batch, output_hidden_states=True)
        out = ours(**batch, output_hidden_states=True)
        small = extract(ours, SubnetConfig.full(arch)).eval()(**batch)
    assert (ref.logits - out.logits).abs().max() < 1e-5
    assert (ref.logits - small.logits).abs().max() < 1e-5
    for a, b in zip(ref.hidden_states, out.hidden_states):
        assert (a - b).abs().max() < 1e-5
    assert arch.max_seq_len == arch.max_position_embeddings - adapter.position_offset(arch.pad_token_id)


@pytest.mark.parametrize("model_type", ["gpt2", "distilbert", "t5"])
def test_other_model_types_get_one_message_naming_the_supported(model_type):
    with pytest.raises(ValueError, match=f"model_type '{model_type}' is not supported: DynaBERT Explorer loads "
                                         "bert and roberta checkpoints"):
        BertArch.from_hf_config({"model_type": model_type, "num_hidden_layers": 2})


def test_checkpoint_keys_follow_the_adapter():
    bert, roberta = backbone_for("bert"), backbone_for("roberta")
    assert bert.checkpoint_key("bert.encoder.layer.0.output.LayerNorm.gamma") == "encoder.layer.0.output.LayerNorm.weight"
    assert bert.checkpoint_key("0.auto_model.embeddings.word_embeddings.weight") == "embeddings.word_embeddings.weight"
    assert bert.checkpoint_key("cls.predictions.bias") is None
    assert bert.checkpoint_key("bert.embeddings.position_ids") is None
    assert roberta.checkpoint_key("roberta.pooler.dense.weight") == "pooler.dense.weight"
    assert roberta.checkpoint_key("lm_head.dense.weight") is None
    assert roberta.checkpoint_key("classifier.out_proj.weight") == "classifier.out_proj.weight"


def test_compact_layout_comes_from_the_adapter_and_old_exports_still_read():
    for name in ("bert", "roberta"):
        c = config_from_arch(TINY_BY_BACKBONE[name], 2)
        assert (c.backbone, c.position_ids, c.head) == tuple(backbone_for(name).compact_config().values())
    old = CompactBertConfig(backbone="roberta")  # an export's config.json from before the layout keys
    assert (old.position_ids, old.head) == ("padding_offset", "classification_head")
    with pytest.raises(ValueError, match="head one of"):
        CompactBertConfig(head="mean_pool")


def test_a_new_backbone_is_one_registration():
    """A family whose layout exists already (here XLM-RoBERTa, RoBERTa's) loads once its adapter is registered,
    and nothing else changes; unknown before, unknown again after."""
    d = {"model_type": "xlm-roberta", "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4,
         "intermediate_size": 64, "vocab_size": 99, "max_position_embeddings": 40, "pad_token_id": 1,
         "type_vocab_size": 1}
    with pytest.raises(ValueError, match="not supported"):
        BertArch.from_hf_config(d)
    xlmr = dataclasses.replace(backbone_for("roberta"), name="xlm-roberta", display_name="XLM-RoBERTa",
                               model_types=("xlm-roberta",), hf_model_class="XLMRobertaForSequenceClassification")
    register(xlmr)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register(xlmr)
        arch = BertArch.from_hf_config(d)
        assert arch.model_type == "xlm-roberta" and arch.max_seq_len == 38
        hf = _reference(xlmr, arch, num_labels=2)
        ours = ElasticBertForSequenceClassification(arch, 2).eval()
        state, missing = map_hf_state_dict(hf.state_dict(), ours)
        ours.load_state_dict(state, strict=True)
        batch = batch_for(dataclasses.replace(arch, model_type="roberta"))  # RoBERTa's padding and token types
        with torch.no_grad():
            assert (hf(**batch).logits - ours(**batch).logits).abs().max() < 1e-5
        assert missing == [] and ours.bert.pooler is None
    finally:
        unregister("xlm-roberta")
    assert "xlm-roberta" not in supported()
