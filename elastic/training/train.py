"""The training stages (teacher, DynaBERT_W, DynaBERT, hard-label fine-tuning): which sub-networks each step
trains and their losses; the loop itself (optimizer, schedule, checkpoints, selection, DDP) is
`elastic.training.loop.train_loop`, shared with the baseline students.

Each step: every planned sub-network runs forward + backward on the same batch, gradients accumulate
(one word-embedding backward per step, `SharedWordLookup`), then one optimizer step. Device and precision
come in as one `elastic.training.device.Runtime`: forward passes run under its autocast, backward through its `Amp`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from elastic.model.config import GRID_DEPTHS, GRID_WIDTHS, SubnetConfig
from elastic.data.tasks import EncodedSplit
from elastic.training.device import CPU_FP32, Amp, Runtime
from elastic.training.loop import LoopConfig, train_loop
from elastic.training.options import SubnetForward
from elastic.training.losses import distillation_loss, hard_label_loss, matched_teacher_indices
from elastic.model.modeling import ElasticBertForSequenceClassification, ElasticOutput
from elastic.training.train_state import TrainResult


class Stage(str, Enum):
    """Training stages, in pipeline order (values are the run-directory folder names)."""

    TEACHER = "teacher"
    STAGE1 = "stage1"
    STAGE2 = "stage2"
    STAGE3 = "stage3"


# (logit weight, hidden weight) of the distillation stages, as in the released code.
LOSS_WEIGHTS = {Stage.STAGE1: (1.0, 0.1), Stage.STAGE2: (1.0, 1.0)}


@dataclass
class Planned:
    """One sub-network of a step and the teacher config it is distilled from (None: hard labels)."""

    student: SubnetConfig
    teacher: Optional[SubnetConfig]


def uniform_plan(stage: Stage, arch, cfg: LoopConfig) -> list[Planned]:
    """The fixed sub-networks of every step of a stage (before random extras)."""
    full = SubnetConfig.full(arch)
    if stage is Stage.TEACHER:
        return [Planned(full, None)]
    depths = (1.0,) if stage is Stage.STAGE1 else cfg.depths
    plan = []
    for d in depths:
        for w in cfg.widths:
            s = SubnetConfig.uniform(arch, w, d)
            if stage is Stage.STAGE3:
                plan.append(Planned(s, None))
            elif stage is Stage.STAGE2 and cfg.teacher_width == "matched":
                plan.append(Planned(s, SubnetConfig.uniform(arch, w, 1.0)))
            else:
                plan.append(Planned(s, full))
    return plan


def step_plan(stage: Stage, arch, cfg: LoopConfig, rng: random.Random) -> list[Planned]:
    """Sub-networks of one step: the uniform ones, plus (stage 2) the smallest grid one and K random."""
    plan = uniform_plan(stage, arch, cfg)
    if stage is Stage.STAGE2 and cfg.extra_subnets:
        full = SubnetConfig.full(arch)
        smallest = SubnetConfig.uniform(arch, min(GRID_WIDTHS), min(GRID_DEPTHS))
        if all(p.student != smallest for p in plan):
            plan.append(Planned(smallest, full))
        plan += [Planned(SubnetConfig.random(arch, rng), full) for _ in range(cfg.extra_subnets)]
    return plan


@dataclass(frozen=True)
class LossWeights:
    """Weights of a distillation step's loss terms: soft-CE on logits, hidden MSE, hard-label CE."""

    logit: float
    hidden: float
    hard: float = 0.0


def loss_weights(stage: Stage, loop: LoopConfig) -> LossWeights:
    """The stage's weights (the released code's unless `loop` overrides the hidden or hard weight)."""
    w_logit, w_hidden = LOSS_WEIGHTS.get(stage, (1.0, 1.0))
    return LossWeights(w_logit, w_hidden if loop.hidden_weight is None else loop.hidden_weight, loop.hard_weight)


def subnet_name(cfg: SubnetConfig, arch) -> str:
    """`w<width>_d<depth>` for a uniform grid sub-network, else `cfg-<hash>` (names in logs and charts)."""
    for d in GRID_DEPTHS:
        for w in GRID_WIDTHS:
            if SubnetConfig.uniform(arch, w, d) == cfg:
                return f"w{w}_d{d}"
    return f"cfg-{cfg.hash}"


