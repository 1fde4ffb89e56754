"""Baseline recipes measured against DynaBERT: DistilBERT- and TinyBERT-style task distillation.

Losses are pure functions. `train_baseline` trains a `Student` with a typed `Objective` through the same loop
as the DynaBERT stages (`elastic.training.loop.train_loop`: seeded, resume-exact data order, linear decay, checkpoints
and resume, model selection); a `StudentTrainee` is what differs: one objective per step.

- DistilBERT (Sanh et al. 2019): alpha * T^2 * soft-CE(T) + beta * hard CE + gamma * cosine loss between
  student and teacher final hidden states (real tokens only); defaults alpha 5.0, beta 2.0 (DistilBERT's
  MLM weight, here on the task labels), gamma 1.0, T 2.0 as in DistilBERT's training script.
- TinyBERT (Jiao et al. 2020), task distillation: phase 1 intermediate layers (MSE of embedding outputs,
  of hidden states, both through one learned `nn.Linear(student_hidden, teacher_hidden)` that exists
  ONLY when the sizes differ, and of attention probabilities), phase 2 prediction layer (soft-CE at T=1).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from elastic.data.tasks import EncodedSplit
from elastic.training.device import CPU_FP32, Amp, Runtime
from elastic.training.losses import hard_label_loss
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.rundir import BASELINES_CSV, CSV_SCHEMAS
from elastic.training.students import Student
from elastic.training.loop import LoopConfig, train_loop
from elastic.training.train_state import TrainResult

BASELINE_COLUMNS: tuple[str, ...] = CSV_SCHEMAS[BASELINES_CSV].columns
PROJECTION_FILE = "projection.safetensors"


class Recipe(str, Enum):
    """Baseline recipes (values are the `recipe` column of baselines.csv)."""

    DISTILBERT = "distilbert"
    TINYBERT = "tinybert"
    INT8 = "int8"
    DYNABERT_INT8 = "dynabert_int8"


class Objective(str, Enum):
    """What one training phase optimises."""

    DISTILBERT = "distilbert"
    TINYBERT_INTERMEDIATE = "tinybert-intermediate"
    TINYBERT_PREDICTION = "tinybert-prediction"


@dataclass(frozen=True)
class DistilWeights:
    """DistilBERT loss weights: soft (alpha), hard (beta), cosine (gamma); temperature T (unitless)."""

    soft: float = 5.0
    hard: float = 2.0
    cosine: float = 1.0
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if min(self.soft, self.hard, self.cosine) < 0:
            raise ValueError("DistilBERT loss weights must be >= 0")


@dataclass(frozen=True)
class TinyWeights:
    """TinyBERT weights of the intermediate terms and the prediction-layer temperature (1.0 in TinyBERT)."""

    embedding: float = 1.0
    hidden: float = 1.0
    attention: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


# ---- losses (pure) -------------------------------------------------------------------------------
def soft_ce_t(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft cross-entropy at temperature T: -sum softmax(t/T) log_softmax(s/T), batch mean (no T^2)."""
    target = (teacher_logits.detach() / temperature).softmax(dim=-1)
    return (-(target * (student_logits / temperature).log_softmax(dim=-1)).sum(dim=-1)).mean()


def cosine_hidden_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """DistilBERT's cosine loss: mean over real (unpadded) tokens of 1 - cos(student, teacher).

    Args:
        student, teacher: (B, S, H) hidden states of the same size; teacher treated as constant.
        attention_mask: (B, S) 1 for real tokens.
    """
    keep = attention_mask.bool()
    cos = F.cosine_similarity(student[keep], teacher.detach()[keep], dim=-1)  # (n_tokens,)
    return (1.0 - cos).mean()


