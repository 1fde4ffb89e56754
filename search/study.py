"""Running the multi-objective search: options, objectives, constraints, workers, resume.

One trial = one per-layer sub-network (`search.space.suggest_subnet`). Objective values: the dev
metric (%, maximised) first, then the chosen costs (minimised): `latency` (ms on a scenario, from the
run's predictor or measured), `macs`, `params`. Constraints go through `trial.set_constraint` (Optuna 5),
so every sampler and `study.best_trials` see feasibility.

Workers run an ask/tell loop on a shared storage (SQLite in the run dir, or a database server for
workers on several machines). The budget is counted in the database alone (`search.budget`): all workers
together finish exactly `n_trials` COMPLETE trials; a worker that dies stops beating, its trial is failed
by the next worker that looks and its parameters run again; a killed search resumes with every completed
trial kept.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import optuna
from optuna.trial import TrialState

from elastic.config import SubnetConfig
from elastic.options import DEFAULT_SCENARIO, SAMPLERS, Sampler  # noqa: F401  (SAMPLERS re-exported)
from search.evaluator import (CachedEvaluator, RunContext, TrialCosts, could_reach_front, latency_fn,
                              subset_margin)
from search.budget import StudyBudget
from search.space import enqueue_grid, suggest_subnet
from search.storage import make_storage

if TYPE_CHECKING:
    from elastic.device import Runtime

OBJECTIVES: tuple[str, ...] = ("metric", "latency", "macs", "params")
METRIC_NAMES = {"metric": "dev_metric", "latency": "latency_ms", "macs": "macs", "params": "params"}


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Everything a search needs; checked eagerly (ValueError naming the option).

    Attributes:
        run_dir: the trained run.
        scenario: latency scenario key (e.g. cpu-eager-t2-b1-s128); also gives seq_len/batch of MACs.
        objectives: "metric" first, then any of latency, macs, params.
        n_trials: total trials of the study (over all workers and all resumptions).
        sampler: nsga2 (default), tpe or random. seed: sampler seed (worker k uses seed + 1000 k).
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
    sampler: Sampler = "nsga2"
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
    stage: str | None = None
    threads: int | None = None
    progress: bool = True
    runtime: "Runtime | None" = None  # None: cpu fp32

    def __post_init__(self) -> None:
        from profiling.scenario import Scenario

        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "objectives", tuple(self.objectives))
        Scenario.parse(self.scenario)
        objs = self.objectives
        if not objs or objs[0] != "metric" or len(objs) < 2:
            raise ValueError(f"objectives must start with 'metric' and name at least one cost "
                             f"(latency, macs, params), got {','.join(objs) or '(none)'}")
        bad = [o for o in objs if o not in OBJECTIVES]
        if bad or len(set(objs)) != len(objs):
            raise ValueError(f"objectives: unknown or repeated {bad or objs}; choose from {', '.join(OBJECTIVES)}")
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
    def name(self) -> str:
        return self.study_name or f"search-{self.scenario}"

    @property
    def needs_latency(self) -> bool:
        return "latency" in self.objectives or self.latency_budget_ms is not None

    def make_storage(self) -> optuna.storages.RDBStorage:
        """The storage of a worker: `storage_url` with the heartbeat and retry of these options."""
        return make_storage(self.storage_url, heartbeat_interval=self.heartbeat_interval,
                            grace_period=self.grace_period, max_retry=self.max_retry)


def make_sampler(kind: str, seed: int, *, population_size: int = 20) -> optuna.samplers.BaseSampler:
    """A seeded sampler: nsga2, tpe (multivariate) or random."""
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{kind}'")


# Study user attribute naming the checkpoint (`RunContext.cache_namespace()`) whose metrics its trials hold.
CHECKPOINT_ATTR = "checkpoint"


def open_study(opts: SearchOptions, *, worker: int = 0, checkpoint: str | None = None, arch: Any = None,
               storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create or load the study; directions follow `opts.objectives`.

    Args:
        checkpoint: the searched checkpoint's stamp (`<stage>@<finished_at>:`). A new study records it; a
            study that recorded another one (the stage was retrained, or another stage is searched) is
            refused, since its trials' metrics belong to other weights. None skips the check.
        arch: the searched architecture: the process that creates the study enqueues its uniform grid
            (the database refuses a second study of the same name, so exactly one process does, on
            whichever machine). None enqueues nothing.
        storage: the storage to open it on (default: `opts.make_storage()`).
    """
    directions = ["maximize"] + ["minimize"] * (len(opts.objectives) - 1)
    storage = storage if storage is not None else opts.make_storage()
    sampler = make_sampler(opts.sampler, opts.seed + 1000 * worker, population_size=opts.population_size)
    try:
        study = optuna.create_study(study_name=opts.name, storage=storage, directions=directions, sampler=sampler)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=opts.name, storage=storage, sampler=sampler)
        created = False
    if [d.name.lower() for d in study.directions] != directions:
        raise ValueError(f"study '{opts.name}' in {opts.storage_url} has other objectives "
                         f"({len(study.directions)}); use another --storage or study name")
    names = [METRIC_NAMES[o] for o in opts.objectives]
    if study.metric_names is not None and study.metric_names != names:
        raise ValueError(f"study '{opts.name}' was run with objectives {study.metric_names}, not {names}; "
                         "pass another --study-name (or --storage) for these objectives")
    if checkpoint is not None:
        recorded = study.user_attrs.get(CHECKPOINT_ATTR)
        if recorded is None:
            study.set_user_attr(CHECKPOINT_ATTR, checkpoint)
        elif recorded != checkpoint:
            raise ValueError(
                f"study '{opts.name}' in {opts.storage_url} holds trials of checkpoint {recorded.rstrip(':')}, but "
                f"the checkpoint searched now is {checkpoint.rstrip(':')} (retrained, or another stage): its "
                "metrics belong to other weights. Pass --study-name NEW for a search of the current weights "
                "(or --stage to search the old stage's checkpoint)")
    if study.metric_names != names:
        with warnings.catch_warnings():  # experimental since 3.2, still the way dashboards name axes
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    if created and arch is not None:
        enqueue_grid(study, arch, ffn_step=opts.ffn_step)
    return study


