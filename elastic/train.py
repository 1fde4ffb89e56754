"""One training loop for every stage (teacher, DynaBERT_W, DynaBERT, hard-label fine-tuning).

Each step: every planned sub-network runs forward + backward on the same batch, gradients
accumulate, then ONE clipped AdamW step with a linearly decaying learning rate. The data order is a
pure function of (seed, epoch), so a resumed run consumes exactly the batches an uninterrupted run
would. Multi-process (torchrun; gloo on CPU, NCCL on CUDA): every rank collates the same global batch
(same padding), takes its rows `rank::world`, scales its loss by its share of the batch, and gradients
are summed by all-reduce, so the update equals the single-process one. Device and precision come in as
one `elastic.device.Runtime`: forward passes run under its autocast, backward and step through its `Amp`.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional, get_args

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from elastic.config import GRID_DEPTHS, GRID_WIDTHS, SubnetConfig
from elastic.data import EncodedSplit, PadCollator
from elastic.device import CPU_FP32, Amp, Runtime
from elastic.losses import distillation_loss, hard_label_loss, matched_teacher_indices
from elastic.model import ElasticBertForSequenceClassification
from elastic.options import DEFAULT_LR, TEACHER_WIDTHS, TeacherWidth
from elastic.weights import load_checkpoint, save_checkpoint


class Stage(str, Enum):
    """Training stages, in pipeline order (values are the run-directory folder names)."""

    TEACHER = "teacher"
    STAGE1 = "stage1"
    STAGE2 = "stage2"
    STAGE3 = "stage3"


# (logit weight, hidden weight) of the distillation stages, as in the released code.
LOSS_WEIGHTS = {Stage.STAGE1: (1.0, 0.1), Stage.STAGE2: (1.0, 1.0)}


Batching = Literal["random", "length-grouped"]
BATCHINGS: tuple[str, ...] = get_args(Batching)
MEGABATCH = 50  # length-grouped batching sorts windows of this many batches (as transformers' group_by_length)

# Where AdamW adds eps: "torch" to the bias-corrected sqrt(v) (torch.optim.AdamW); "released" to the raw
# sqrt(v), as transformers 2.x's AdamW of the released code (a larger effective eps in the first steps).
AdamEps = Literal["torch", "released"]
ADAM_EPS_MODES: tuple[str, ...] = ("torch", "released")
ADAM_EPS = 1e-8


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed with the given options."""


@dataclass(frozen=True)
class LoopConfig:
    """Options of one training stage.

    Attributes:
        total_steps: optimizer steps of the stage.
        batch_size: global batch (split across ranks under torchrun).
        lr: peak learning rate; decays linearly to 0 at `total_steps`.
        warmup_steps: linear warm-up steps (0 as in DynaBERT).
        weight_decay: AdamW weight decay (0.0 as in the released code).
        grad_clip: max global gradient norm.
        seed: data order, dropout and random sub-network sampling.
        save_every: checkpoint every this many steps (0 = only at the end).
        log_every: JSONL/progress logging period in steps.
        widths / depths: the uniform sub-networks trained every step.
        extra_subnets: stage 2 only: add the smallest grid sub-network and this many random per-layer ones.
        teacher_width: stage 2: "full" (released code) or "matched" (paper) teacher width.
        select_every: with a selection function, score the model every this many steps (and at the
            last step) and end the stage on the best-scoring weights (0 = keep the last weights).
        pad_to_length: 0 pads each batch to its longest example (ours); N pads every batch to N tokens,
            as the released code does (`max_seq_length`): padded positions count in the hidden MSE,
            so the losses differ.
        adam_eps: "torch" (torch.optim.AdamW) or "released" (eps added before the bias correction,
            as transformers 2.x's AdamW: the update of parameters with tiny gradients differs).
    """

    total_steps: int
    batch_size: int = 32
    lr: float = DEFAULT_LR
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 42
    save_every: int = 0
    log_every: int = 10
    widths: tuple[float, ...] = GRID_WIDTHS
    depths: tuple[float, ...] = GRID_DEPTHS
    extra_subnets: int = 0
    teacher_width: TeacherWidth = "full"
    select_every: int = 0
    hidden_weight: Optional[float] = None
    hard_weight: float = 0.0
    batching: Batching = "random"
    pad_to_length: int = 0
    adam_eps: AdamEps = "torch"

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"the stage needs at least 1 step, got total_steps={self.total_steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.teacher_width not in TEACHER_WIDTHS:
            raise ValueError(f"teacher_width must be 'full' or 'matched', got '{self.teacher_width}'")
        if self.extra_subnets < 0:
            raise ValueError(f"extra_subnets must be >= 0, got {self.extra_subnets}")
        if self.hidden_weight is not None and self.hidden_weight < 0:
            raise ValueError(f"hidden_weight must be >= 0, got {self.hidden_weight}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, got '{self.batching}'")
        if self.hard_weight < 0:
            raise ValueError(f"hard_weight must be >= 0, got {self.hard_weight}")
        if self.select_every < 0:
            raise ValueError(f"select_every must be >= 0, got {self.select_every}")
        if self.pad_to_length < 0:
            raise ValueError(f"pad_to_length must be >= 0 (0 = pad to the longest example), got {self.pad_to_length}")
        if self.adam_eps not in ADAM_EPS_MODES:
            raise ValueError(f"adam_eps must be one of {ADAM_EPS_MODES}, got '{self.adam_eps}'")


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


