"""The one optimizer loop of every training in the project: the DynaBERT stages (elastic/training/train.py) and the
baseline students (elastic/training/baselines.py) differ only in what they compute per step (a `Trainee`).

Each step: the trainee runs forward + backward on the step's batch (gradients accumulate), then ONE clipped
AdamW step with a linearly decaying learning rate. The data order is a pure function of (seed, epoch), so a
resumed run consumes exactly the batches an uninterrupted run would. Multi-process (torchrun; gloo on CPU,
NCCL on CUDA): every rank collates the same global batch (same padding), takes its rows `rank::world`,
scales its loss by its share of the batch, and gradients are summed by all-reduce, so the update equals the
single-process one. Device and precision come in as one `elastic.training.device.Runtime`. Checkpoints every
`save_every` steps and at the end, model selection, logging, evaluation hooks: all here, once.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from elastic.model.config import GRID_DEPTHS, GRID_WIDTHS
from elastic.data.tasks import EncodedSplit, PadCollator
from elastic.training.device import CPU_FP32, Amp, Runtime
from elastic.training.options import (ADAM_EPS_MODES, BATCHINGS, DEFAULT_LR, SUBNET_FORWARDS, TEACHER_WIDTHS, AdamEps, Batching,
                             SubnetForward, TeacherWidth)
from elastic.training.train_state import (CKPT_STATE, BestWeights, TrainResult, best_dir, load_training_state,
                                 save_training_state)


MEGABATCH = 50  # length-grouped batching sorts windows of this many batches (as transformers' group_by_length)

ADAM_EPS = 1e-8


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
        subnet_forward: "shared-prefix" (computations shared by several sub-networks of a step run once; see
            `elastic.training.train.run_step`) or "separate" (each sub-network on its own, as the released code).
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
    subnet_forward: SubnetForward = "shared-prefix"

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
        if self.subnet_forward not in SUBNET_FORWARDS:
            raise ValueError(f"subnet_forward must be one of {SUBNET_FORWARDS}, got '{self.subnet_forward}'")


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
            padding tokens are computed.
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


def _sync_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Sum the ranks' gradients (a parameter no sub-network reached counts as zero on its rank). One process:
    nothing to do; a parameter without a gradient stays without one (AdamW skips it, the norm ignores it)."""
    if world > 1:
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


class Trainee(Protocol):
    """What one kind of training computes per step (a stage's sub-networks, a student's objective)."""

    name: str  # progress-bar label
    select_tag: dict[str, Any]  # fields added to the log line of a model-selection score

    def step(self, step: int, batch: dict[str, torch.Tensor], scale: float, amp: Amp,
             rng: random.Random) -> tuple[dict[str, Any], int]:
        """Forward + backward on this rank's `batch` (losses times `scale`); returns the step's loss parts
        (kept as `TrainResult.last`) and how many forward passes it made (for the log's rate)."""
        ...

    def record(self, done: int, lr: float, last: dict[str, Any], rate: float) -> dict[str, Any]:
        """The log line of a logged step."""
        ...