class SharedWordLookup:
    """One word-embedding lookup per step, shared by every sub-network of the step.

    Each sub-network's backward through its own lookup would build a full (vocab, H) gradient and add it to the
    table's (about a fifth of a stage-2 step on MiniLM at batch 32 x 64 tokens, 12 sub-networks). Here the
    sub-networks read one (B, S, H) leaf; their backward passes add into its small gradient, and `flush` runs
    the embedding backward once: the same sum, in another order.
    """

    def __init__(self, model: ElasticBertForSequenceClassification, input_ids: torch.Tensor) -> None:
        self.table = model.bert.embeddings.word_embeddings
        self.ids = input_ids
        self.leaf = F.embedding(input_ids, self.table.weight.detach(), self.table.padding_idx)
        self.leaf.requires_grad_(self.table.weight.requires_grad)

    def flush(self) -> None:
        """Add the step's gradient of the lookup to the table's `.grad` (nothing when no backward ran)."""
        g = self.leaf.grad
        if g is None:
            return
        pad = -1 if self.table.padding_idx is None else self.table.padding_idx
        full = torch.ops.aten.embedding_dense_backward(g, self.ids, self.table.num_embeddings, pad, False)
        w = self.table.weight
        w.grad = full if w.grad is None else w.grad.add_(full)
        self.leaf.grad = None


def run_step(student: ElasticBertForSequenceClassification,
             teacher: Optional[ElasticBertForSequenceClassification], batch: dict[str, torch.Tensor],
             plan: list[Planned], stage: Stage, *, is_regression: bool, scale: float = 1.0,
             weights: Optional[LossWeights] = None, amp: Optional[Amp] = None,
             subnet_forward: SubnetForward = "shared-prefix") -> dict[str, Any]:
    """Forward + backward of every planned sub-network on one batch; gradients accumulate in `.grad`.

    Args:
        student: the model being trained (train mode).
        teacher: the frozen teacher (eval mode) for distillation stages, else None.
        batch: this rank's batch.
        plan: sub-networks of the step.
        stage: picks the loss.
        is_regression: regression drops the logit loss / uses MSE on labels.
        scale: multiplies every loss (this rank's share of the global batch).
        weights: loss weights of distillation (default: the stage's, as the released code).
        amp: device/precision helper: forward passes run under its autocast, backward through its
            grad scaler (None: fp32, plain backward).
        subnet_forward: "separate" runs each sub-network on its own (the released code); "shared-prefix"
            computes the embedding output and each layer prefix once per group of sub-networks whose first
            layer is the same (`SharedPrefixForward`): fewer layer passes, and the sub-networks sharing a
            computation share its dropout masks. Without dropout both give the same gradients.

    Returns:
        {"loss": sum over sub-networks, "logit": ..., "hidden": ..., "hard": ...} as floats (unscaled),
        and "per_subnet": one {"loss", "logit", "hidden", "hard"} dict per planned sub-network.
    """
    ids = batch["input_ids"]
    totals: dict[str, Any] = {"loss": 0.0, "logit": 0.0, "hidden": 0.0, "hard": 0.0, "per_subnet": []}
    if ids.shape[0] == 0:
        return totals
    w = weights or LossWeights(*LOSS_WEIGHTS.get(stage, (1.0, 1.0)))
    teacher_cache: dict[SubnetConfig, Any] = {}
    amp = amp or CPU_FP32.amp()
    words = SharedWordLookup(student, ids)
    by_plan: dict[int, dict[str, float]] = {}

    def add(parts: dict[str, float]) -> None:
        for k in ("loss", "logit", "hidden", "hard"):
            totals[k] += parts.get(k, 0.0)
        totals["per_subnet"].append(parts)
    if subnet_forward == "shared-prefix":
        for group in SharedPrefixForward.groups(plan):
            losses = []
            with amp.runtime.autocast():
                shared = SharedPrefixForward(student, batch, words.leaf)
                for p in group:
                    out = shared.output(p.student, with_hidden=p.teacher is not None)
                    loss, parts = _loss_of(out, p, student, teacher, batch, stage, teacher_cache, w, is_regression)
                    parts["loss"] = float(loss.detach())
                    losses.append(loss)
                    by_plan[id(p)] = parts
            amp.backward(torch.stack(losses).sum() * scale)  # one backward through the group's shared layers
            del shared
        for p in plan:  # per-sub-network parts in plan order, as the separate path logs them
            add(by_plan[id(p)])
    else:
        for p in plan:
            with amp.runtime.autocast():
                loss, parts = _planned_loss(student, teacher, batch, p, stage, teacher_cache, w, is_regression,
                                            words.leaf)
            amp.backward(loss * scale)
            parts["loss"] = float(loss.detach())
            add(parts)
    words.flush()
    return totals