def lr_at(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up then linear decay to 0 (transformers' get_linear_schedule_with_warmup)."""
    if step < cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    return cfg.lr * max(0.0, (cfg.total_steps - step) / max(1, cfg.total_steps - cfg.warmup_steps))


def eps_at(step: int, cfg: LoopConfig, beta2: float) -> float:
    """AdamW's eps for the update of `step` (0-based). torch divides sqrt(v) by sqrt(1 - beta2^t) and then adds
    eps; transformers 2.x adds eps first, which equals torch's with eps / sqrt(1 - beta2^t)."""
    if cfg.adam_eps == "torch":
        return ADAM_EPS
    return ADAM_EPS / math.sqrt(1.0 - beta2 ** (step + 1))


def rank_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class BatchPlan:
    """Step -> global batch: a seeded permutation per epoch, consumed in order (resume-exact).

    Args:
        data: the training split.
        batch_size: global batch size.
        seed: with the epoch, fixes the order.
        batching: "random" (each batch a random sample, the released code's order) or "length-grouped":
            the epoch's permutation is cut into windows of `MEGABATCH` batches, each window is sorted by
            length (longest first) and cut into batches, and the batches are shuffled: every batch is
            still drawn from a random window, but its examples have similar lengths, so far fewer
            padding tokens are computed (about half on SST-2 at max length 64).
        pad_to_length: pad every batch to at least this many tokens (the released code pads to max length).
    """

    def __init__(self, data: EncodedSplit, batch_size: int, seed: int, batching: Batching = "random",
                 pad_to_length: int = 0) -> None:
        if len(data) == 0:
            raise ValueError("the training split is empty")
        if batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, got '{batching}'")
        self.data, self.batch_size, self.seed, self.batching = data, batch_size, seed, batching
        self.steps_per_epoch = math.ceil(len(data) / batch_size)
        self.collate = PadCollator(data.pad_token_id, data.is_regression, min_width=pad_to_length)
        self._epoch: tuple[int, list[list[int]]] | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.data), generator=g).tolist()
        bs = self.batch_size
        if self.batching == "random":
            return [perm[i:i + bs] for i in range(0, len(perm), bs)]
        batches: list[list[int]] = []
        window = MEGABATCH * bs
        for w in range(0, len(perm), window):
            chunk = sorted(perm[w:w + window], key=lambda i: -len(self.data.input_ids[i]))  # stable sort
            batches += [chunk[i:i + bs] for i in range(0, len(chunk), bs)]
        order = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in order]

    def indices(self, step: int) -> list[int]:
        epoch, b = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self._batches(epoch))
        return list(self._epoch[1][b])

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The global batch of `step`, padded to its longest example (or to `pad_to_length`)."""
        return self.collate([self.data[i] for i in self.indices(step)])


def shard(batch: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    """This rank's rows of a global batch (same padded width on every rank)."""
    return batch if world == 1 else {k: v[rank::world] for k, v in batch.items()}


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
             weights: Optional[LossWeights] = None, amp: Optional[Amp] = None) -> dict[str, Any]:
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

    Returns:
        {"loss": sum over sub-networks, "logit": ..., "hidden": ..., "hard": ...} as floats (unscaled),
        and "per_subnet": one {"loss", "logit", "hidden", "hard"} dict per planned sub-network.
    """
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    totals: dict[str, Any] = {"loss": 0.0, "logit": 0.0, "hidden": 0.0, "hard": 0.0, "per_subnet": []}
    if ids.shape[0] == 0:
        return totals
    w = weights or LossWeights(*LOSS_WEIGHTS.get(stage, (1.0, 1.0)))
    teacher_cache: dict[SubnetConfig, Any] = {}
    amp = amp or CPU_FP32.amp()
    words = SharedWordLookup(student, ids)
    for p in plan:
        with amp.runtime.autocast():
            loss, parts = _planned_loss(student, teacher, batch, p, stage, teacher_cache, w, is_regression,
                                        words.leaf)
        amp.backward(loss * scale)
        parts["loss"] = float(loss.detach())
        for k in ("loss", "logit", "hidden", "hard"):
            totals[k] += parts.get(k, 0.0)
        totals["per_subnet"].append(parts)
    words.flush()
    return totals


def _planned_loss(student: ElasticBertForSequenceClassification,
                  teacher: Optional[ElasticBertForSequenceClassification], batch: dict[str, torch.Tensor],
                  p: Planned, stage: Stage, teacher_cache: dict[SubnetConfig, Any], w: LossWeights,
                  is_regression: bool, words: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward pass and loss of one planned sub-network, with its loss parts (floats) for logging."""
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    if p.teacher is None:
        out = student(ids, mask, types, subnet=p.student, word_embeds=words)
        loss = hard_label_loss(out.logits, batch["labels"], is_regression)
        return loss, {"hard": float(loss.detach())}
    if p.teacher not in teacher_cache:  # one teacher forward per step per teacher width
        with torch.no_grad():
            teacher_cache[p.teacher] = teacher(ids, mask, types, subnet=p.teacher, output_hidden_states=True)
    t = teacher_cache[p.teacher]
    out = student(ids, mask, types, subnet=p.student, output_hidden_states=True, word_embeds=words)
    loss, parts = distillation_loss(
        out.logits, out.hidden_states, t.logits, t.hidden_states,
        matched_teacher_indices(p.student.layers, student.arch.num_layers),
        logit_weight=w.logit, hidden_weight=w.hidden, is_regression=is_regression)
    if w.hard:
        hard = hard_label_loss(out.logits, batch["labels"], is_regression)
        loss = loss + w.hard * hard
        parts["hard"] = float(hard.detach())
    return loss, parts


