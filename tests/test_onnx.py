"""ONNX export of an extracted tiny model: ONNX Runtime matches PyTorch at two batch/sequence shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic.config import BertArch, SubnetConfig
from elastic.extract import extract
from elastic.model import ElasticBertForSequenceClassification
from profiling.onnx_export import export_onnx, ort_session, quantize_onnx_int8

ARCH = BertArch(num_layers=4, hidden_size=32, num_heads=4, head_dim=8, intermediate_size=64,
                vocab_size=99, max_position_embeddings=64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(ARCH, 3).eval()
    small = extract(model, SubnetConfig(layers=(0, 2, 3), heads=(1, 4, 2), ffn=(8, 64, 24)))
    path = export_onnx(small, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return small, path


def _inputs(batch: int, seq: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, ARCH.vocab_size, (batch, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, seq // 2:] = 0  # padding in one row, so the mask path is exercised
    return ids, mask


@pytest.mark.parametrize("batch, seq", [(1, 7), (5, 33)])
def test_onnx_runtime_matches_pytorch(exported, batch, seq):
    small, path = exported
    ids, mask = _inputs(batch, seq, seed=batch)
    with torch.no_grad():
        ref = small(ids, mask).logits.numpy()
    out = ort_session(path, threads=1).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert out.shape == (batch, 3)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_int8_onnx_runs_and_stays_close(exported, tmp_path):
    small, path = exported
    q = quantize_onnx_int8(path, tmp_path / "model.int8.onnx")
    ids, mask = _inputs(2, 16, seed=3)
    with torch.no_grad():
        ref = small(ids, mask).logits.numpy()
    out = ort_session(q, threads=1).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 0.05  # INT8 is approximate; random weights give small logits
    import onnx

    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"}, ops


def test_bad_max_seq_len(exported, tmp_path):
    small, _ = exported
    with pytest.raises(ValueError, match="max_seq_len"):
        export_onnx(small, tmp_path / "x.onnx", max_seq_len=65)


@pytest.mark.parametrize("runtime", ["ort", "ort-int8", "eager-int8"])
def test_measure_every_runtime_cleans_up(runtime):
    import tempfile
    from pathlib import Path

    from profiling.latency import measure
    from profiling.scenario import Scenario

    if runtime == "eager-int8":
        pytest.importorskip("torchao")
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(ARCH, 2).eval()
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("dynabert-onnx-*"))
    rec = measure(model, SubnetConfig.uniform(ARCH, 0.5, 0.75), Scenario(runtime=runtime, threads=1, batch=2, seq_len=8),
                  min_run_time_s=0.02, warmup=1, count_fvcore=False)
    assert rec["runtime"] == runtime and rec["median_ms"] > 0 and rec["n"] >= 1
    assert set(tmp.glob("dynabert-onnx-*")) <= before  # exports do not pile up in /tmp
