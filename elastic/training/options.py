"""Closed sets of choices and shared defaults of the commands' options, defined once.

Torch-free on purpose: the CLI's parsers import it to list choices, and `dynabert --help` must stay fast.
"""
from __future__ import annotations

from enum import Enum
from typing import Literal, get_args


# Peak AdamW learning rate of every training stage and student: the DynaBERT paper's (Hou et al. 2020).
DEFAULT_LR = 2e-5
# The latency scenario a command measures or searches for when given none (profiling.scenario key).
DEFAULT_SCENARIO = "cpu-eager-t2-b1-s128"

# Stage 2's teacher: at full width (the released code) or at the student's width (the paper).
TeacherWidth = Literal["full", "matched"]
TEACHER_WIDTHS: tuple[str, ...] = get_args(TeacherWidth)
# Optuna sampler of the search.
Sampler = Literal["nsga2", "tpe", "random"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
# Training batches padded to their longest example (ours) or to max_length (the released code).
Padding = Literal["longest", "max_length"]
PADDINGS: tuple[str, ...] = get_args(Padding)
# Random batches (the released code's) or length-grouped ones (far fewer padding tokens).
Batching = Literal["random", "length-grouped"]
BATCHINGS: tuple[str, ...] = get_args(Batching)
# Where AdamW adds eps: "torch" to the bias-corrected sqrt(v) (torch.optim.AdamW); "released" to the raw
# sqrt(v), as transformers 2.x's AdamW of the released code (a larger effective eps in the first steps).
AdamEps = Literal["torch", "released"]
ADAM_EPS_MODES: tuple[str, ...] = get_args(AdamEps)
# Importance from each batch's gradients, or from their running sum (the released code never zeroes them).
ImportanceGrads = Literal["per-batch", "cumulative"]
IMPORTANCE_GRADS: tuple[str, ...] = get_args(ImportanceGrads)
# Importance batches sorted by length (ours: less padding) or in file order (the released code).
ImportanceOrder = Literal["by-length", "file"]
IMPORTANCE_ORDERS: tuple[str, ...] = get_args(ImportanceOrder)
# Each sub-network of a training step on its own (the released code), or shared computations once: the embedding
# output and each layer prefix once per group of sub-networks with the same first layer (elastic.training.train).
SubnetForward = Literal["separate", "shared-prefix"]
SUBNET_FORWARDS: tuple[str, ...] = get_args(SubnetForward)
# What the latency predictor is fitted on: interleaved ratios to the full model, or blocked medians.
Timing = Literal["interleaved", "blocked"]
TIMINGS: tuple[str, ...] = get_args(Timing)


class TinyBudget(str, Enum):
    """How TinyBERT's two phases share the budget: each gets one stage's steps (as DynaBERT's two stages),
    or they split one stage's steps in half."""

    PER_PHASE = "per-phase"
    SPLIT = "split"


class Int8Runtime(str, Enum):
    """Runtimes of dynamic INT8 (the profiling scenario runtimes of the same names)."""

    EAGER = "eager-int8"
    ORT = "ort-int8"


INT8_RUNTIMES = tuple(r.value for r in Int8Runtime)