def distilbert_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    student_last: torch.Tensor, teacher_last: torch.Tensor, attention_mask: torch.Tensor,
                    weights: DistilWeights, *, is_regression: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha * T^2 * soft-CE(T) + beta * hard CE + gamma * cosine(final hidden states).

    Regression tasks replace the soft-CE by the MSE to the teacher's score (no temperature).

    Returns:
        (loss, {"soft", "hard", "cosine"} floats for logging).
    """
    t = weights.temperature
    if is_regression:
        soft = F.mse_loss(student_logits.view(-1), teacher_logits.detach().view(-1))
        soft_w = weights.soft
    else:
        soft, soft_w = soft_ce_t(student_logits, teacher_logits, t), weights.soft * t * t
    hard = hard_label_loss(student_logits, labels, is_regression)
    cos = cosine_hidden_loss(student_last, teacher_last, attention_mask)
    loss = soft_w * soft + weights.hard * hard + weights.cosine * cos
    return loss, {"soft": float(soft.detach()), "hard": float(hard.detach()), "cosine": float(cos.detach())}


def needs_projection(student_hidden: int, teacher_hidden: int) -> bool:
    """TinyBERT's W_h is needed only when the hidden sizes differ."""
    return student_hidden != teacher_hidden


def make_projection(student_hidden: int, teacher_hidden: int, seed: int = 0) -> Optional[nn.Linear]:
    """`nn.Linear(student_hidden, teacher_hidden)` when the sizes differ, else None (nothing to learn)."""
    if not needs_projection(student_hidden, teacher_hidden):
        return None
    g = torch.Generator().manual_seed(seed)
    proj = nn.Linear(student_hidden, teacher_hidden)
    with torch.no_grad():
        proj.weight.normal_(0.0, 0.02, generator=g)
        proj.bias.zero_()
    return proj


def attention_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE of attention probabilities (B, h, S, S).

    A student with fewer heads (a width-cut sub-network of the rewired teacher) is compared with the
    teacher's first h heads, which are the very heads it was cut from; a student with more heads than the
    teacher (a foreign checkpoint) is compared head-averaged.
    """
    hs, ht = student.shape[1], teacher.shape[1]
    t = teacher.detach()
    if hs <= ht:
        return F.mse_loss(student, t[:, :hs])
    return F.mse_loss(student.mean(dim=1), t.mean(dim=1))


def tinybert_intermediate_loss(student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
                               student_attn: Sequence[torch.Tensor], teacher_attn: Sequence[torch.Tensor],
                               hidden_map: Sequence[int], attention_map: Sequence[int],
                               projection: Optional[nn.Module], weights: TinyWeights = TinyWeights(),
                               ) -> tuple[torch.Tensor, dict[str, float]]:
    """TinyBERT's intermediate-layer loss: embedding MSE + hidden MSEs + attention MSEs.

    Args:
        student_hidden / teacher_hidden: embedding output first, then each layer's output, (B, S, H).
        student_attn / teacher_attn: one (B, h, S, S) probability tensor per layer.
        hidden_map: teacher hidden index per student hidden state (hidden_map[0] = 0: the embeddings).
        attention_map: teacher layer per student layer.
        projection: maps student hidden states to the teacher's size; None when the sizes are equal.

    Returns:
        (loss, {"embedding", "hidden", "attention"} floats).
    """
    if len(student_hidden) != len(hidden_map) or len(student_attn) != len(attention_map):
        raise ValueError(f"maps do not fit the student: {len(student_hidden)} hidden states / {len(hidden_map)} "
                         f"indices, {len(student_attn)} attention maps / {len(attention_map)} indices")
    if projection is None and student_hidden[0].shape[-1] != teacher_hidden[0].shape[-1]:
        raise ValueError(f"student hidden size {student_hidden[0].shape[-1]} != teacher "
                         f"{teacher_hidden[0].shape[-1]}: a projection is needed")
    fit = (lambda x: x) if projection is None else projection
    emb = F.mse_loss(fit(student_hidden[0]), teacher_hidden[hidden_map[0]].detach())
    hid = student_hidden[0].new_zeros(())
    for s, ti in zip(student_hidden[1:], hidden_map[1:]):
        hid = hid + F.mse_loss(fit(s), teacher_hidden[ti].detach())
    att = student_hidden[0].new_zeros(())
    for s, ti in zip(student_attn, attention_map):
        att = att + attention_mse(s, teacher_attn[ti])
    loss = weights.embedding * emb + weights.hidden * hid + weights.attention * att
    return loss, {"embedding": float(emb.detach()), "hidden": float(hid.detach()), "attention": float(att.detach())}


def tinybert_prediction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                             *, is_regression: bool) -> torch.Tensor:
    """TinyBERT's prediction-layer loss: soft-CE at temperature T (MSE to the teacher for regression)."""
    if is_regression:
        return F.mse_loss(student_logits.view(-1), teacher_logits.detach().view(-1))
    return soft_ce_t(student_logits, teacher_logits, temperature)