@dataclass
class Objective:
    """The trial function: config -> [metric, costs...], with constraints and JSON-safe user attrs."""

    opts: SearchOptions
    arch: Any
    evaluator: CachedEvaluator
    costs: Callable[[SubnetConfig], dict[str, float]]
    checkpoint: str | None = None  # the searched checkpoint's stamp (see open_study)
    eval_seconds: float = field(default=0.0, init=False)

    def __call__(self, trial: optuna.Trial) -> list[float]:
        opts = self.opts
        cfg = suggest_subnet(trial, self.arch, ffn_step=opts.ffn_step)
        costs = self.costs(cfg)
        cost_values = [float(costs[o]) for o in opts.objectives[1:]]
        before = self.evaluator.eval_seconds
        metric, hit, fidelity = self._metric(trial, cfg, cost_values)
        spent = self.evaluator.eval_seconds - before
        self.eval_seconds += spent
        attrs = {"dev_metric": metric, "fidelity": fidelity, "cache_hit": hit, "eval_seconds": round(spent, 4),
                 "macs": int(costs["macs"]), "params": int(costs["params"])}
        if "latency" in costs:
            attrs["latency_ms"] = costs["latency"]
            attrs["latency_source"] = "measured" if opts.measure else "predictor"
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if opts.latency_budget_ms is not None:
            trial.set_constraint("latency_budget", costs["latency"] - opts.latency_budget_ms)
        if opts.metric_floor is not None:
            trial.set_constraint("metric_floor", opts.metric_floor - metric)
        if opts.max_params is not None:
            trial.set_constraint("max_params", costs["params"] - opts.max_params)
        return [metric] + cost_values

    def _metric(self, trial: optuna.Trial, cfg: SubnetConfig, cost_values: list[float]) -> tuple[float, bool, str]:
        ev, n = self.evaluator, self.opts.fidelity_subset
        full = ev.cache.get(ev.cache.key(cfg, "dev", None)) or self._from_study(trial, cfg)
        if n is None or full is not None:
            m, hit = ev.metric(cfg, "dev")
            return m, hit, "full"
        sub, hit = ev.metric(cfg, "dev", n)
        done = [(t.values[0], t.values[1:]) for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs.get("fidelity") == "full"]
        if could_reach_front(sub, cost_values, subset_margin(sub, n), done):
            m, hit_full = ev.metric(cfg, "dev")
            return m, hit and hit_full, "full"
        return sub, hit, f"subset-{n}"

    def _from_study(self, trial: optuna.Trial, cfg: SubnetConfig) -> dict[str, Any] | None:
        """The full-dev metric of `cfg` from a COMPLETE trial of the study, put in this machine's cache.

        Workers on other machines keep their own cache file; the study (same checkpoint, checked by
        `open_study`) is what they share, so a config completed anywhere is evaluated nowhere again.
        """
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("config_hash") == cfg.hash and t.user_attrs.get("fidelity") == "full":
                rec = {"config_json": cfg.to_json(), "split": "dev", "n_examples": None, "seconds": 0.0,
                       "metric": float(t.user_attrs["dev_metric"]), "source": f"study trial {t.number}"}
                cache = self.evaluator.cache
                return cache.get_or_compute(cache.key(cfg, "dev", None), lambda: rec)[0]  # once, under its lock
        return None


