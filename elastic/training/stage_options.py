"""The options of the training commands (`train-teacher`, `rewire`, `train-stage1/2/3`), defined once: each field
carries its default, help, range and the commands that take it as a flag (`stages`); the CLI's parsers are
generated from these fields (app/config/flags.py), `dynabert run` builds them from its configuration
(app/config/run_config.py `stage_options`), and `loop_config` turns them into the training loop's `LoopConfig`.

Torch-free, as `elastic.training.options`: `dynabert --help` imports it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from elastic.model.config import GRID_DEPTHS, GRID_WIDTHS, ImportanceSplit, SelectSplit
from elastic.training.device import CPU_FP32, Runtime
from elastic.training.option_fields import check_fields, option
from elastic.training.options import (DEFAULT_LR, AdamEps, Batching, ImportanceGrads, ImportanceOrder, Padding, SubnetForward,
                             TeacherWidth)

TRAIN = ("teacher", "stage1", "stage2", "stage3")  # the train-<stage> commands
DISTILL = ("stage1", "stage2")
WITH_DATA = (*TRAIN, "rewire")  # commands that load the run's task
# Run-level facts: None = as recorded in run.json (the run's first command sets them).
RUN_LEVEL = ("task", "text_columns", "label_column", "max_length", "seed", "importance_split")


@dataclass
class StageOptions:
    """Options of a stage command; None means "as recorded in run.json, else the default"."""

    task: Optional[str] = option(None, help="task: a data dir/file (train/dev/test .tsv/.csv/.jsonl), glue/<task>, "
                                 "hf:<dataset id>[:<config>], a datasets.save_to_disk directory, or bbc (embedded "
                                 "default); default: the run's task", stages=WITH_DATA)
    text_columns: Optional[tuple[str, ...]] = option(
        None, help="text column, or two comma-separated for sentence pairs (default: detected, or the run's)",
        stages=WITH_DATA)
    label_column: Optional[str] = option(None, help="label column (default: detected, or the run's)",
                                         stages=WITH_DATA)
    teacher: Optional[str] = option(
        None, help="a distillation teacher checkpoint to use instead of the run's own", stages=("teacher", *DISTILL),
        help_by_stage={"teacher": "pretrained HF BERT/RoBERTa dir or hub id to fine-tune (default: embedded "
                                  "all-MiniLM-L6-v2)"})
    max_length: Optional[int] = option(None, help="tokens per example (default: the run's, else 128)", min=2,
                                       stages=WITH_DATA)
    seed: Optional[int] = option(None, help="seed (default: the run's, else 42)", min=0, stages=WITH_DATA)
    importance_split: Optional[ImportanceSplit] = option(
        None, help="where importance is computed (default train-heldout: the last 10% of train, at most 1000 "
                   "examples, excluded from all training; dev reproduces the paper)", stages=("teacher", "rewire"))
    epochs: Optional[float] = option(None, help="epochs", above=0, stages=TRAIN)
    max_steps: Optional[int] = option(None, help="optimizer steps (overrides --epochs)", min=1, stages=TRAIN)
    batch_size: int = option(32, help="global batch size", min=1, stages=TRAIN)
    lr: float = option(DEFAULT_LR, help="peak learning rate, linear decay", above=0, stages=TRAIN)
    warmup_steps: int = option(0, help="linear warm-up steps", min=0, stages=TRAIN)
    save_every: int = option(100, help="checkpoint period in steps (0: only at the end)", min=0, stages=TRAIN)
    log_every: int = option(10, help="log period in steps", min=1)
    resume: bool = option(False, help="continue an interrupted stage from its checkpoint", stages=TRAIN)
    extra_subnets: int = option(0, help="also train the smallest grid sub-network and K random per-layer ones "
                                "each step", min=0, stages=("stage2",))
    teacher_width: TeacherWidth = option("full", help="teacher width: full (released code) or matched (paper)",
                                         stages=("stage2",))
    widths: tuple[float, ...] = option(GRID_WIDTHS, help="width multipliers trained", stages=(*DISTILL, "stage3"))
    depths: tuple[float, ...] = option(GRID_DEPTHS, help="depth multipliers trained", stages=("stage2", "stage3"))
    augment: int = option(0, help="TinyBERT-style augmented copies per example", min=0, stages=DISTILL)
    mlm_checkpoint: Optional[str] = option(None, help="masked-LM checkpoint dir for --augment", stages=DISTILL)
    limit_train: Optional[int] = option(None, help="train on the first N training examples only", min=1,
                                        stages=TRAIN)
    select_best: SelectSplit = option(
        "off", help="model selection: every --select-every steps (and at the end) score the sum of the stage's grid "
                    "sub-networks' metric on the held-out train slice or dev, and end the stage on the best weights "
                    "(the released code does this on dev)", stages=(*DISTILL, "stage3"))
    select_every: int = option(50, help="steps between selection scores", min=1, stages=(*DISTILL, "stage3"))
    hidden_weight: Optional[float] = option(
        None, help="weight of the hidden-state MSE (default: 0.1 in stage 1, 1.0 in stage 2, as the released code)",
        min=0, stages=DISTILL)
    hard_weight: float = option(0.0, help="weight of a hard-label cross-entropy added to the distillation loss",
                                min=0, stages=DISTILL)
    batching: Batching = option("random", help="random batches (the released code's) or length-grouped: batches of "
                                "similar lengths drawn from random windows of 50 batches, far fewer padding tokens",
                                stages=TRAIN)
    padding: Padding = option("longest", help="training batches padded to their longest example or to "
                              "--max-length, as the released code (padded positions then count in the hidden-state "
                              "MSE)", stages=TRAIN)
    adam_eps: AdamEps = option("torch", help="AdamW eps after the bias correction (torch) or before it (released "
                               "code)", stages=TRAIN)
    subnet_forward: SubnetForward = option(
        "shared-prefix", help="shared-prefix: the embedding output and each layer prefix once per group of "
                              "sub-networks with the same first layer (fewer layer passes; the sharing sub-networks "
                              "share those layers' dropout masks); separate: each sub-network on its own, as the "
                              "released code", stages=DISTILL)
    importance_grads: ImportanceGrads = option(
        "per-batch", help="score each batch's gradients or their running sum (the released code never zeroes "
                          "gradients between importance batches)", stages=("rewire",))
    importance_order: ImportanceOrder = option(
        "by-length", help="importance batches sorted by length or in file order (released code)", stages=("rewire",))
    importance_batch_size: int = option(32, help="importance batch size (the released code uses 8)", min=1,
                                        stages=("rewire",))
    progress: bool = option(True, help="progress bar")
    runtime: Runtime = option(CPU_FP32, help="device and precision (the CLI's --device/--precision)")

    def __post_init__(self) -> None:
        self.widths, self.depths = tuple(self.widths), tuple(self.depths)
        if self.text_columns is not None:
            self.text_columns = tuple(self.text_columns)
        check_fields(self)
        if self.augment and not self.mlm_checkpoint:
            raise ValueError("--augment needs --mlm-checkpoint DIR (a masked-LM checkpoint, e.g. bert-base-uncased)")


def stage_defaults() -> dict[str, Any]:
    """Every option's built-in default (the recipe of `dynabert run`'s default preset is app/config's)."""
    return {f.name: f.default for f in fields(StageOptions)}


def stage_flags(stage: str) -> tuple[str, ...]:
    """The fields a `dynabert <stage command>` takes as flags (besides --run-dir, --no-progress, --device,
    --precision)."""
    from elastic.training.option_fields import specs
    return tuple(s.name for s in specs(StageOptions) if stage in s.stages)
