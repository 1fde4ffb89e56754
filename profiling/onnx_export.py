"""ONNX export of an extracted sub-network (dynamic batch and sequence length) and ONNX Runtime sessions.

The graph takes exactly what a BERT tokenizer returns (`input_ids`, `attention_mask`, `token_type_ids`, int64),
so `session.run(None, dict(tokenizer(texts, padding=True, return_tensors="np")))` works, sentence pairs included.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("logits",)


class _Logits(nn.Module):
    """Export wrapper: the tokenizer's three int64 inputs in, logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask, token_type_ids).logits


def ort_feeds(input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs from tensors or arrays; token types default to zeros (single sentences)."""
    arrays = [np.asarray(t.cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.int64)
              for t in (input_ids, attention_mask)]
    types = np.zeros_like(arrays[0]) if token_type_ids is None else np.asarray(
        token_type_ids.cpu().numpy() if isinstance(token_type_ids, torch.Tensor) else token_type_ids, dtype=np.int64)
    return dict(zip(INPUT_NAMES, [*arrays, types]))


def export_onnx(model: nn.Module, path: str | os.PathLike, *, max_seq_len: int | None = None,
                fused: bool = False) -> Path:
    """Export an extracted model to ONNX with dynamic batch and sequence dimensions.

    Uses `torch.onnx.export(..., dynamo=True)` at its default opset (opset 23 breaks ONNX Runtime's
    Attention op with a [B,1,1,S] mask).

    `fused=True` writes the graph ONNX Runtime runs fastest instead (`fuse_for_ort`): one `Attention` op per
    layer (packed Q/K/V GEMM, its own head count), `BiasGelu`, plain `LayerNormalization`. It holds
    com.microsoft operators, so only ONNX Runtime runs it; its logits equal the standard graph's (tests/test_onnx.py).

    Args:
        model: a `CompactBertForSequenceClassification` (from `extract`); exported in eval mode.
        path: the .onnx file to write (its folder is created).
        max_seq_len: upper bound of the sequence dimension (default: the model's position table).
        fused: write the ONNX Runtime-fused graph (see above).

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    max_pos = int(model.config.max_position_embeddings)
    max_seq = int(max_seq_len or max_pos)
    if not 2 <= max_seq <= max_pos:
        raise ValueError(f"max_seq_len must be in 2..{max_pos} (the position table), got {max_seq}")
    was_training = model.training
    model.eval()
    # Example shapes of 2 (not 1) so that torch.export does not specialise the dimensions to 1.
    ids = torch.ones(2, min(8, max_seq), dtype=torch.long)
    # Token types 0/1 in the example so the exporter sees a real input (sentence pairs).
    types = (torch.arange(ids.shape[1]) >= ids.shape[1] // 2).long().expand_as(ids).contiguous()
    # ... where the model has two (RoBERTa has one; the TorchScript exporter runs the example for real).
    types = types.clamp(max=int(getattr(model.config, "type_vocab_size", 2)) - 1)
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=1, max=max_seq)
    shapes = {name: {0: batch, 1: seq} for name in INPUT_NAMES}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The exporter logs every pass at INFO; keep the console readable.
            logging.getLogger("torch.onnx").setLevel(logging.WARNING)
            if fused:
                _export_fused(_Logits(model).eval(), (ids, torch.ones_like(ids), types), path, model.config)
            else:
                torch.onnx.export(_Logits(model), (ids, torch.ones_like(ids), types), str(path), dynamo=True,
                                  input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                                  dynamic_shapes=shapes, verbose=False)
    finally:
        model.train(was_training)
    return path


def _export_fused(wrapper: nn.Module, example: tuple[torch.Tensor, ...], path: Path, config: Any) -> None:
    """TorchScript export + onnxruntime.transformers' BERT fusions (`fuse_for_ort`), written to `path`.

    The TorchScript exporter, not dynamo: the optimizer's attention patterns are those of its graphs (on a
    dynamo export it fuses no attention at all). Opset 17, the optimizer's own.
    """
    raw = path.with_name(f"{path.stem}.unfused.onnx")
    try:
        torch.onnx.export(wrapper, example, str(raw), dynamo=False, opset_version=17,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={name: {0: "batch", 1: "seq"} for name in INPUT_NAMES})
        from elastic.model.backbones import backbone_for

        fuse_for_ort(raw, path, num_layers=int(config.num_hidden_layers),
                     model_type=backbone_for(getattr(config, "backbone", "bert")).ort_model_type)
    finally:
        raw.unlink(missing_ok=True)


def fuse_for_ort(src: str | os.PathLike, dst: str | os.PathLike, *, num_layers: int | None = None,
                 model_type: str = "bert") -> Path:
    """BERT fusions of onnxruntime.transformers' optimizer on a TorchScript-exported graph.

    Fused: attention (one `Attention` op per layer: the Q, K, V projections packed into one GEMM, the head
    count read from each layer's own reshape, so per-layer head counts are kept: num_heads=0/hidden_size=0),
    bias + GELU (`BiasGelu`), LayerNorm. Not fused: residual add + LayerNorm, because ONNX Runtime's CPU
    `SkipLayerNormalization` kernel is several times slower than the `Add` and `LayerNormalization` it replaces
    (docs/RECIPES.md; `python -m bench.op_profile` shows it); `ort_session` keeps ONNX Runtime's own
    skip-LayerNorm fusion off for the same reason.

    Args:
        src: a TorchScript export of an extracted model (`export_onnx(..., fused=True)` makes one).
        dst: where to write the fused graph.
        num_layers: when given, warn if fewer attention blocks than this were fused.
        model_type: the optimizer's model type (the backbone adapter's `ort_model_type`; BERT's graph for both
            BERT and RoBERTa exports, whose encoders are the same).

    Returns:
        `dst`.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    opts = FusionOptions(model_type)
    opts.enable_skip_layer_norm = False
    opts.enable_bias_skip_layer_norm = False
    # Per-layer head counts make the attention fusion warn that the layer's inner size (heads x head size) is not
    # the hidden size; that is what a pruned layer is, and the fused op takes the inner size from the weights.
    # (The optimizer's modules log under their bare names, e.g. "fusion_attention".)
    quiet = [logging.getLogger(name) for name in ("onnxruntime.transformers", "fusion_attention")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        fused = optimize_model(str(src), model_type=model_type, num_heads=0, hidden_size=0, optimization_options=opts,
                               opt_level=0)
    finally:
        for q, lv in zip(quiet, levels):
            q.setLevel(lv)
    n_attention = fused.get_fused_operator_statistics().get("Attention", 0)
    if num_layers is not None and n_attention < num_layers:
        warnings.warn(f"ONNX Runtime attention fusion matched {n_attention} of {num_layers} layers; the others run "
                      "unfused (correct, slower)", stacklevel=2)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fused.save_model_to_file(str(dst))
    return dst


def quantize_onnx_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Dynamic INT8 quantization of the MatMul/Gemm weights (onnxruntime.quantization.quantize_dynamic); on a fused
    graph (`export_onnx(..., fused=True)`) the `Attention` ops become `QAttention`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    # quantize_dynamic logs a pre-processing hint on the root logger for every model; it is only a hint.
    root.setLevel(logging.ERROR)
    try:
        # The fused graph's com.microsoft ops (Attention, BiasGelu) stop ONNX shape inference; their outputs are fp32.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
    return dst


# How a session's pool threads wait for work (`ort_session`'s `spinning`).
SPIN_DURING_RUN, SPIN_OFF, SPIN_ALWAYS = "during-run", "off", "always"
SPINNING = (SPIN_DURING_RUN, SPIN_OFF, SPIN_ALWAYS)


def ort_session(path: str | os.PathLike, *, threads: int, spinning: str = SPIN_DURING_RUN, device: str = "cpu",
                skip_layer_norm_fusion: bool = False, profile_prefix: str | None = None):
    """An ONNX Runtime session using `threads` intra-op threads (one inter-op thread, sequential).

    Args:
        device: "cpu", or "cuda" for the CUDA execution provider (onnxruntime-gpu; `Scenario.check`
            refuses cuda ORT scenarios where the provider is missing). Its `run` returns host arrays,
            so the call has finished on the GPU when it returns.
        spinning: how idle pool threads wait. `during-run` (default): they spin between the operators of a
            `run` and stop spinning when it returns (`session.force_spinning_stop`). `off`: they sleep between
            operators too, and every parallel operator wakes them (slower at batch 1: docs/RECIPES.md,
            `python -m bench.ort_spinning`). `always`: ORT's own default, spinning on after a run: as fast alone,
            but a process holding several sessions (the full model and a config timed in alternation, a search's
            exports) has the idle pools spin against the working one, and paired ratios spread 10x wider.
        skip_layer_norm_fusion: let ONNX Runtime fuse residual Add + LayerNorm into `SkipLayerNormalization` on the
            CPU; default off: its CPU kernel is slower than the two ops it replaces (`fuse_for_ort`).
        profile_prefix: turn ONNX Runtime's per-node profiler on, writing `<prefix>_<date>.json` when
            `end_profiling()` is called (bench/op_profile.py).
    """
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if spinning not in SPINNING:
        raise ValueError(f"spinning must be one of {', '.join(SPINNING)}, got {spinning!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0" if spinning == SPIN_OFF else "1")
    if spinning == SPIN_DURING_RUN:
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    off = [] if skip_layer_norm_fusion or device == "cuda" else ["SkipLayerNormFusion"]
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers, disabled_optimizers=off)
    if device == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        # ORT falls back to the CPU silently when the CUDA provider cannot start: never time that as cuda
        raise ValueError(f"ONNX Runtime could not start its CUDA provider (session runs on {sess.get_providers()}); "
                         "check onnxruntime-gpu against this CUDA version, or measure an eager cuda scenario")
    return sess