@dataclass
class WorkerStats:
    """What one worker did: trials run, wall and evaluation seconds, stale trials it failed."""

    trials: int = 0
    seconds: float = 0.0
    eval_seconds: float = 0.0
    stale_failed: list[int] = field(default_factory=list)


def run_worker(opts: SearchOptions, *, worker: int = 0, objective: Objective | None = None,
               on_trial: Callable[[int], None] | None = None) -> WorkerStats:
    """Run trials until the study holds `opts.n_trials` COMPLETE trials (counted over all workers).

    It waits while other workers' trials fill the budget: one of them may die and be retried here.

    Args:
        opts: search options.
        worker: index of this worker (seed offset).
        objective: the trial function (built from the run dir when None).
        on_trial: called with the study's completed-trial count after each trial (progress bars).

    Returns:
        Statistics of this worker.
    """
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Local workers share the machine's cores: split them so that their threads do not fight.
    threads = opts.threads or (max(1, (os.cpu_count() or 1) // opts.n_workers) if opts.n_workers > 1 else None)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _worker_loop(opts, worker, objective or build_objective(opts), on_trial)
    finally:
        torch.set_num_threads(previous)  # in-process callers (the pipeline) keep their setting


def _worker_loop(opts: SearchOptions, worker: int, objective: Objective,
                 on_trial: Callable[[int], None] | None) -> WorkerStats:
    storage = opts.make_storage()
    study = open_study(opts, worker=worker, checkpoint=objective.checkpoint, arch=objective.arch, storage=storage)
    budget = StudyBudget(storage, study, opts.n_trials, seed=opts.seed + 1000 * worker + os.getpid())
    stats, t_start = WorkerStats(), time.perf_counter()
    me = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        stats.stale_failed += budget.fail_stale()
        trial = budget.claim()
        if trial is None:
            if budget.done():
                break
            budget.backoff(min(2.0, opts.heartbeat_interval))  # lost a race, or others' trials fill the budget
            continue
        trial.set_user_attr("worker", me)
        with budget.heartbeat(trial):
            try:
                values = objective(trial)
            except Exception:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
        # skip_if_finished: this worker stalled past the grace period, its trial was failed and queued
        # again meanwhile; the retry counts (and finds this result in a shared evaluation cache), not this one.
        if study.tell(trial, values, skip_if_finished=True).state == TrialState.COMPLETE:
            stats.trials += 1
        else:
            print(f"search: trial {trial.number} was failed by the heartbeat while this worker ran it "
                  f"(no beat for {opts.grace_period} s); its retry counts instead", file=sys.stderr, flush=True)
        if on_trial is not None:
            on_trial(len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
    stats.seconds = time.perf_counter() - t_start
    stats.eval_seconds = objective.eval_seconds
    return stats


def build_objective(opts: SearchOptions, ctx: RunContext | None = None) -> Objective:
    """The objective of a run dir: its checkpoint, its cached evaluator, its cost functions."""
    from profiling.scenario import Scenario

    ctx = ctx or RunContext(opts.run_dir, stage=opts.stage, runtime=opts.runtime)
    sc = Scenario.parse(opts.scenario)
    lat = latency_fn(ctx, opts.scenario, measure=opts.measure) if opts.needs_latency else None
    costs = TrialCosts(ctx.arch, ctx.model.num_labels, sc.seq_len, sc.batch, lat)
    return Objective(opts, ctx.arch, ctx.evaluator(subset=opts.fidelity_subset), costs,
                     checkpoint=ctx.cache_namespace())


WORKER_START_TIMEOUT_S = 300.0  # a local worker that has not started by then is left behind


def _start_together(start: Any) -> None:
    """Wait until every local worker has built its objective (a spawned one needs seconds to import), so that
    they share the budget from the first trial; a worker that never comes does not hold the others."""
    import threading
    try:
        start.wait(timeout=WORKER_START_TIMEOUT_S)
    except threading.BrokenBarrierError:
        pass


def _worker_main(opts: SearchOptions, worker: int, start: Any) -> None:
    objective = build_objective(opts)
    _start_together(start)
    run_worker(opts, worker=worker, objective=objective)


def run_search(opts: SearchOptions, *, objective: Objective | None = None) -> optuna.Study:
    """Run (or resume) the search to `opts.n_trials` trials, with `opts.n_workers` local processes.

    Workers started the same way on other machines (same storage URL and study name) share the budget.

    Returns:
        The study (all trials, including those of earlier runs).
    """
    from tqdm.auto import tqdm

    opts.run_dir.mkdir(parents=True, exist_ok=True)
    if objective is None:
        objective = build_objective(opts)  # fail fast (no checkpoint, no predictor) before any worker
    study = open_study(opts, checkpoint=objective.checkpoint, arch=objective.arch)
    done = lambda: len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))  # noqa: E731
    bar = tqdm(total=opts.n_trials, initial=min(done(), opts.n_trials), desc="search", unit="trial",
               disable=not opts.progress)
    try:
        # Worker 0 runs here (its objective is already built); workers 1..N-1 are spawned processes.
        ctx = mp.get_context("spawn")
        start = ctx.Barrier(opts.n_workers)
        procs = [ctx.Process(target=_worker_main, args=(opts, k, start)) for k in range(1, opts.n_workers)]
        for p in procs:
            p.start()
        try:
            if procs:
                _start_together(start)
            run_worker(opts, objective=objective, on_trial=lambda n: bar.update(min(n, opts.n_trials) - bar.n))
            while any(p.is_alive() for p in procs):
                time.sleep(0.5)
                bar.update(min(done(), opts.n_trials) - bar.n)
        finally:
            for p in procs:
                p.join()
        bad = [p.exitcode for p in procs if p.exitcode]
        if bad:  # worker 0 returned, so the budget is complete: their trials were failed and re-run
            print(f"search: {len(bad)} local worker(s) exited early (exit codes {bad}); the others "
                  "completed the budget", file=sys.stderr, flush=True)
        bar.update(min(done(), opts.n_trials) - bar.n)
    finally:
        bar.close()
    from search.pareto import write_trials_csv

    write_trials_csv(study, opts.run_dir / "trials.csv")
    return study
