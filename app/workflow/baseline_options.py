"""The options of `dynabert baselines` (`BaselineOptions`), torch-free: the command line builds its flags from
these fields (app/cli/baselines.py) without importing the training code."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional

from elastic.model.config import SELECT_SPLITS, SelectSplit
from elastic.training.device import CPU_FP32, Runtime
from elastic.training.option_fields import option
from elastic.training.options import DEFAULT_LR, DEFAULT_SCENARIO, INT8_RUNTIMES, Int8Runtime, TinyBudget

if TYPE_CHECKING:
    from elastic.training.baselines import DistilWeights

# The values of `elastic.training.baselines.Recipe`, and "all" for every one of them.
RecipeName = Literal["distilbert", "tinybert", "int8", "dynabert_int8", "all"]


@dataclass
class BaselineOptions:
    """Options of `dynabert baselines`; each field's help is its flag's. Checked when made: recipes become
    `Recipe`s ("all": every recipe), runtimes `Int8Runtime`s, the budget split a `TinyBudget`.

    Attributes:
        distil: the DistilBERT loss weights (alpha_soft, beta_hard, gamma_cos and temperature, else 2.0).
        dynabert_points: width:depth grid points of dynabert_int8 (None: all; the flag --dynabert-points).
        runtime: where students train and every model is evaluated (the flags --device/--precision).
    """

    recipes: tuple[RecipeName, ...] = option(("distilbert", "tinybert", "int8"), help="recipes to run "
                                             "(dynabert_int8 needs --dynabert-stage; all: every recipe)")
    student_init: Optional[str] = option(None, help="TinyBERT: start from this HF BERT dir instead of a teacher "
                                         "sub-network")
    layers: Optional[tuple[int, ...]] = option(None, help="teacher layers the student keeps, e.g. 0,2,4 (default "
                                               "every other)")
    depth: Optional[int] = option(None, help="student layers (default half the teacher's)", min=1)
    width: float = option(0.5, help="TinyBERT student width multiplier of heads/FFN", above=0)
    tinybert_budget: TinyBudget = option(TinyBudget.PER_PHASE, help="TinyBERT phases: each gets the stage budget "
                                         "(per-phase) or they split it (split)",
                                         choices_from=lambda: tuple(b.value for b in TinyBudget))
    temperature: Optional[float] = option(None, help="distillation temperature (default DistilBERT 2.0, TinyBERT "
                                          "1.0)", above=0)
    alpha_soft: float = option(5.0, help="DistilBERT soft-CE weight", min=0)
    beta_hard: float = option(2.0, help="DistilBERT hard-label CE weight", min=0)
    gamma_cos: float = option(1.0, help="DistilBERT cosine hidden loss weight", min=0)
    epochs: Optional[float] = option(None, help="epochs per phase (default: the run's stage budget)", above=0)
    max_steps: Optional[int] = option(None, help="optimizer steps per phase (overrides --epochs)", min=1)
    batch_size: int = option(32, help="batch size", min=1)
    lr: float = option(DEFAULT_LR, help="peak learning rate, linear decay", above=0)
    scenarios: tuple[str, ...] = option((DEFAULT_SCENARIO,), help="latency scenario keys")
    int8_runtimes: tuple[Int8Runtime, ...] = option(tuple(Int8Runtime), help="INT8 runtimes",
                                                    choices_from=lambda: INT8_RUNTIMES)
    dynabert_stage: str = option("stage2", help="checkpoint for dynabert_int8")
    dynabert_points: Optional[tuple[tuple[float, float], ...]] = None
    min_run_time_s: float = option(1.0, help="seconds of timed runs per latency", above=0)
    select_best: SelectSplit = option("off", help="students end on their best-scoring weights (held-out train "
                                      "slice or dev, scored every --select-every steps and at the end), as the "
                                      "DynaBERT stages' --select-best")
    select_every: int = option(50, help="steps between selection scores", min=1)
    save_every: int = option(100, help="checkpoint period in steps", min=1)
    resume: bool = option(False, help="continue an interrupted student from its checkpoint")
    progress: bool = option(True, help="no progress bars")
    runtime: Runtime = CPU_FP32

    def __post_init__(self) -> None:
        from elastic.training.baselines import Recipe  # torch: only when options are made, not for --help

        self.recipes = tuple(Recipe) if "all" in self.recipes else tuple(dict.fromkeys(map(Recipe, self.recipes)))
        bad = [r for r in self.int8_runtimes if r not in INT8_RUNTIMES]
        if bad:
            raise ValueError(f"--int8-runtime must be in {INT8_RUNTIMES}, got {bad}")
        self.int8_runtimes = tuple(Int8Runtime(r) for r in self.int8_runtimes)
        self.tinybert_budget = TinyBudget(self.tinybert_budget)
        if not 0 < self.width <= 1:
            raise ValueError(f"--width must be in (0, 1], got {self.width}")
        if self.select_best not in SELECT_SPLITS:
            raise ValueError(f"--select-best must be one of {SELECT_SPLITS}, got '{self.select_best}'")
        if self.select_every < 1:
            raise ValueError(f"--select-every must be >= 1, got {self.select_every}")
        self.distil  # DistilWeights checks the loss weights and the temperature

    @property
    def distil(self) -> DistilWeights:
        """The DistilBERT loss weights (`elastic.training.baselines.DistilWeights`)."""
        from elastic.training.baselines import DistilWeights

        return DistilWeights(soft=self.alpha_soft, hard=self.beta_hard, cosine=self.gamma_cos,
                             temperature=self.temperature if self.temperature is not None else 2.0)
