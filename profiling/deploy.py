"""The deployed artifact of a sub-network in one variant: what the search scores, the export writes and re-scores.

A variant (`profiling.variants`) is a scenario key; its artifact is the extracted sub-network converted the way
that scenario runs it (the runners of `profiling.runners` time the same conversions, and
tests/test_deploy.py checks that runner and artifact give the same logits):

- `eager` (fp32, or bf16/fp16 on cuda): the extracted model cast to the dtype on the scenario's device;
- `eager-int8`: the extracted model quantized by torchao (`Int8DynamicActivationInt8WeightConfig`);
- `ort`: `model.onnx` (`profiling.onnx_export.export_onnx`) in an ONNX Runtime session;
- `ort-int8`: `model.int8.onnx` (`quantize_onnx_int8`: onnxruntime's dynamic INT8) of that export.

So a front point of an INT8 variant carries the INT8 model's own dev metric, never the fp32 one. ONNX Runtime
fp32 is scored in ONNX Runtime too (it shares the export with INT8, so it costs one more pass over dev), not
assumed equal to eager (tests/test_onnx.py shows they agree within 1e-4 on logits).
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from elastic.model.config import SubnetConfig
from elastic.training.device import torch_dtype
from elastic.model.extract import extract
from profiling.scenario import Scenario

FP32_ONNX = "model.onnx"
INT8_ONNX = "model.int8.onnx"
Predict = Callable[[Any, Any, Any], np.ndarray]


def eager_model(small: nn.Module, scenario: Scenario) -> nn.Module:
    """A copy of the extracted model as an eager scenario runs it: on its device, in its dtype, INT8 through torchao
    for `eager-int8` (`small` itself is not modified).

    Raises:
        ValueError: `eager-int8` without torchao installed.
    """
    model = copy.deepcopy(small).eval().to(scenario.device, torch_dtype(scenario.dtype))
    if scenario.int8:
        try:
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
        except ImportError:
            raise ValueError("runtime eager-int8 needs torchao (pip install torchao); "
                             "or use the ort-int8 variant") from None
        quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


# ORT scenarios are timed on ONNX Runtime's fused graph (`profiling.runners.build_runner`'s default), so that is
# the graph scored and exported; tests/test_deploy.py fails if the runners time another one.
ORT_FUSED = True


def onnx_model(small: nn.Module, scenario: Scenario, folder: str | os.PathLike) -> Path:
    """The ONNX file an ORT scenario loads, written into `folder` once: `model.onnx` (fp32 export, the graph the
    runners time, `ORT_FUSED`) and, for `ort-int8`, `model.int8.onnx` quantized from it. Existing files are reused
    (the caller owns the folder's meaning: one folder per sub-network of one set of weights)."""
    from profiling.onnx_export import export_onnx, quantize_onnx_int8

    if not scenario.uses_ort:
        raise ValueError(f"scenario {scenario.key} runs eager PyTorch, not ONNX Runtime")
    folder = Path(folder)
    fp32 = folder / FP32_ONNX
    if not fp32.exists():
        export_onnx(small, fp32, fused=ORT_FUSED)
    if not scenario.int8:
        return fp32
    int8 = folder / INT8_ONNX
    return int8 if int8.exists() else quantize_onnx_int8(fp32, int8)


class Deployed:
    """A sub-network as deployed in one variant: `predict(input_ids, attention_mask, token_type_ids)` -> logits
    (float32 numpy, (batch, labels)). Close it (or use `with`) to free its temporary ONNX folder.

    Attributes:
        scenario: the variant.
        path: the ONNX file an ORT variant runs (None for eager variants).
    """

    def __init__(self, scenario: Scenario, predict: Predict, *, path: Path | None = None,
                 own_dir: Path | None = None):
        self.scenario = scenario
        self.path = path
        self._predict = predict
        self._own_dir = own_dir

    def predict(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> np.ndarray:
        return self._predict(input_ids, attention_mask, token_type_ids)

    def close(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> "Deployed":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _eager_predict(model: nn.Module, device: str) -> Predict:
    @torch.inference_mode()
    def predict(ids: Any, mask: Any, types: Any) -> np.ndarray:
        ids, mask = torch.as_tensor(ids).to(device), torch.as_tensor(mask).to(device)
        types = torch.zeros_like(ids) if types is None else torch.as_tensor(types).to(device)
        return model(ids, mask, types).logits.float().cpu().numpy()
    return predict


def _ort_predict(path: Path, scenario: Scenario) -> Predict:
    from profiling.onnx_export import ort_feeds, ort_session

    sess = ort_session(path, threads=scenario.threads, device=scenario.device)
    return lambda ids, mask, types: np.asarray(sess.run(None, ort_feeds(ids, mask, types))[0], dtype=np.float32)


def deploy_small(small: nn.Module, scenario: Scenario | str, *, workdir: str | os.PathLike | None = None
                 ) -> Deployed:
    """The artifact of an extracted model in a variant.

    Args:
        small: the extracted model (`extract(model, cfg)`); not modified.
        scenario: the variant (a `Scenario` or its key).
        workdir: where ONNX files go and are reused (None: a temporary folder removed by `close`).
    """
    sc = Scenario.parse(scenario) if isinstance(scenario, str) else scenario
    if not sc.uses_ort:
        return Deployed(sc, _eager_predict(eager_model(small, sc), sc.device))
    own = None if workdir is not None else Path(tempfile.mkdtemp(prefix="dynabert-deploy-"))
    try:
        path = onnx_model(small, sc, workdir if workdir is not None else own)
        return Deployed(sc, _ort_predict(path, sc), path=path, own_dir=own)
    except BaseException:
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)
        raise


def build_artifact(model: nn.Module, cfg: SubnetConfig, scenario: Scenario | str, *,
                   workdir: str | os.PathLike | None = None) -> Deployed:
    """The artifact of sub-network `cfg` of the elastic `model` in a variant (extract, then `deploy_small`)."""
    return deploy_small(extract(model, cfg).eval(), scenario, workdir=workdir)


def load_artifact(folder: str | os.PathLike, scenario: Scenario | str) -> Deployed:
    """The artifact of a variant as an export folder holds it (`dynabert export`): `model.int8.onnx` or
    `model.onnx` for ORT variants, else the saved weights (`model.safetensors`), converted as `eager_model` does.

    Raises:
        FileNotFoundError: the folder lacks the variant's file.
    """
    sc = Scenario.parse(scenario) if isinstance(scenario, str) else scenario
    folder = Path(folder)
    if sc.uses_ort:
        path = folder / (INT8_ONNX if sc.int8 else FP32_ONNX)
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {path.name}, the file of variant {sc.key}")
        return Deployed(sc, _ort_predict(path, sc), path=path)
    from elastic.model.hf_compact import CompactBertForSequenceClassification

    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors, the weights of variant {sc.key}")
    small = CompactBertForSequenceClassification.from_pretrained(str(folder)).eval()
    return Deployed(sc, _eager_predict(eager_model(small, sc), sc.device))


def artifact_logits(artifact: Deployed, loader: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K) float32, labels (N,)) of every batch of an evaluation loader."""
    logits, labels = [], []
    for b in loader:
        logits.append(artifact.predict(b["input_ids"], b["attention_mask"], b.get("token_type_ids")))
        labels.append(np.asarray(b["labels"]))
    if not logits:
        raise ValueError("the evaluation split is empty: nothing to evaluate")
    return np.concatenate(logits).astype(np.float32), np.concatenate(labels)


def artifact_metric(artifact: Deployed, loader: Iterable[dict[str, Any]], task: Any) -> float:
    """The task's primary metric (%) of the artifact on a split's loader (`elastic.data.tasks.compute_metrics`)."""
    from elastic.data.tasks import compute_metrics

    logits, labels = artifact_logits(artifact, loader)
    return float(compute_metrics(task, logits, labels)["metric"])
