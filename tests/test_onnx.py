"""ONNX export of an extracted tiny model: ONNX Runtime matches PyTorch at two batch/sequence shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic.model.config import SubnetConfig
from elastic.model.extract import extract
from elastic.model.modeling import ElasticBertForSequenceClassification
from profiling.onnx_export import export_onnx, ort_feeds, ort_session, quantize_onnx_int8
from tests.conftest import TINY

ARCH = TINY


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
    out = ort_session(path, threads=1).run(None, ort_feeds(ids, mask))[0]
    assert out.shape == (batch, 3)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_int8_onnx_runs_and_stays_close(exported, tmp_path):
    small, path = exported
    q = quantize_onnx_int8(path, tmp_path / "model.int8.onnx")
    ids, mask = _inputs(2, 16, seed=3)
    with torch.no_grad():
        ref = small(ids, mask).logits.numpy()
    out = ort_session(q, threads=1).run(None, ort_feeds(ids, mask))[0]
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


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory):
    """A tiny sentence-pair classifier with weights large enough that logits are O(1) and segments matter."""
    torch.manual_seed(1)
    model = ElasticBertForSequenceClassification(ARCH, 2).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name:
                p.normal_(0.0, 0.3)
    small = extract(model, SubnetConfig(layers=(0, 1, 3), heads=(4, 2, 3), ffn=(64, 16, 40)))
    return small, export_onnx(small, tmp_path_factory.mktemp("pair") / "model.onnx")


@pytest.mark.parametrize("batch, seq", [(1, 9), (4, 21)])
def test_sentence_pair_parity_with_token_types(pair_model, batch, seq):
    """A sentence-pair batch (segment 0 then 1, padding): ONNX Runtime equals PyTorch, and the segments matter."""
    small, path = pair_model
    ids, mask = _inputs(batch, seq, seed=10 + batch)
    types = (torch.arange(seq) >= seq // 3).long().expand(batch, seq).contiguous() * mask
    with torch.no_grad():
        ref = small(ids, mask, types).logits.numpy()
        single = small(ids, mask).logits.numpy()
    assert np.abs(ref).max() > 0.1  # logits big enough for 1e-4 to be a real tolerance
    sess = ort_session(path, threads=1)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    out = sess.run(None, ort_feeds(ids, mask, types))[0]
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
    assert np.abs(ref - single).max() > 1e-2  # token types reach the model: the pair input is not ignored


def test_sessions_spin_during_a_run_only(exported, monkeypatch):
    """Pool threads spin between a run's operators and stop when it returns (several sessions per process must not
    spin against each other), whatever OMP_WAIT_POLICY says; `off` and `always` give ORT's other two settings."""
    _, path = exported
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # before: an unset policy meant spinning sessions

    def entry(opts, key: str) -> str:
        try:
            return opts.get_session_config_entry(key)
        except RuntimeError:  # not set
            return ""

    def entries(sess) -> tuple[str, str]:
        opts = sess.get_session_options()
        return tuple(entry(opts, k) for k in ("session.intra_op.allow_spinning", "session.force_spinning_stop"))

    assert entries(ort_session(path, threads=2)) == ("1", "1")
    assert entries(ort_session(path, threads=2, spinning="off")) == ("0", "")
    assert entries(ort_session(path, threads=2, spinning="always")) == ("1", "")
    with pytest.raises(ValueError, match="spinning must be one of"):
        ort_session(path, threads=2, spinning=True)
