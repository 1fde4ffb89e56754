"""Network rewiring: score heads and FFN neurons, then reorder them so that prefixes keep the best.

Head importance (Michel et al. 2019, as DynaBERT): sum over batches of |dL/d gate_h|, the gate
multiplying head h's attention output, hard-label loss, model in eval mode. FFN neuron importance
(the released DynaBERT code): |sum_k W1[j,k] dW1[j,k] + b1[j] db1[j]| + |sum_k W2[k,j] dW2[k,j]|,
summed over batches.

The released code never zeroes gradients between importance batches, so its batch b adds
|g_1 + ... + g_b| (the running sum) instead of |g_b|; `grads="cumulative"` reproduces that, the
default `"per-batch"` is the formula above.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from tqdm.auto import tqdm

from elastic.training.device import CPU_FP32, Runtime
from elastic.training.losses import hard_label_loss
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.training.options import IMPORTANCE_GRADS, ImportanceGrads



def compute_importance(model: ElasticBertForSequenceClassification, batches: Iterable[dict[str, torch.Tensor]],
                       *, is_regression: bool, progress: bool = False, runtime: Runtime = CPU_FP32,
                       grads: ImportanceGrads = "per-batch") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Head and FFN-neuron importance accumulated over batches.

    Args:
        model: the fine-tuned teacher (put in eval mode for the pass; its mode is restored; its
            parameters' .grad are left as None).
        batches: dicts with input_ids, attention_mask, token_type_ids, labels.
        is_regression: MSE instead of cross-entropy.
        progress: show a progress bar.
        runtime: device and precision of the forward passes (the model is moved there; default cpu fp32).
        grads: "per-batch" scores each batch's own gradients; "cumulative" scores the running sum of
            the gradients of all batches so far (the released code, which never zeroes them).

    Returns:
        (head (L, num_heads), ffn (L, intermediate_size), number of examples seen), in the
        model's current unit order.
    """
    if grads not in IMPORTANCE_GRADS:
        raise ValueError(f"grads must be one of {IMPORTANCE_GRADS}, got '{grads}'")
    arch = model.arch
    was_training = model.training
    model.eval()
    head = torch.zeros(arch.num_layers, arch.num_heads)
    ffn = torch.zeros(arch.num_layers, arch.intermediate_size)
    n = 0
    layers = model.bert.encoder.layer
    runtime.module(model)
    dev = runtime.torch_device
    gate_grad_sum = torch.zeros(arch.num_layers, arch.num_heads)  # running sum (cumulative mode)
    try:
        model.zero_grad(set_to_none=True)
        for batch in tqdm(batches, desc="importance", unit="batch", disable=not progress):
            if grads == "per-batch":
                model.zero_grad(set_to_none=True)
            batch = runtime.batch(batch)
            gates = [torch.ones(arch.num_heads, requires_grad=True, device=dev) for _ in range(arch.num_layers)]
            with runtime.autocast():
                out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], head_gates=gates)
                loss = hard_label_loss(out.logits, batch["labels"], is_regression)
            loss.backward()
            with torch.no_grad():
                for li, layer in enumerate(layers):
                    g = gates[li].grad.cpu()
                    if grads == "cumulative":
                        gate_grad_sum[li] += g
                        g = gate_grad_sum[li]
                    head[li] += g.abs()
                    w1, b1 = layer.intermediate.dense.weight, layer.intermediate.dense.bias  # (F, H), (F,)
                    w2 = layer.output.dense.weight  # (H, F)
                    ffn[li] += ((w1 * w1.grad).sum(dim=1) + b1 * b1.grad).abs().cpu()
                    ffn[li] += (w2 * w2.grad).sum(dim=0).abs().cpu()
            n += int(batch["input_ids"].shape[0])
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if n == 0:
        raise ValueError("no examples to compute importance on: the importance split is empty")
    return head, ffn, n


@torch.no_grad()
def rewire(model: ElasticBertForSequenceClassification, head_importance: torch.Tensor,
           ffn_importance: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
    """Reorder heads and FFN neurons of every layer in place, most important first.

    Q/K/V rows move in blocks of head_dim with the attention output projection's columns; FFN-in rows
    (and bias) move with FFN-out columns. The full model computes the same function afterwards.

    Args:
        model: the elastic model to modify.
        head_importance: (L, num_heads) scores in the current order.
        ffn_importance: (L, intermediate_size) scores in the current order.

    Returns:
        (head_order, ffn_order): per layer, new position -> old index.
    """
    arch = model.arch
    if tuple(head_importance.shape) != (arch.num_layers, arch.num_heads):
        raise ValueError(f"head importance has shape {tuple(head_importance.shape)}, "
                         f"expected {(arch.num_layers, arch.num_heads)}")
    if tuple(ffn_importance.shape) != (arch.num_layers, arch.intermediate_size):
        raise ValueError(f"FFN importance has shape {tuple(ffn_importance.shape)}, "
                         f"expected {(arch.num_layers, arch.intermediate_size)}")
    hd = arch.head_dim
    head_orders, ffn_orders = [], []
    for li, layer in enumerate(model.bert.encoder.layer):
        # stable sort so that ties keep their original order (reproducible orders)
        h_order = torch.sort(-head_importance[li], stable=True).indices
        rows = (h_order[:, None] * hd + torch.arange(hd)[None, :]).reshape(-1)  # (num_heads*hd,)
        sa = layer.attention.self
        for lin in (sa.query, sa.key, sa.value):
            lin.weight.copy_(lin.weight[rows])
            lin.bias.copy_(lin.bias[rows])
        ao = layer.attention.output.dense
        ao.weight.copy_(ao.weight[:, rows])
        f_order = torch.sort(-ffn_importance[li], stable=True).indices
        inter, out = layer.intermediate.dense, layer.output.dense
        inter.weight.copy_(inter.weight[f_order])
        inter.bias.copy_(inter.bias[f_order])
        out.weight.copy_(out.weight[:, f_order])
        head_orders.append(h_order.tolist())
        ffn_orders.append(f_order.tolist())
    return head_orders, ffn_orders


def importance_record(split: str, n_examples: int, head: torch.Tensor, ffn: torch.Tensor,
                      head_order: list[list[int]], ffn_order: list[list[int]]) -> dict[str, Any]:
    """The `importance.json` content (docs/ARTIFACTS.md): scores in original unit order.

    Args:
        split: where the scores were computed ("train-heldout" or "dev").
        n_examples: examples used.
        head, ffn: scores (L, num_heads), (L, intermediate_size).
        head_order, ffn_order: per layer, new position -> old index.

    Returns:
        A JSON-ready dict.
    """
    return {"split": split, "n_examples": int(n_examples), "head": head.tolist(), "ffn": ffn.tolist(),
            "head_order": head_order, "ffn_order": ffn_order}
