"""The ONNX Runtime-fused graph (`export_onnx(..., fused=True)`): same logits as PyTorch and as the standard
graph, one Attention op per kept layer with that layer's own head count, INT8 on top of it."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from elastic.model.config import SubnetConfig
from elastic.model.extract import extract
from profiling.onnx_export import export_onnx, ort_feeds, ort_session, quantize_onnx_int8
from tests.conftest import TINY, TINY_BY_BACKBONE, batch_for, seeded_tiny

# Per-layer head counts that differ (1, 4, 2 of 4), FFN widths that differ, layer 2 dropped.
MIXED = SubnetConfig(layers=(0, 1, 3), heads=(1, 4, 2), ffn=(8, 64, 24))


def _big(model):
    """Weights large enough that logits are O(1), so 1e-4 is a real tolerance."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name:
                p.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope="module")
def fused_pair(tmp_path_factory):
    torch.manual_seed(1)
    small = extract(_big(seeded_tiny(TINY, num_labels=3, seed=1)), MIXED)
    folder = tmp_path_factory.mktemp("fused")
    return small, export_onnx(small, folder / "model.onnx", fused=True), export_onnx(small, folder / "std.onnx")


def _inputs(batch: int, seq: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY.vocab_size, (batch, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, seq // 2:] = 0  # padding in one row
    types = (torch.arange(seq) >= seq // 3).long().expand(batch, seq).contiguous() * mask
    return ids, mask, types


def test_fused_graph_has_one_attention_per_layer_with_its_heads(fused_pair):
    _, path, _ = fused_pair
    nodes = onnx.load(str(path)).graph.node
    heads = [next(a.i for a in n.attribute if a.name == "num_heads") for n in nodes if n.op_type == "Attention"]
    assert heads == list(MIXED.heads)
    ops = {n.op_type for n in nodes}
    assert "BiasGelu" in ops and "SkipLayerNormalization" not in ops  # the slow CPU kernel stays out
    assert "Softmax" not in ops and "Transpose" not in ops  # attention's pieces are all inside the fused op


@pytest.mark.parametrize("batch, seq", [(1, 7), (5, 33)])
def test_fused_graph_matches_pytorch_and_standard_graph(fused_pair, batch, seq):
    small, path, std = fused_pair
    ids, mask, types = _inputs(batch, seq, seed=batch)
    with torch.no_grad():
        ref = small(ids, mask, types).logits.numpy()
    assert np.abs(ref).max() > 0.1
    out = ort_session(path, threads=2).run(None, ort_feeds(ids, mask, types))[0]
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
    out_std = ort_session(std, threads=2).run(None, ort_feeds(ids, mask, types))[0]
    np.testing.assert_allclose(out, out_std, atol=1e-5, rtol=0)
    assert not small.training  # the TorchScript exporter's train/eval switching left the model in eval mode


def test_fused_int8_quantizes_attention_and_stays_close(fused_pair, tmp_path):
    small, path, std = fused_pair
    q = quantize_onnx_int8(path, tmp_path / "model.int8.onnx")
    q_std = quantize_onnx_int8(std, tmp_path / "std.int8.onnx")
    ops = [n.op_type for n in onnx.load(str(q)).graph.node]
    assert ops.count("QAttention") == len(MIXED.layers)
    ids, mask, types = _inputs(3, 16, seed=4)
    with torch.no_grad():
        ref = small(ids, mask, types).logits.numpy()
    out = ort_session(q, threads=1).run(None, ort_feeds(ids, mask, types))[0]
    out_std = ort_session(q_std, threads=1).run(None, ort_feeds(ids, mask, types))[0]
    # INT8 is approximate; the fused INT8 graph is no further from fp32 than the standard INT8 graph (+ slack)
    assert np.abs(out - ref).max() <= max(2 * np.abs(out_std - ref).max(), 0.05)


@pytest.mark.parametrize("backbone", ["bert", "roberta"])
def test_fused_export_of_each_backbone_matches_pytorch(backbone, tmp_path):
    arch = TINY_BY_BACKBONE[backbone]
    small = extract(_big(seeded_tiny(arch, num_labels=2)), SubnetConfig(layers=(1, 2), heads=(3, 1), ffn=(64, 5)))
    path = export_onnx(small, tmp_path / "model.onnx", fused=True)
    b = batch_for(arch)
    with torch.no_grad():
        ref = small(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits.numpy()
    out = ort_session(path, threads=1).run(None, ort_feeds(b["input_ids"], b["attention_mask"],
                                                           b["token_type_ids"]))[0]
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
    assert sum(n.op_type == "Attention" for n in onnx.load(str(path)).graph.node) == 2
    assert not (tmp_path / "model.unfused.onnx").exists()  # the intermediate export is removed


def test_runner_times_the_fused_graph(tmp_path):
    """ORT runners export the fused graph (and name it so in their workdir); the standard one on request."""
    from profiling.runners import runner_for
    from profiling.scenario import Scenario

    model = seeded_tiny(TINY, num_labels=2)
    cfg = SubnetConfig.uniform(TINY, 0.5, 0.5)
    sc = Scenario(runtime="ort", threads=1, batch=1, seq_len=8)
    _, run = runner_for(model, cfg, sc, workdir=tmp_path)
    assert run()[0].shape == (1, 2)
    _, run_std = runner_for(model, cfg, sc, workdir=tmp_path, fused=False)
    np.testing.assert_allclose(run()[0], run_std()[0], atol=1e-5, rtol=0)
    fused = next(tmp_path.glob("*.fused.onnx"))
    assert "Attention" in {n.op_type for n in onnx.load(str(fused)).graph.node}
