"""The objective registry: the dev metric (maximised, always first) and one entry per cost objective.

A cost objective is one `CostObjective` entry: its name (as in `--objectives`), unit, the column that carries its
value in trials.csv and pareto.csv (and the trial's user attr of that name), its direction, a function
(config, context) -> value, and the dashboard's axis label. `SearchOptions` validates against the registry, the
trial function computes and records every registered cost (`search.objective.TrialCosts`), the Pareto files
write their columns (`search.pareto`) and the dashboard offers them as axes. A new objective is one
`register(...)` call; nothing else changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from elastic.model.config import BertArch, SubnetConfig

METRIC = "metric"
METRIC_COLUMN = "dev_metric"  # the metric's column (trials.csv, pareto.csv) and the study's metric name


@dataclass(frozen=True)
class CostContext:
    """What a cost function may use besides the config: the architecture, the scenario's shapes, and the latency
    function of the trial's variant (None when no objective or constraint needs latency)."""

    arch: BertArch
    num_labels: int
    seq_len: int
    batch: int
    latency_fn: Optional[Callable[[SubnetConfig], float]] = None


@dataclass(frozen=True)
class CostObjective:
    """One cost objective.

    Attributes:
        name: its name in `--objectives` and `search.json`.
        unit: the unit of its value ("ms", "MACs", "parameters").
        column: its trials.csv column and the trial's user attr (also pareto.csv's unless `pareto_column`).
        label: the dashboard's axis label (with the unit as shown there).
        compute: (config, context) -> value; None when the context lacks what it needs (no latency function).
        direction: "minimize" (the Pareto code treats every cost as a loss).
        integer: record the value as an int (counts).
        pareto_column: its pareto.csv column when it differs from `column` (latency's predicted value).
        measured_column: a pareto.csv column whose value, where present, replaces the searched one on the front
            (latency re-measured on the front's artifacts).
        needs_latency: the search must build a latency function for it.
        axis_scale: the dashboard divides values by this (MACs in G, params in M).
    """

    name: str
    unit: str
    column: str
    label: str
    compute: Callable[[SubnetConfig, CostContext], Optional[float]]
    direction: Literal["minimize"] = "minimize"
    integer: bool = False
    pareto_column: Optional[str] = None
    measured_column: Optional[str] = None
    needs_latency: bool = False
    axis_scale: float = 1.0

    @property
    def front_column(self) -> str:
        """Its column in pareto.csv."""
        return self.pareto_column or self.column

    def record(self, value: float) -> Any:
        """The value as written to a trial's user attrs and the CSV files."""
        return int(value) if self.integer else float(value)


_REGISTRY: dict[str, CostObjective] = {}


def register(objective: CostObjective) -> CostObjective:
    """Add a cost objective. Raises ValueError on a taken name or column, or a direction other than minimize."""
    if objective.name == METRIC or objective.name in _REGISTRY:
        raise ValueError(f"objective '{objective.name}' is already registered")
    if objective.direction != "minimize":
        raise ValueError(f"objective '{objective.name}': costs are minimised (state a quantity to maximise as its "
                         f"negative), got direction '{objective.direction}'")
    taken = {METRIC_COLUMN} | {c for o in _REGISTRY.values() for c in (o.column, o.front_column, o.measured_column)}
    if objective.column in taken:
        raise ValueError(f"objective '{objective.name}': column '{objective.column}' is taken")
    _REGISTRY[objective.name] = objective
    return objective


def unregister(name: str) -> None:
    """Remove a cost objective (tests that register one of their own)."""
    _REGISTRY.pop(name, None)


def cost_objectives() -> tuple[CostObjective, ...]:
    """Every registered cost objective, in registration order."""
    return tuple(_REGISTRY.values())


def cost_objective(name: str) -> CostObjective:
    """The entry of `name`. Raises ValueError naming the registered ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective '{name}'; choose from {', '.join(objective_names())}")
    return _REGISTRY[name]


def objective_names() -> tuple[str, ...]:
    """Every name `--objectives` accepts: the metric, then the registered costs."""
    return (METRIC, *_REGISTRY)


def column_of(name: str) -> str:
    """The trials.csv column (and the study's metric name) of an objective, the metric included."""
    return METRIC_COLUMN if name == METRIC else cost_objective(name).column


# ---- the built-in costs ---------------------------------------------------------------------------------
def _latency(cfg: SubnetConfig, ctx: CostContext) -> Optional[float]:
    return None if ctx.latency_fn is None else float(ctx.latency_fn(cfg))


def _macs(cfg: SubnetConfig, ctx: CostContext) -> float:
    from profiling.flops import analytic_macs
    return analytic_macs(ctx.arch, cfg, ctx.seq_len, batch=ctx.batch, num_labels=ctx.num_labels)


def _params(cfg: SubnetConfig, ctx: CostContext) -> float:
    from profiling.flops import param_count
    return param_count(ctx.arch, cfg, ctx.num_labels)


LATENCY = register(CostObjective(
    name="latency", unit="ms", column="latency_ms", label="Latency (ms)", compute=_latency,
    pareto_column="latency_pred_ms", measured_column="latency_measured_ms", needs_latency=True))
MACS = register(CostObjective(name="macs", unit="MACs", column="macs", label="MACs (G multiply-adds)", compute=_macs,
                              integer=True, axis_scale=1e9))
PARAMS = register(CostObjective(name="params", unit="parameters", column="params", label="Parameters (millions)",
                                compute=_params, integer=True, axis_scale=1e6))
