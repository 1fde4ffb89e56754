"""Equivalence: our BERT/RoBERTa vs transformers, elastic forward vs extracted model (both backbones),
checkpoints round trip."""
from __future__ import annotations

import random

import pytest
import torch
from transformers import (BertConfig, BertForSequenceClassification, RobertaConfig,
                          RobertaForSequenceClassification, RobertaModel)

from elastic.model.config import BertArch, SubnetConfig, grid
from elastic.model.extract import extract
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.model.weights import (CheckpointError, load_checkpoint, load_default_teacher, load_hf_bert,
                             map_hf_state_dict, save_checkpoint)

from tests.conftest import TINY, TINY_BY_BACKBONE, batch_for

BACKBONES = sorted(TINY_BY_BACKBONE)


def _hf_config(backbone: str, num_labels: int = 3):
    arch = TINY_BY_BACKBONE[backbone]  # the same tiny architecture, in transformers' terms
    kw = dict(vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers,
              num_attention_heads=arch.num_heads, intermediate_size=arch.intermediate_size, num_labels=num_labels,
              max_position_embeddings=arch.max_position_embeddings)
    if backbone == "roberta":  # transformers' RoBERTa defaults: pad 1, bos 0, eos 2, one token type
        return RobertaConfig(type_vocab_size=arch.type_vocab_size, layer_norm_eps=arch.layer_norm_eps, **kw)
    return BertConfig(**kw)


def _hf_tiny(num_labels=3, backbone: str = "bert"):
    torch.manual_seed(0)
    hc = _hf_config(backbone, num_labels)
    cls = RobertaForSequenceClassification if backbone == "roberta" else BertForSequenceClassification
    hf = cls(hc).eval()
    with torch.no_grad():  # non-trivial LayerNorm/bias values so a key mix-up cannot hide
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return hf


@pytest.mark.parametrize("backbone", BACKBONES)
def test_parity_with_transformers(backbone):
    tiny_batch = batch_for(TINY_BY_BACKBONE[backbone])
    hf = _hf_tiny(backbone=backbone)
    arch = BertArch.from_hf_config(hf.config)
    assert arch == TINY_BY_BACKBONE[backbone]
    ours = ElasticBertForSequenceClassification(arch, 3).eval()
    state, missing = map_hf_state_dict(hf.state_dict(), ours)
    assert missing == []
    ours.load_state_dict(state, strict=True)
    with torch.no_grad():
        ref = hf(**tiny_batch, output_hidden_states=True)
        out = ours(**tiny_batch, output_hidden_states=True)
        explicit = ours(**tiny_batch, output_attentions=True)  # explicit attention path, not SDPA
    assert (ref.logits - out.logits).abs().max() < 1e-5
    assert len(ref.hidden_states) == len(out.hidden_states) == 5
    for a, b in zip(ref.hidden_states, out.hidden_states):
        assert (a - b).abs().max() < 1e-5
    assert (explicit.logits - out.logits).abs().max() < 1e-5
    assert len(explicit.attentions) == 4 and explicit.attentions[0].shape == (3, 4, 12, 12)
    # Probabilities are a distribution over unmasked keys only.
    assert torch.allclose(explicit.attentions[0].sum(-1), torch.ones(3, 4, 12), atol=1e-5)
    assert explicit.attentions[0][1, :, :, 8:].abs().max() == 0


def test_roberta_base_model_checkpoint_loads_with_parity(tmp_path):
    """A RobertaModel checkpoint (keys without prefix, with a pooler we do not use) loads; hidden states
    equal RobertaModel's, and our fresh head is RoBERTa's dense + out_proj."""
    torch.manual_seed(0)
    hf = RobertaModel(_hf_config("roberta")).eval()
    hf.save_pretrained(tmp_path / "rb")
    ours = load_hf_bert(tmp_path / "rb", num_labels=2).eval()
    batch = batch_for(TINY_BY_BACKBONE["roberta"])
    with torch.no_grad():
        ref = hf(**batch, output_hidden_states=True)
        out = ours(**batch, output_hidden_states=True)
    for a, b in zip(ref.hidden_states, out.hidden_states):
        assert (a - b).abs().max() < 1e-5
    assert ours.arch.model_type == "roberta" and ours.bert.pooler is None
    assert {k for k in ours.state_dict() if k.startswith("classifier.")} == {
        "classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"}


def test_load_hf_checkpoint_dir_safetensors_and_bin(tmp_path, tiny_batch):
    hf = _hf_tiny()
    hf.save_pretrained(tmp_path / "st")
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "bin").mkdir()
    (tmp_path / "pytorch_model.bin").rename(tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    with torch.no_grad():
        ref = hf(**tiny_batch).logits
        for d in ("st", "bin"):
            m = load_hf_bert(tmp_path / d, num_labels=3).eval()
            assert (m(**tiny_batch).logits - ref).abs().max() < 1e-5


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_hf_bert(tmp_path / "nope", 2)
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(CheckpointError, match="model_type 'gpt2' is not supported: .* loads bert and roberta"):
        load_hf_bert(tmp_path / "gpt", 2)
    hf = _hf_tiny()
    hf.save_pretrained(tmp_path / "ok")
    path = tmp_path / "ok" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])  # truncated download
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_hf_bert(tmp_path / "ok", 2)


