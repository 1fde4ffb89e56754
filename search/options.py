"""The options of a search (`SearchOptions`): objectives, budget, sampler, storage, workers, constraints.

Checked eagerly: a bad option raises one `ValueError` naming it before any worker starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from elastic.training.device import Runtime
from elastic.training.option_fields import option
from elastic.training.options import DEFAULT_SCENARIO, SAMPLERS, Sampler
from search.objectives import METRIC, cost_objective, objective_names
from search.storage import make_storage

# The built-in objectives (the typed run configuration's choices); validation reads the registry, so an objective
# registered later (`search.objectives.register`) is accepted too.
OBJECTIVES: tuple[str, ...] = objective_names()


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Everything a search needs; checked eagerly (ValueError naming the option). Each field's help is its
    `dynabert search` flag's (app/cli/search.py generates the flags from these fields).

    Attributes:
        scenario: also gives seq_len/batch of MACs; a list of variants makes each trial a sub-network plus a variant,
            scored on that variant.
        seed: worker k uses seed + 1000 k.
        grace_period: longer than the longest pause of a live worker (swap, GC, a slow database), shorter than the
            wait you accept for a dead machine's trial; the dead trial is failed and its parameters queued again.
        max_retry: a config that kills its worker every time (e.g. out of memory) stops after this.
        threads: local workers split the cores; on a loaded machine 1 is often much faster than several
            spinning threads.
        runtime: device and precision of the evaluations (every worker's; None: cpu fp32).
    """

    run_dir: Path = option(help="a trained run directory")
    scenario: str = option(DEFAULT_SCENARIO, help="latency scenario key, e.g. cpu-eager-t2-b1-s128, or several "
                           "deployment variants of one target, comma-separated (e.g. cpu-eager-t2-b1-s64,"
                           "cpu-ort-int8-t2-b1-s64): each trial is then a sub-network in one variant, scored on that "
                           "variant (default: the last search's, else the predictor's, else cpu-eager-t2-b1-s128)")
    objectives: tuple[str, ...] = option(("metric", "latency"), help="metric first, then any registered cost "
                                         "(search.objectives): latency, macs, params", choices_from=objective_names)
    n_trials: int = option(100, help="total trials, kept across resumptions and over all workers", min=1)
    sampler: Sampler = option("tpe", help="the Optuna sampler; tpe has the highest dev hypervolume of the three "
                           "(docs/RECIPES.md)")
    seed: int = option(0, help="sampler seed")
    storage: str | None = option(None, help="Optuna RDB URL (default sqlite:///<run>/study.db); a server such as "
                                 "postgresql://user:pw@host/db lets workers on other machines join (README)")
    study_name: str | None = option(None, help="default search-<scenario>")
    n_workers: int = option(1, help="worker processes on this machine; other machines may add workers on the same "
                            "storage", min=1)
    heartbeat_interval: int = option(30, help="seconds between heartbeats of a running trial", min=1)
    grace_period: int = option(120, help="a trial without heartbeat for this many seconds is failed and its config "
                               "re-run", min=1)
    max_retry: int = option(2, help="re-runs of a dead worker's config", min=0)
    latency_budget_ms: float | None = option(None, help="constraint: latency <= this many ms", above=0)
    metric_floor: float | None = option(None, help="constraint: dev metric (%) >= this")
    max_params: int | None = option(None, help="constraint: parameters <= this", above=0)
    measure: bool = option(False, help="time every trial instead of using predictor.json")
    fidelity_subset: int | None = option(None, help="first evaluate on this many dev examples; full dev only for "
                                         "configs that could reach the front", min=1)
    ffn_step: int | None = option(None, help="FFN sizes are multiples of this (default FFN/8)", min=1)
    population_size: int = option(20, help="NSGA-II population", min=2)
    seed_with_rule: int = option(0, help="start a new study with the first N configs of the Mix'n'Match rule (the "
                                 "uniform grid, then per-layer width ramps and layer-drop patterns, evenly "
                                 "subsampled; search/rule.py) instead of only the 12 grid configs; 0: the grid only",
                                 min=0)
    stage: str | None = option(None, help="checkpoint to search (default: latest finished of stage3/stage2/stage1)")
    threads: int | None = option(None, help="torch threads for evaluation (default: torch's)", min=1)
    progress: bool = option(True, help="no progress bar")
    runtime: Runtime | None = None

    def __post_init__(self) -> None:
        from profiling.variants import parse_variants

        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "scenario", ",".join(parse_variants(self.scenario)))
        objs = self.objectives
        names = objective_names()
        if not objs or objs[0] != METRIC or len(objs) < 2:
            raise ValueError(f"objectives must start with 'metric' and name at least one cost "
                             f"({', '.join(names[1:])}), got {','.join(objs) or '(none)'}")
        bad = [o for o in objs if o not in names]
        if bad or len(set(objs)) != len(objs):
            raise ValueError(f"objectives: unknown or repeated {bad or objs}; choose from {', '.join(names)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{self.sampler}'")
        for name in ("n_trials", "n_workers", "heartbeat_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period} s) must be longer than heartbeat_interval "
                             f"({self.heartbeat_interval} s), or live workers' trials would be failed")
        if self.max_retry < 0:
            raise ValueError(f"max_retry must be >= 0, got {self.max_retry}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.seed_with_rule < 0:
            raise ValueError(f"seed_with_rule must be >= 0 configs, got {self.seed_with_rule}")
        if self.population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {self.population_size}")
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise ValueError(f"latency_budget_ms must be > 0, got {self.latency_budget_ms}")
        if self.max_params is not None and self.max_params <= 0:
            raise ValueError(f"max_params must be > 0, got {self.max_params}")
        if self.measure and self.n_workers > 1:
            raise ValueError("measure with n_workers > 1 would time configs while other workers compute on the "
                             "same cores: use the predictor for parallel search (front points are re-measured)")
        if self.fidelity_subset is not None and self.fidelity_subset < 1:
            raise ValueError(f"fidelity_subset must be >= 1 examples, got {self.fidelity_subset}")

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.run_dir / 'study.db').resolve()}"

    @property
    def variants(self) -> tuple[str, ...]:
        """The deployment variants searched (scenario keys; one for a plain --scenario)."""
        return tuple(self.scenario.split(","))

    @property
    def name(self) -> str:
        return self.study_name or f"search-{'+'.join(self.variants)}"

    @property
    def needs_latency(self) -> bool:
        return (any(cost_objective(o).needs_latency for o in self.objectives[1:])
                or self.latency_budget_ms is not None)

    def make_storage(self) -> optuna.storages.RDBStorage:
        """The storage of a worker: `storage_url` with the heartbeat and retry of these options."""
        return make_storage(self.storage_url, heartbeat_interval=self.heartbeat_interval,
                            grace_period=self.grace_period, max_retry=self.max_retry)