# ---- one step ------------------------------------------------------------------------------------
def objective_loss(objective: Objective, student: Student, teacher: ElasticBertForSequenceClassification,
                   batch: Mapping[str, torch.Tensor], *, is_regression: bool, projection: Optional[nn.Module] = None,
                   distil: DistilWeights = DistilWeights(), tiny: TinyWeights = TinyWeights(),
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward the teacher (no grad) and the student on one batch and return the objective's loss.

    Args:
        objective: which loss.
        student: the student (its model in train mode for training).
        teacher: the frozen teacher at full size.
        batch: input_ids, attention_mask, token_type_ids, labels.
        projection: TinyBERT's W_h (None when hidden sizes are equal).

    Returns:
        (loss tensor, logged parts).
    """
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    want_attn = objective is Objective.TINYBERT_INTERMEDIATE
    want_hidden = objective is not Objective.TINYBERT_PREDICTION
    with torch.no_grad():
        t = teacher(ids, mask, types, output_hidden_states=want_hidden, output_attentions=want_attn)
    s = student.model(ids, mask, types, subnet=student.subnet, output_hidden_states=want_hidden,
                      output_attentions=want_attn)
    if objective is Objective.DISTILBERT:
        return distilbert_loss(s.logits, t.logits, batch["labels"], s.hidden_states[-1],
                               t.hidden_states[student.hidden_map[-1]], mask, distil, is_regression=is_regression)
    if objective is Objective.TINYBERT_INTERMEDIATE:
        return tinybert_intermediate_loss(s.hidden_states, t.hidden_states, s.attentions, t.attentions,
                                          student.hidden_map, student.attention_map, projection, tiny)
    loss = tinybert_prediction_loss(s.logits, t.logits, tiny.temperature, is_regression=is_regression)
    return loss, {"soft": float(loss.detach())}


class StudentTrainee:
    """A student's step for `elastic.training.loop.train_loop`: one phase's objective on the batch."""

    def __init__(self, student: Student, teacher: ElasticBertForSequenceClassification, objective: Objective,
                 is_regression: bool, projection: Optional[nn.Module], distil: DistilWeights, tiny: TinyWeights,
                 runtime: Runtime) -> None:
        self.student, self.teacher, self.objective = student, teacher, objective
        self.is_regression, self.projection, self.distil, self.tiny = is_regression, projection, distil, tiny
        self.runtime = runtime
        self.name = objective.value
        self.select_tag = {"objective": objective.value}

    def step(self, step: int, batch: dict[str, torch.Tensor], scale: float, amp: Amp,
             rng: random.Random) -> tuple[dict[str, Any], int]:
        with self.runtime.autocast():
            loss, parts = objective_loss(self.objective, self.student, self.teacher, batch,
                                         is_regression=self.is_regression, projection=self.projection,
                                         distil=self.distil, tiny=self.tiny)
        amp.backward(loss * scale if scale != 1.0 else loss)
        return {"loss": float(loss.detach()), **parts}, 1

    def record(self, done: int, lr: float, last: dict[str, Any], rate: float) -> dict[str, Any]:
        return {"step": done, "objective": self.objective.value, "lr": lr, **{k: round(v, 6) for k, v in last.items()}}


def train_baseline(student: Student, teacher: ElasticBertForSequenceClassification, objective: Objective,
                   data: EncodedSplit, loop: LoopConfig, *, is_regression: bool,
                   projection: Optional[nn.Module] = None, distil: DistilWeights = DistilWeights(),
                   tiny: TinyWeights = TinyWeights(), ckpt_dir: Optional[Path] = None,
                   log_path: Optional[Path] = None, resume: bool = False, progress: bool = True,
                   select_fn: Optional[Callable[[int], float]] = None, runtime: Runtime = CPU_FP32) -> TrainResult:
    """Train a student for one phase with the stages' loop (`elastic.training.loop.train_loop`): AdamW, linear decay,
    clipped, seeded batches, checkpoints, selection.

    Args:
        student: trained in place (and `projection`, when given).
        teacher: frozen, eval mode.
        objective: the phase's loss.
        data: training split.
        loop: total_steps, batch_size, lr, warmup, weight decay, grad_clip, seed, save_every, log_every.
        ckpt_dir: resumable checkpoint folder (`elastic.training.train_state` layout + the projection).
        log_path: JSONL log, one line per `log_every` steps: step, objective, lr and the loss parts.
        resume: continue from `ckpt_dir` when it holds a checkpoint.
        select_fn: model selection, as in `elastic.training.train.train_stage`: step -> score (higher is better) every
            `loop.select_every` steps and at the last step; the phase ends on the best-scoring weights (kept in
            `best_dir(ckpt_dir)` for resume).
        runtime: device and precision (models are moved there; default cpu fp32).

    Returns:
        `TrainResult` (steps, wall-clock seconds, last logged parts; the selected step and score).
    """
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    runtime.module(student.model, teacher, projection)
    params = [p for p in student.model.parameters() if p.requires_grad]
    if projection is not None:
        params += list(projection.parameters())
    trainee = StudentTrainee(student, teacher, objective, is_regression, projection, distil, tiny, runtime)
    return train_loop(student.model, params, data, loop, trainee, ckpt_dir=ckpt_dir, log_path=log_path,
                      resume=resume, progress=progress, select_fn=select_fn, runtime=runtime, extra=projection,
                      extra_file=PROJECTION_FILE)


# ---- baselines.csv -------------------------------------------------------------------------------
def baseline_row(**values: Any) -> dict[str, Any]:
    """One `baselines.csv` row: exactly `BASELINE_COLUMNS` (missing ones empty).

    Raises:
        ValueError: an unknown column or an unknown recipe.
    """
    unknown = set(values) - set(BASELINE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown baselines.csv column(s) {sorted(unknown)}; columns are {list(BASELINE_COLUMNS)}")
    recipe = values.get("recipe")
    values["recipe"] = Recipe(recipe.value if isinstance(recipe, Recipe) else recipe).value
    return {c: ("" if values.get(c) is None else values.get(c, "")) for c in BASELINE_COLUMNS}


def append_baselines(run_dir: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Append rows to `<run_dir>/baselines.csv` (created with its header when absent).

    A row with the same (name, scenario) as an existing one replaces it, so re-running a baseline does not
    duplicate it. Written atomically.

    Returns:
        The CSV path.
    """
    path = Path(run_dir) / BASELINES_CSV
    new = pd.DataFrame([baseline_row(**dict(r)) for r in rows], columns=list(BASELINE_COLUMNS)).astype(str)
    if path.exists():
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in BASELINE_COLUMNS if c not in old.columns]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}: it was not written by `dynabert baselines`; "
                             "move it away and run again")
        key_new = set(zip(new["name"], new["scenario"]))
        old = old[[(n, s) not in key_new for n, s in zip(old["name"], old["scenario"])]][list(BASELINE_COLUMNS)]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    new.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