def test_head_of_other_size_is_replaced():
    hf = _hf_tiny(num_labels=5)
    ours = ElasticBertForSequenceClassification(TINY, 2)
    state, missing = map_hf_state_dict(hf.state_dict(), ours)
    assert sorted(missing) == ["classifier.bias", "classifier.weight"]


def test_own_checkpoint_round_trip(tmp_path, tiny_model, tiny_batch):
    save_checkpoint(tiny_model, tmp_path / "ck", {"stage": "stage1"})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"stage": "stage1"}
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**tiny_batch).logits, tiny_model(**tiny_batch).logits)
    with pytest.raises(CheckpointError, match="not a DynaBERT Explorer checkpoint"):
        load_checkpoint(tmp_path)


RANDOM_CFGS = [SubnetConfig.random(TINY, random.Random(i), ffn_step=8) for i in range(24)]
GRID_CFGS = [c for _, _, c in grid(TINY)]


@pytest.mark.parametrize("cfg", GRID_CFGS + RANDOM_CFGS, ids=lambda c: c.describe())
def test_elastic_equals_extracted(cfg, backbone_model_batch):
    tiny_model, tiny_batch = backbone_model_batch
    small = extract(tiny_model, cfg).eval()
    with torch.no_grad():
        a = tiny_model(**tiny_batch, subnet=cfg, output_hidden_states=True)
        b = small(**tiny_batch, output_hidden_states=True)
    assert (a.logits - b.logits).abs().max() < 1e-5
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert (x - y).abs().max() < 1e-5
    # Physically smaller: parameter count equals the analytic count of kept slices.
    arch = tiny_model.arch
    H, hd, V, P, T, C = arch.hidden_size, arch.head_dim, arch.vocab_size, arch.max_position_embeddings, \
        arch.type_vocab_size, 3
    emb = (V + P + T) * H + 2 * H
    layers = sum(3 * (H * h * hd + h * hd) + (h * hd * H + H) + 2 * H  # Q, K, V, output, LayerNorm
                 + (H * n + n) + (n * H + H) + 2 * H  # FFN in, FFN out, LayerNorm
                 for h, n in zip(cfg.heads, cfg.ffn))
    expected = emb + layers + H * H + H + H * C + C  # BERT: pooler + classifier; RoBERTa: dense + out_proj
    assert sum(p.numel() for p in small.parameters()) == expected
    # No parameter is shared with the super-network.
    big = {p.data_ptr() for p in tiny_model.parameters()}
    assert not big & {p.data_ptr() for p in small.parameters()}


def test_extracted_shrinks_monotonically(tiny_model):
    sizes = [sum(p.numel() for p in extract(tiny_model, SubnetConfig.uniform(TINY, w, 1.0)).parameters())
             for w in (1.0, 0.75, 0.5, 0.25)]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
    cfg = SubnetConfig.uniform(TINY, 0.5, 0.5)
    small = extract(tiny_model, cfg)
    assert small.config.num_hidden_layers == 2 and small.config.layer_heads == [2, 2]
    assert small.bert.encoder.layer[0].attention.self.query.weight.shape == (16, 32)
    assert small.bert.encoder.layer[0].output.dense.weight.shape == (32, 32)


def test_invalid_subnet_in_forward(tiny_model, tiny_batch):
    with pytest.raises(ValueError, match="unknown layer 7"):
        tiny_model(**tiny_batch, subnet=SubnetConfig((7,), (1,), (8,)))


@pytest.mark.integration
def test_real_minilm_parity():
    from transformers import BertModel
    from elastic.model.weights import default_teacher_path
    model, tok = load_default_teacher(2)
    model.eval()
    hf = BertModel.from_pretrained(str(default_teacher_path())).eval()
    batch = tok(["a quiet, moving film.", "the plot makes no sense at all and drags"], padding=True,
                return_tensors="pt")
    with torch.no_grad():
        ref = hf(**batch, output_hidden_states=True)
        out = model(**batch, output_hidden_states=True)
    assert model.arch.num_layers == 6 and model.arch.hidden_size == 384
    for a, b in zip(ref.hidden_states, out.hidden_states):
        assert (a - b).abs().max() < 1e-4
    # The pooler is real (loaded), so the pooled output matches too.
    pooled = torch.tanh(model.bert.pooler.dense(out.hidden_states[-1][:, 0]))
    assert (pooled - ref.pooler_output).abs().max() < 1e-4
