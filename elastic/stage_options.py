"""The options of the training commands (`train-teacher`, `rewire`, `train-stage1/2/3`), defined once: the CLI's
parsers take their defaults and choices from here, the pipeline and the workflow layer build them.

Torch-free, as `elastic.options`: `dynabert --help` imports it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from elastic.config import GRID_DEPTHS, GRID_WIDTHS, SELECT_SPLITS, ImportanceSplit, SelectSplit
from elastic.device import CPU_FP32, Runtime
from elastic.options import (ADAM_EPS_MODES, BATCHINGS, DEFAULT_LR, IMPORTANCE_GRADS, IMPORTANCE_ORDERS, PADDINGS,
                             SUBNET_FORWARDS, TEACHER_WIDTHS, AdamEps, Batching, ImportanceGrads, ImportanceOrder,
                             Padding, SubnetForward, TeacherWidth)


@dataclass
class StageOptions:
    """Options of a stage command; None means "as recorded in run.json, else the default"."""

    task: Optional[str] = None
    text_columns: Optional[tuple[str, ...]] = None
    label_column: Optional[str] = None
    teacher: Optional[str] = None
    max_length: Optional[int] = None
    seed: Optional[int] = None
    importance_split: Optional[ImportanceSplit] = None
    epochs: Optional[float] = None
    max_steps: Optional[int] = None
    batch_size: int = 32
    lr: float = DEFAULT_LR
    warmup_steps: int = 0
    save_every: int = 100
    log_every: int = 10
    resume: bool = False
    extra_subnets: int = 0
    teacher_width: TeacherWidth = "full"
    widths: tuple[float, ...] = GRID_WIDTHS
    depths: tuple[float, ...] = GRID_DEPTHS
    augment: int = 0
    mlm_checkpoint: Optional[str] = None
    limit_train: Optional[int] = None
    select_best: SelectSplit = "off"
    select_every: int = 50
    hidden_weight: Optional[float] = None
    hard_weight: float = 0.0
    batching: Batching = "random"
    padding: Padding = "longest"
    adam_eps: AdamEps = "torch"
    subnet_forward: SubnetForward = "shared-prefix"
    importance_grads: ImportanceGrads = "per-batch"
    importance_order: ImportanceOrder = "by-length"
    importance_batch_size: int = 32
    progress: bool = True
    runtime: Runtime = CPU_FP32  # device and precision (the CLI's --device/--precision)

    def __post_init__(self) -> None:
        for name, allowed in (("padding", PADDINGS), ("importance_grads", IMPORTANCE_GRADS),
                              ("importance_order", IMPORTANCE_ORDERS), ("batching", BATCHINGS),
                              ("adam_eps", ADAM_EPS_MODES), ("subnet_forward", SUBNET_FORWARDS), ("teacher_width", TEACHER_WIDTHS),
                              ("select_best", SELECT_SPLITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {allowed}, got '{getattr(self, name)}'")
        if self.importance_batch_size < 1:
            raise ValueError(f"--importance-batch-size must be >= 1, got {self.importance_batch_size}")


def stage_defaults() -> dict[str, Any]:
    """Every option's default (the CLI's flags show and use these)."""
    return {f.name: f.default for f in fields(StageOptions)}