def train_loop(model: torch.nn.Module, params: list[torch.nn.Parameter], data: EncodedSplit, loop: LoopConfig,
               trainee: Trainee, *, ckpt_dir: Optional[Path] = None, log_path: Optional[Path] = None,
               resume: bool = False, progress: bool = True, on_step: Optional[Callable[[int], None]] = None,
               eval_fn: Optional[Callable[[int], dict[str, Any]]] = None,
               select_fn: Optional[Callable[[int], float | dict[str, float]]] = None,
               runtime: Runtime = CPU_FP32, extra: Optional[torch.nn.Module] = None,
               extra_file: str = "extra.safetensors") -> TrainResult:
    """Train `params` (of `model`, and of `extra`) for `loop.total_steps` steps of `trainee`.

    Args:
        model: the trained model (checkpointed, selected; already on the runtime's device).
        params: the parameters the optimizer updates.
        data: the training split.
        loop: optimizer, schedule, batching, seed, checkpoint and log periods.
        trainee: the per-step computation and its log lines.
        ckpt_dir: where resumable checkpoints go (None: no checkpoints).
        log_path: JSONL log (rank 0 only).
        resume: continue from `ckpt_dir` if it holds a checkpoint.
        progress: tqdm progress bar on rank 0.
        on_step: called with the finished step count after every step (and its checkpoint).
        eval_fn: called at every epoch end and at the last step; its dict is logged.
        select_fn: model selection (rank 0): step -> a score, higher is better (or a dict of per-sub-network
            metrics, logged, whose sum is the score), computed every `loop.select_every` steps and at the last
            step; the run ends on the best-scoring weights (the released DynaBERT code keeps its best dev
            checkpoint the same way). The best weights are kept in memory and, with `ckpt_dir`, in
            `<ckpt_dir>_best` for resume.
        runtime: device and precision.
        extra: another trained module saved in the checkpoint beside the model (a student's projection).
        extra_file: its file name in the checkpoint.

    Returns:
        Steps done, wall-clock seconds of training (resumed runs add their earlier seconds), last losses; with
        selection, the step and score kept.
    """
    rank, world = rank_world()
    torch.manual_seed(loop.seed + rank)  # dropout draws from torch's RNG; saved in checkpoints
    rng = random.Random(loop.seed)
    amp = runtime.amp()
    batches = BatchPlan(data, loop.batch_size, loop.seed, loop.batching, loop.pad_to_length)
    optimizer = torch.optim.AdamW(params, lr=loop.lr, weight_decay=loop.weight_decay, eps=ADAM_EPS)
    start, seconds_before = 0, 0.0
    if resume and ckpt_dir is not None and (ckpt_dir / CKPT_STATE).exists():
        start, seconds_before = load_training_state(ckpt_dir, model, optimizer, rng, loop)
        if extra is not None:
            extra.load_state_dict(load_file(str(ckpt_dir / extra_file)))
    selecting = select_fn is not None and loop.select_every > 0 and rank == 0
    best = BestWeights(best_dir(ckpt_dir) if ckpt_dir is not None else None, resume=selecting and resume)
    model.train()
    writer = open(log_path, "a") if (log_path is not None and rank == 0) else None
    bar = tqdm(total=loop.total_steps, initial=start, desc=trainee.name, unit="step",
               disable=not progress or rank != 0)
    t0, last = time.perf_counter(), {}
    units, t_window = 0, time.perf_counter()
    try:
        for step in range(start, loop.total_steps):
            gbatch = batches.batch(step)
            local = runtime.batch(shard(gbatch, rank, world))
            scale = local["input_ids"].shape[0] / gbatch["input_ids"].shape[0]
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, loop)
                g["eps"] = eps_at(step, loop, g["betas"][1])
            optimizer.zero_grad(set_to_none=True)
            last, n = trainee.step(step, local, scale, amp, rng)
            _sync_grads(params, world)
            amp.step(optimizer, params, loop.grad_clip)
            done = step + 1
            units += n
            bar.update(1)
            record: dict[str, Any] = {}
            if done % loop.log_every == 0 or done == loop.total_steps:
                rate = units / max(1e-9, time.perf_counter() - t_window)
                units, t_window = 0, time.perf_counter()
                record = trainee.record(done, lr_at(step, loop), last, rate)
                bar.set_postfix(loss=f"{last.get('loss', 0.0):.4f}")
            if eval_fn is not None and (done % batches.steps_per_epoch == 0 or done == loop.total_steps):
                record = {"step": done, **record, **eval_fn(done)}
                model.train()
            if selecting and (done % loop.select_every == 0 or done == loop.total_steps):
                scored = select_fn(done)
                model.train()
                record = {"step": done, **trainee.select_tag, **record}
                if isinstance(scored, dict):  # per-sub-network metrics: the score is their sum
                    record["select_metrics"] = {k: round(float(v), 4) for k, v in scored.items()}
                    scored = sum(scored.values())
                score = float(scored)
                record["select_score"] = round(score, 4)
                best.offer(model, done, score)
            if writer is not None and record:
                writer.write(json.dumps(record) + "\n")
                writer.flush()
            elapsed = seconds_before + time.perf_counter() - t0
            if ckpt_dir is not None and rank == 0 and (
                    (loop.save_every and done % loop.save_every == 0) or done == loop.total_steps):
                save_training_state(ckpt_dir, model, optimizer, done, rng, loop, elapsed)
                if extra is not None:
                    save_file({k: v.detach().cpu().contiguous() for k, v in extra.state_dict().items()},
                              str(ckpt_dir / extra_file))
            if on_step is not None:
                on_step(done)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    result = TrainResult(steps=loop.total_steps, seconds=seconds_before + time.perf_counter() - t0, last=last)
    if selecting:
        best.restore(model, result)
    return result
