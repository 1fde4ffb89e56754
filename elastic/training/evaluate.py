"""Evaluation of any `SubnetConfig` of an elastic model: logits, metrics, the uniform grid rows."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from elastic.model.config import SubnetConfig, grid
from elastic.data.tasks import EncodedSplit, TaskData, compute_metrics, make_loader
from elastic.training.device import Runtime
from elastic.model.extract import extract
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.rundir import CSV_SCHEMAS, GRID_CSV

CostFn = Callable[[SubnetConfig], Mapping[str, Any]]
GRID_COLUMNS = CSV_SCHEMAS[GRID_CSV].columns


def make_eval_loader(encoded: EncodedSplit, batch_size: int = 128) -> DataLoader:
    """A loader for evaluation that batches examples of similar length (less padding, faster).

    Labels come out of the loader in the same order as the logits, so metrics are unaffected.

    Args:
        encoded: a tokenized split.
        batch_size: examples per batch (larger is faster under inference mode).

    Returns:
        A DataLoader over the split sorted by length.
    """
    order = sorted(range(len(encoded)), key=lambda i: encoded.lengths[i])
    return make_loader(encoded, batch_size, shuffle=False, sampler=order)


def predict_logits(model: ElasticBertForSequenceClassification, loader: DataLoader,
                   subnet: Optional[SubnetConfig] = None, runtime: Optional[Runtime] = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every example, in eval mode under `torch.inference_mode`.

    Args:
        model: the elastic model (its train/eval mode is restored afterwards).
        loader: yields dicts with input_ids, attention_mask, token_type_ids, labels.
        subnet: the sub-network to run (None = full).
        runtime: device and precision; None = fp32 on the device the model is on.

    Returns:
        (logits (N, K) float32, labels (N,)).
    """
    was_training = model.training
    model.eval()
    if subnet is not None:
        subnet.validate(model.arch)
    runtime = runtime or Runtime(device=str(next(model.parameters()).device))
    runtime.module(model)
    logits, labels = [], []
    try:
        with torch.inference_mode(), runtime.autocast():
            for batch in loader:
                b = runtime.batch(batch)
                out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], subnet=subnet)
                logits.append(out.logits.float().cpu())
                labels.append(batch["labels"])
    finally:
        model.train(was_training)
    if not logits:
        raise ValueError("the evaluation split is empty: nothing to evaluate")
    return torch.cat(logits).float().numpy(), torch.cat(labels).numpy()


def evaluate(model: ElasticBertForSequenceClassification, loader: DataLoader,
             subnet: Optional[SubnetConfig], task: TaskData, runtime: Optional[Runtime] = None) -> dict[str, float]:
    """Metrics (in %) of one sub-network on one split.

    Args:
        model: the elastic model.
        loader: the split's loader.
        subnet: the sub-network (None = full).
        task: gives the metric.
        runtime: device and precision (None: fp32 where the model is).

    Returns:
        `compute_metrics` output: accuracy (and f1/mcc for binary tasks) or spearman/pearson, plus
        `metric` = the task's primary metric.
    """
    logits, labels = predict_logits(model, loader, subnet, runtime)
    return compute_metrics(task, logits, labels)


def default_cost(model: ElasticBertForSequenceClassification, cfg: SubnetConfig) -> dict[str, Any]:
    """Params of the extracted sub-network (count); MACs unknown without `profiling.flops`."""
    return {"macs": "", "params": sum(p.numel() for p in extract(model, cfg).parameters())}


def grid_rows(model: ElasticBertForSequenceClassification, loaders: Mapping[str, DataLoader],
              task: TaskData, stage: str, cost_fn: Optional[CostFn] = None,
              widths: Optional[tuple[float, ...]] = None, depths: Optional[tuple[float, ...]] = None,
              runtime: Optional[Runtime] = None) -> list[dict[str, Any]]:
    """One `grid.csv` row per uniform (width, depth) sub-network, evaluated on every given split.

    Args:
        model: the elastic model.
        loaders: split name ("dev", "test") -> loader; a missing split leaves its columns empty.
        task: gives the metric.
        stage: value of the `stage` column.
        cost_fn: cfg -> {"macs": int, "params": int}; defaults to params of the extracted model.
        widths / depths: the grid (default: DynaBERT's 4 widths x 3 depths).
        runtime: device and precision of the evaluation (None: fp32 where the model is).

    Returns:
        Rows with the columns of `GRID_COLUMNS` (metrics in %, macs as multiply-accumulates).
    """
    kw = {}
    if widths is not None:
        kw["widths"] = widths
    if depths is not None:
        kw["depths"] = depths
    rows = []
    for w, d, cfg in grid(model.arch, **kw):
        row: dict[str, Any] = {"stage": stage, "width_mult": w, "depth_mult": d, "config_hash": cfg.hash,
                               "config_json": cfg.to_json()}
        for split in ("dev", "test"):
            if split in loaders:
                m = evaluate(model, loaders[split], cfg, task, runtime)
                row[f"{split}_metric"], row[f"{split}_acc"] = m["metric"], m.get("accuracy", "")
            else:
                row[f"{split}_metric"] = row[f"{split}_acc"] = ""
        cost = dict(cost_fn(cfg)) if cost_fn is not None else default_cost(model, cfg)
        row["macs"], row["params"] = cost.get("macs", ""), cost.get("params", "")
        rows.append({k: row[k] for k in GRID_COLUMNS})
    return rows
