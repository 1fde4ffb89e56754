"""The options of a search (`SearchOptions`): objectives, budget, sampler, storage, workers, constraints.

Checked eagerly: a bad option raises one `ValueError` naming it before any worker starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from elastic.training.options import DEFAULT_SCENARIO, SAMPLERS, Sampler
from search.objectives import METRIC, cost_objective, objective_names
from search.storage import make_storage

if TYPE_CHECKING:
    from elastic.training.device import Runtime

# The built-in objectives (the typed run configuration's choices); validation reads the registry, so an objective
# registered later (`search.objectives.register`) is accepted too.
OBJECTIVES: tuple[str, ...] = objective_names()


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Everything a search needs; checked eagerly (ValueError naming the option).

    Attributes:
        run_dir: the trained run.
        scenario: latency scenario key (e.g. cpu-eager-t2-b1-s128), or several deployment variants of one
            target as a comma-separated list (`profiling.variants`; e.g. cpu-eager-t2-b1-s64,cpu-ort-int8-t2-b1-s64):
            each trial is then a sub-network plus a variant, scored on that variant. Also gives seq_len/batch of MACs.
        objectives: "metric" first, then any registered cost (`search.objectives`: latency, macs, params).
        n_trials: total trials of the study (over all workers and all resumptions).
        sampler: tpe (default: chosen on dev hypervolume, docs/RECIPES.md), nsga2 or random.
        seed: sampler seed (worker k uses seed + 1000 k).
        storage: Optuna RDB URL (default sqlite:///<run>/study.db); a server URL
            (postgresql://user:pw@host/db) lets workers on other machines join. study_name: default
            search-<scenario>.
        n_workers: local worker processes on the same storage (workers of other machines come on top).
        heartbeat_interval: seconds between heartbeats of a running trial (in the database).
        grace_period: seconds without a heartbeat after which a trial counts as dead: failed, and its
            parameters queued again. Longer than the longest pause of a live worker (swap, GC, a slow
            database), shorter than the wait you accept for a dead machine's trial.
        max_retry: how often the parameters of a dead worker's trial are re-run (a config that kills
            its worker every time, e.g. out of memory, stops after this).
        latency_budget_ms / metric_floor / max_params: constraints (None = none).
        measure: time latency for real instead of the predictor.
        fidelity_subset: dev examples of the first, cheap evaluation (None = full dev only).
        ffn_step: FFN lattice step (default intermediate_size // 8).
        population_size: NSGA-II population.
        seed_with_rule: enqueue the first N configs of the Mix'n'Match rule (`search.rule`: the grid, then
            per-layer width schedules and layer-drop patterns) instead of only the 12 grid configs, when the
            study is created (0: the grid only).
        stage: checkpoint stage to search (default: latest finished).
        threads: torch intra-op threads for evaluation (None: torch's default; local workers split
            the cores). On a loaded machine 1 is often much faster than several spinning threads.
        progress: show a tqdm bar.
        runtime: device and precision of the evaluations (every worker's).
    """

    run_dir: Path
    scenario: str = DEFAULT_SCENARIO
    objectives: tuple[str, ...] = ("metric", "latency")
    n_trials: int = 100
    sampler: Sampler = "tpe"
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    n_workers: int = 1
    heartbeat_interval: int = 30
    grace_period: int = 120
    max_retry: int = 2
    latency_budget_ms: float | None = None
    metric_floor: float | None = None
    max_params: int | None = None
    measure: bool = False
    fidelity_subset: int | None = None
    ffn_step: int | None = None
    population_size: int = 20
    seed_with_rule: int = 0
    stage: str | None = None
    threads: int | None = None
    progress: bool = True
    runtime: "Runtime | None" = None  # None: cpu fp32

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
