"""Runners: a zero-argument callable doing one forward pass of an extracted sub-network in a scenario's runtime.

Eager PyTorch (fp32/bf16/fp16 on the scenario's device, or INT8 through torchao) or ONNX Runtime (fp32 or
dynamically quantized INT8, both on the ONNX Runtime-fused graph: `export_onnx(..., fused=True)`, which keeps
small sub-networks' per-op costs down at batch 1; docs/RECIPES.md). Every CUDA runner synchronizes before it
returns, so host clocks see finished work.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from elastic.model.config import SubnetConfig
from elastic.training.device import synchronize
from elastic.model.extract import extract
from elastic.model.modeling import ElasticBertForSequenceClassification
from profiling.latency_cache import model_key
from profiling.scenario import Scenario


def make_inputs(scenario: Scenario, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random token ids and an all-ones mask, (batch, seq_len) int64 on the scenario's device."""
    gen = torch.Generator().manual_seed(seed)
    # Ids from 1 up: 0 is usually [PAD]; the value does not change the time, only realism.
    ids = torch.randint(1, vocab_size, (scenario.batch, scenario.seq_len), generator=gen)
    return ids.to(scenario.device), torch.ones_like(ids).to(scenario.device)


def build_runner(small: nn.Module, scenario: Scenario, *, workdir: str | os.PathLike | None = None,
                 onnx_path: str | os.PathLike | None = None, fused: bool = True) -> Callable[[], Any]:
    """A zero-argument callable running one forward pass of the extracted model in the scenario's runtime.

    Args:
        small: the extracted model (not modified; INT8 runtimes quantize a copy).
        scenario: device/runtime/threads/batch/seq_len.
        workdir: where ONNX files go (a temporary folder when None).
        onnx_path: an fp32 ONNX export of `small` to reuse (exports are slow; dynamic shapes make one
            export serve every batch and sequence length).
        fused: ORT runtimes run the ONNX Runtime-fused graph (`export_onnx(..., fused=True)`: attention, bias-GELU;
            INT8 quantizes that graph); False: the standard dynamo export (what `bench/op_profile.py` compares).
    """
    ids, mask = make_inputs(scenario, int(small.config.vocab_size))
    if scenario.uses_ort:
        from profiling.onnx_export import export_onnx, ort_feeds, ort_session, quantize_onnx_int8

        own = workdir is None and onnx_path is None
        folder = Path(tempfile.mkdtemp(prefix="dynabert-onnx-") if workdir is None else workdir)
        try:
            path = Path(onnx_path) if onnx_path else export_onnx(small, folder / "model.onnx", fused=fused)
            if scenario.int8:
                q = path.with_name(f"{path.stem}.int8.onnx")
                path = q if q.exists() else quantize_onnx_int8(path, q)
            sess = ort_session(path, threads=scenario.threads, device=scenario.device)
        finally:
            if own:  # the session holds the model in memory; a BERT export is ~100 MB of disk
                shutil.rmtree(folder, ignore_errors=True)
        feeds = ort_feeds(ids, mask)
        return lambda: sess.run(None, feeds)
    from profiling.deploy import eager_model  # the same conversion the variant's accuracy is scored on

    model = eager_model(small, scenario)

    sync = synchronize if scenario.device == "cuda" else (lambda _device: None)

    @torch.inference_mode()
    def run() -> torch.Tensor:
        out = model(ids, mask).logits
        sync(scenario.device)  # the call ends when the GPU is done, not when the launch returns
        return out

    return run


def runner_for(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, scenario: Scenario, *,
               workdir: str | os.PathLike | None = None, fused: bool = True) -> tuple[nn.Module, Callable[[], Any]]:
    """(extracted model, its runner); ORT exports are kept in `workdir` by config and reused (`fused`: see
    `build_runner`)."""
    small = extract(model, cfg).eval()
    onnx_path = None
    if scenario.uses_ort and workdir is not None:
        # One fp32 export per config serves every batch/sequence length (dynamic shapes): reuse it.
        from profiling.onnx_export import export_onnx

        onnx_path = Path(workdir) / f"{model_key(model)}-{cfg.hash}{'.fused' if fused else ''}.onnx"
        if not onnx_path.exists():
            export_onnx(small, onnx_path, fused=fused)
    return small, build_runner(small, scenario, workdir=workdir, onnx_path=onnx_path, fused=fused)