def _planned_loss(student: ElasticBertForSequenceClassification,
                  teacher: Optional[ElasticBertForSequenceClassification], batch: dict[str, torch.Tensor],
                  p: Planned, stage: Stage, teacher_cache: dict[SubnetConfig, Any], w: LossWeights,
                  is_regression: bool, words: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward pass and loss of one planned sub-network, with its loss parts (floats) for logging."""
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    out = student(ids, mask, types, subnet=p.student, output_hidden_states=p.teacher is not None, word_embeds=words)
    return _loss_of(out, p, student, teacher, batch, stage, teacher_cache, w, is_regression)


def _loss_of(out: ElasticOutput, p: Planned, student: ElasticBertForSequenceClassification,
             teacher: Optional[ElasticBertForSequenceClassification], batch: dict[str, torch.Tensor], stage: Stage,
             teacher_cache: dict[SubnetConfig, Any], w: LossWeights,
             is_regression: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one planned sub-network from its output (hard labels, or distillation from the teacher
    config `p.teacher`, whose forward runs once per step per teacher config)."""
    if p.teacher is None:
        loss = hard_label_loss(out.logits, batch["labels"], is_regression)
        return loss, {"hard": float(loss.detach())}
    if p.teacher not in teacher_cache:  # one teacher forward per step per teacher width
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        with torch.no_grad():
            teacher_cache[p.teacher] = teacher(ids, mask, types, subnet=p.teacher, output_hidden_states=True)
    t = teacher_cache[p.teacher]
    loss, parts = distillation_loss(
        out.logits, out.hidden_states, t.logits, t.hidden_states,
        matched_teacher_indices(p.student.layers, student.arch.num_layers),
        logit_weight=w.logit, hidden_weight=w.hidden, is_regression=is_regression)
    if w.hard:
        hard = hard_label_loss(out.logits, batch["labels"], is_regression)
        loss = loss + w.hard * hard
        parts["hard"] = float(hard.detach())
    return loss, parts


class SharedPrefixForward:
    """The outputs of one group of sub-networks (the same first layer: heads and neurons) with each shared
    computation run once: the embedding output and every layer prefix (layer, heads, neurons, ...).

    The group's losses are then summed and back-propagated together, so a shared layer's backward also runs
    once, with the sum of its users' gradients. The sub-networks of a group share those computations' dropout
    masks; different groups draw their own, as separate passes do (stage 1, one sub-network per group, is
    unchanged).
    """

    def __init__(self, student: ElasticBertForSequenceClassification, batch: dict[str, torch.Tensor],
                 words: torch.Tensor) -> None:
        self.student = student
        self.emb, self.mask = student.embed(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                            words)
        self.memo: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def groups(plan: list[Planned]) -> list[list[Planned]]:
        """The plan's sub-networks grouped by their first layer (plan order kept within and between groups)."""
        out: dict[tuple, list[Planned]] = {}
        for p in plan:
            c = p.student
            out.setdefault((c.layers[0], c.heads[0], c.ffn[0]) if c.layers else (), []).append(p)
        return list(out.values())

    def output(self, cfg: SubnetConfig, *, with_hidden: bool) -> ElasticOutput:
        """Logits (and hidden states: the embedding output, then each kept layer's) of sub-network `cfg`."""
        cfg.validate(self.student.arch)
        x, hidden, key = self.emb, [self.emb], ()
        for li, h, n in zip(cfg.layers, cfg.heads, cfg.ffn):
            key += ((li, h, n),)
            if key not in self.memo:
                self.memo[key] = self.student.run_layer(x, self.mask, li, h, n)[0]
            x = self.memo[key]
            hidden.append(x)
        return ElasticOutput(logits=self.student.logits(x), hidden_states=tuple(hidden) if with_hidden else None)


# ---- checkpoints ---------------------------------------------------------------------------------
class StageTrainee:
    """A stage's step for `train_loop`: its planned sub-networks on the batch, their losses summed."""

    select_tag: dict[str, Any] = {}

    def __init__(self, student: ElasticBertForSequenceClassification,
                 teacher: Optional[ElasticBertForSequenceClassification], stage: Stage, loop: LoopConfig,
                 is_regression: bool) -> None:
        self.student, self.teacher, self.stage, self.loop = student, teacher, stage, loop
        self.is_regression, self.name = is_regression, stage.value
        self.weights = loss_weights(stage, loop)
        self.plan: list[Planned] = []

    def step(self, step: int, batch: dict[str, torch.Tensor], scale: float, amp: Amp,
             rng: random.Random) -> tuple[dict[str, Any], int]:
        self.plan = step_plan(self.stage, self.student.arch, self.loop, rng)
        last = run_step(self.student, self.teacher, batch, self.plan, self.stage, is_regression=self.is_regression,
                        scale=scale, weights=self.weights, amp=amp, subnet_forward=self.loop.subnet_forward)
        return last, len(self.plan)

    def record(self, done: int, lr: float, last: dict[str, Any], rate: float) -> dict[str, Any]:
        arch = self.student.arch
        record = {"step": done, "loss": round(last["loss"], 6), "lr": lr, "subnets_per_s": round(rate, 3),
                  "logit_loss": round(last["logit"], 6), "hidden_loss": round(last["hidden"], 6),
                  "subnets": len(self.plan),
                  "subnet_losses": {subnet_name(p.student, arch): {k: round(v, 6) for k, v in parts.items()}
                                    for p, parts in zip(self.plan, last["per_subnet"])}}
        if last["hard"]:
            record["hard_loss"] = round(last["hard"], 6)
        return record


def train_stage(student: ElasticBertForSequenceClassification,
                teacher: Optional[ElasticBertForSequenceClassification], stage: Stage, data: EncodedSplit,
                loop: LoopConfig, *, is_regression: bool, ckpt_dir: Optional[Path] = None,
                log_path: Optional[Path] = None, resume: bool = False, progress: bool = True,
                on_step: Optional[Callable[[int], None]] = None,
                eval_fn: Optional[Callable[[int], dict[str, Any]]] = None,
                select_fn: Optional[Callable[[int], float | dict[str, float]]] = None,
                runtime: Runtime = CPU_FP32) -> TrainResult:
    """Train `student` for one stage, checkpointing and logging as it goes (`elastic.training.loop.train_loop`).

    Args:
        student: the model to train (modified in place).
        teacher: the frozen teacher of distillation stages (None for TEACHER / STAGE3).
        stage: which losses and sub-networks.
        data: the training split.
        loop: optimizer, schedule and sub-network options.
        is_regression: regression task.
        ckpt_dir, log_path, resume, progress, on_step, eval_fn, select_fn: as `train_loop`'s (select_fn may
            return per-sub-network metrics, whose sum is the score).
        runtime: device and precision (models are moved there; default cpu fp32).

    Returns:
        Steps done, wall-clock seconds of training (resumed runs add their earlier seconds), last losses.
    """
    if stage in (Stage.STAGE1, Stage.STAGE2) and teacher is None:
        raise ValueError(f"{stage.value} distils from a teacher; none was given")
    runtime.module(student, teacher)
    if teacher is not None:
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    return train_loop(student, params, data, loop, StageTrainee(student, teacher, stage, loop, is_regression),
                      ckpt_dir=ckpt_dir, log_path=log_path, resume=resume, progress=progress, on_step=on_step,
                      eval_fn=eval_fn, select_fn=select_fn, runtime=runtime)