def _sync_grads(params: list[torch.nn.Parameter], world: int) -> None:
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if world > 1:
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


# ---- checkpoints ---------------------------------------------------------------------------------
CKPT_STATE = "state.json"


def save_training_state(ckpt_dir: Path, student: ElasticBertForSequenceClassification,
                        optimizer: torch.optim.Optimizer, step: int, rng: random.Random,
                        loop: LoopConfig, seconds: float) -> None:
    """Write a resumable checkpoint atomically (a fresh folder renamed over the old one)."""
    with _replaced_atomically(ckpt_dir) as tmp:
        save_checkpoint(student, tmp, {"step": step})
        # Optimizer moments are tensors in nested dicts: torch.save, read back with weights_only=True.
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        rngs = {"torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from its RNG
            rngs["cuda_rng"] = torch.cuda.get_rng_state()
        save_file(rngs, str(tmp / "rng.safetensors"))
        state = {"step": step, "seconds": seconds, "python_rng": list(rng.getstate()),
                 "loop": _loop_key(loop)}
        (tmp / CKPT_STATE).write_text(json.dumps(state))


@contextmanager
def _replaced_atomically(directory: Path) -> Iterator[Path]:
    """Yield a fresh sibling folder to fill; on success it is renamed over `directory` (a crash at any
    point leaves either the old folder or the new one complete)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    yield tmp
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def _loop_key(loop: LoopConfig) -> dict[str, Any]:
    d = asdict(loop)
    for k in ("save_every", "log_every"):  # may change on resume without changing the result
        d.pop(k)
    d["widths"], d["depths"] = list(d["widths"]), list(d["depths"])
    return d


def load_training_state(ckpt_dir: Path, student: ElasticBertForSequenceClassification,
                        optimizer: torch.optim.Optimizer, rng: random.Random, loop: LoopConfig) -> tuple[int, float]:
    """Restore weights, optimizer, RNGs from `ckpt_dir`; returns (step, seconds so far)."""
    state = json.loads((ckpt_dir / CKPT_STATE).read_text())
    now = _loop_key(loop)
    # An option added after the checkpoint was written counts as its default (so old checkpoints resume).
    defaults = {f.name: f.default for f in fields(LoopConfig) if f.default is not MISSING}
    saved = {**{k: v for k, v in defaults.items() if k in now}, **state["loop"]}
    if saved != now:
        diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        raise ResumeError(f"cannot resume {ckpt_dir}: it was made with different options ({', '.join(diff)}); "
                          "rerun with the original options or delete the checkpoint to start over")
    model, _ = load_checkpoint(ckpt_dir)
    student.load_state_dict(model.state_dict())
    # map_location: a checkpoint written on a GPU resumes anywhere (load_state_dict moves state to the params)
    optimizer.load_state_dict(torch.load(ckpt_dir / "optimizer.pt", weights_only=True, map_location="cpu"))
    rngs = load_file(str(ckpt_dir / "rng.safetensors"))
    torch.set_rng_state(rngs["torch_rng"])
    if "cuda_rng" in rngs and torch.cuda.is_available():
        torch.cuda.set_rng_state(rngs["cuda_rng"])
    v, internal, gauss = state["python_rng"]
    rng.setstate((v, tuple(internal), gauss))
    return int(state["step"]), float(state["seconds"])


BEST_META = "best.json"


def best_dir(ckpt_dir: Path) -> Path:
    """Where the best-scoring weights of a stage with model selection live (beside its checkpoint)."""
    return ckpt_dir.with_name(ckpt_dir.name + "_best")


def save_best(directory: Path, student: ElasticBertForSequenceClassification, step: int, score: float) -> None:
    """Write the selected weights atomically (a fresh folder renamed over the old one)."""
    with _replaced_atomically(directory) as tmp:
        save_checkpoint(student, tmp, {"step": step, "score": score})
        (tmp / BEST_META).write_text(json.dumps({"step": step, "score": score}))


@dataclass
class TrainResult:
    """Steps run, training seconds, last losses; with model selection, the step and score kept."""

    steps: int
    seconds: float
    last: dict[str, float] = field(default_factory=dict)
    selected_step: Optional[int] = None
    selected_score: Optional[float] = None


class BestWeights:
    """Model selection: the best-scoring weights seen so far, in memory and (with `directory`) on disk, so that
    a resumed run still ends on the best weights of its earlier part.

    Args:
        directory: where the best weights go (`best_dir(ckpt_dir)`); None keeps them in memory only.
        resume: reload the best weights an interrupted run left in `directory`.
    """

    def __init__(self, directory: Optional[Path], *, resume: bool) -> None:
        self.directory = directory
        self.step: Optional[int] = None
        self.score = -math.inf
        self.state: Optional[dict[str, torch.Tensor]] = None
        if resume and directory is not None and (directory / BEST_META).exists():
            meta = json.loads((directory / BEST_META).read_text())
            self.step, self.score = int(meta["step"]), float(meta["score"])
            self.state = load_checkpoint(directory)[0].state_dict()

    def offer(self, model: ElasticBertForSequenceClassification, step: int, score: float) -> bool:
        """Keep `model`'s weights if `score` beats the best so far; True when kept."""
        if score <= self.score:
            return False
        self.step, self.score = step, score
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.directory is not None:
            save_best(self.directory, model, step, score)
        return True

    def restore(self, model: ElasticBertForSequenceClassification, result: TrainResult) -> None:
        """Load the best weights into `model` (when any were kept) and note them in `result`."""
        if self.state is not None:
            model.load_state_dict(self.state)
            result.selected_step, result.selected_score = self.step, self.score


def train_stage(student: ElasticBertForSequenceClassification,
                teacher: Optional[ElasticBertForSequenceClassification], stage: Stage, data: EncodedSplit,
                loop: LoopConfig, *, is_regression: bool, ckpt_dir: Optional[Path] = None,
                log_path: Optional[Path] = None, resume: bool = False, progress: bool = True,
                on_step: Optional[Callable[[int], None]] = None,
                eval_fn: Optional[Callable[[int], dict[str, Any]]] = None,
                select_fn: Optional[Callable[[int], float | dict[str, float]]] = None,
                runtime: Runtime = CPU_FP32) -> TrainResult:
    """Train `student` for one stage, checkpointing and logging as it goes.

    Args:
        student: the model to train (modified in place).
        teacher: the frozen teacher of distillation stages (None for TEACHER / STAGE3).
        stage: which losses and sub-networks.
        data: the training split.
        loop: optimizer, schedule and sub-network options.
        is_regression: regression task.
        ckpt_dir: where resumable checkpoints go (None: no checkpoints).
        log_path: JSONL log (rank 0 only).
        resume: continue from `ckpt_dir` if it holds a checkpoint.
        progress: tqdm progress bar on rank 0.
        on_step: called with the finished step count after every step (and its checkpoint).
        eval_fn: called at every epoch end and at the last step; its dict is logged.
        select_fn: model selection (rank 0): step -> a score, higher is better (or a dict of per-sub-network
            metrics, logged, whose sum is the score), computed every
            `loop.select_every` steps and at the last step; the stage ends on the best-scoring
            weights (the released DynaBERT code keeps its best dev checkpoint the same way). The
            best weights are kept in memory and, with `ckpt_dir`, in `<ckpt_dir>_best` for resume.
        runtime: device and precision (models are moved there; default cpu fp32).

    Returns:
        Steps done, wall-clock seconds of training (resumed runs add their earlier seconds), last losses.
    """
    if stage in (Stage.STAGE1, Stage.STAGE2) and teacher is None:
        raise ValueError(f"{stage.value} distils from a teacher; none was given")
    rank, world = rank_world()
    torch.manual_seed(loop.seed + rank)  # dropout draws from torch's RNG; saved in checkpoints
    rng = random.Random(loop.seed)
    runtime.module(student, teacher)
    amp = runtime.amp()
    batches = BatchPlan(data, loop.batch_size, loop.seed, loop.batching, loop.pad_to_length)
    params = [p for p in student.parameters() if p.requires_grad]
    weights = loss_weights(stage, loop)
    optimizer = torch.optim.AdamW(params, lr=loop.lr, weight_decay=loop.weight_decay, eps=ADAM_EPS)
    if teacher is not None:
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    start, seconds_before = 0, 0.0
    if resume and ckpt_dir is not None and (ckpt_dir / CKPT_STATE).exists():
        start, seconds_before = load_training_state(ckpt_dir, student, optimizer, rng, loop)
    selecting = select_fn is not None and loop.select_every > 0 and rank == 0
    best = BestWeights(best_dir(ckpt_dir) if ckpt_dir is not None else None, resume=selecting and resume)
    student.train()
    writer = open(log_path, "a") if (log_path is not None and rank == 0) else None
    bar = tqdm(total=loop.total_steps, initial=start, desc=stage.value, unit="step",
               disable=not progress or rank != 0)
    t0, last = time.perf_counter(), {}
    n_sub_done, t_window = 0, time.perf_counter()
    try:
        for step in range(start, loop.total_steps):
            plan = step_plan(stage, student.arch, loop, rng)
            gbatch = batches.batch(step)
            local = runtime.batch(shard(gbatch, rank, world))
            scale = local["input_ids"].shape[0] / gbatch["input_ids"].shape[0]
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, loop)
                g["eps"] = eps_at(step, loop, g["betas"][1])
            optimizer.zero_grad(set_to_none=True)
            last = run_step(student, teacher, local, plan, stage, is_regression=is_regression, scale=scale,
                            weights=weights, amp=amp)
            _sync_grads(params, world)
            amp.step(optimizer, params, loop.grad_clip)
            done = step + 1
            n_sub_done += len(plan)
            bar.update(1)
            record: dict[str, Any] = {}
            if done % loop.log_every == 0 or done == loop.total_steps:
                rate = n_sub_done / max(1e-9, time.perf_counter() - t_window)
                n_sub_done, t_window = 0, time.perf_counter()
                record = {"step": done, "loss": round(last["loss"], 6), "lr": lr_at(step, loop),
                          "subnets_per_s": round(rate, 3), "logit_loss": round(last["logit"], 6),
                          "hidden_loss": round(last["hidden"], 6), "subnets": len(plan),
                          "subnet_losses": {subnet_name(p.student, student.arch): {
                              k: round(v, 6) for k, v in parts.items()} for p, parts in zip(plan, last["per_subnet"])}}
                if last["hard"]:
                    record["hard_loss"] = round(last["hard"], 6)
                bar.set_postfix(loss=f"{last['loss']:.4f}", subnets_per_s=f"{rate:.2f}")
            if eval_fn is not None and (done % batches.steps_per_epoch == 0 or done == loop.total_steps):
                record = {"step": done, **record, **eval_fn(done)}
                student.train()
            if selecting and (done % loop.select_every == 0 or done == loop.total_steps):
                scored = select_fn(done)
                student.train()
                record = {"step": done, **record}
                if isinstance(scored, dict):  # per-sub-network metrics: the score is their sum
                    record["select_metrics"] = {k: round(float(v), 4) for k, v in scored.items()}
                    scored = sum(scored.values())
                score = float(scored)
                record["select_score"] = round(score, 4)
                best.offer(student, done, score)
            if writer is not None and record:
                writer.write(json.dumps(record) + "\n")
                writer.flush()
            elapsed = seconds_before + time.perf_counter() - t0
            if ckpt_dir is not None and rank == 0 and (
                    (loop.save_every and done % loop.save_every == 0) or done == loop.total_steps):
                save_training_state(ckpt_dir, student, optimizer, done, rng, loop, elapsed)
            if on_step is not None:
                on_step(done)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    result = TrainResult(steps=loop.total_steps, seconds=seconds_before + time.perf_counter() - t0, last=last)
    if selecting:
        best.restore(student, result)
    return result
