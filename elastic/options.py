"""Closed sets of choices and shared defaults of the commands' options, defined once.

Torch-free on purpose: the CLI's parsers import it to list choices, and `dynabert --help` must stay fast.
"""
from __future__ import annotations

from enum import Enum


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
