"""Running the multi-objective search: the study, its workers, resume.

One trial = one per-layer sub-network (`search.space.suggest_subnet`), scored by `search.objective.Objective`
under the options of `search.options.SearchOptions`.

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
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from elastic.training.options import SAMPLERS
from elastic.rundir import RunDir
from search.budget import StudyBudget
from search.objective import Objective, build_objective
from search.objectives import column_of, cost_objective
from search.options import SearchOptions
from search.rule import enqueue_rule
from search.space import enqueue_grid


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
SAMPLER_ATTR = "sampler"  # the sampler that made the trials; another one refuses to resume the study
RULE_ATTR = "seeded_with_rule"  # how many of the rule's configs (`search.rule`) were enqueued at creation


def open_study(opts: SearchOptions, *, worker: int = 0, checkpoint: str | None = None, arch: Any = None,
               storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create or load the study; directions follow `opts.objectives`.

    Args:
        checkpoint: the searched checkpoint's stamp (`<stage>@<finished_at>:`). A new study records it; a
            study that recorded another one (the stage was retrained, or another stage is searched) is
            refused, since its trials' metrics belong to other weights. None skips the check.
        arch: the searched architecture: the process that creates the study enqueues its uniform grid
            (the database refuses a second study of the same name, so exactly one process does, on
            whichever machine), and with `opts.seed_with_rule` the rule's first configs. None enqueues nothing.
        storage: the storage to open it on (default: `opts.make_storage()`).
    """
    directions = ["maximize"] + [cost_objective(o).direction for o in opts.objectives[1:]]
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
    names = [column_of(o) for o in opts.objectives]
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
    recorded_sampler = study.user_attrs.get(SAMPLER_ATTR)
    if recorded_sampler is None:
        study.set_user_attr(SAMPLER_ATTR, opts.sampler)
    elif recorded_sampler != opts.sampler:
        raise ValueError(
            f"study '{opts.name}' in {opts.storage_url} was run with sampler {recorded_sampler}, not "
            f"{opts.sampler}: resuming it would mix two samplers' trials in one study. Pass --sampler "
            f"{recorded_sampler} to resume it, or --study-name NEW for a {opts.sampler} search")
    if study.metric_names != names:
        with warnings.catch_warnings():  # experimental since 3.2, still the way dashboards name axes
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    if created and arch is not None:
        enqueue_grid(study, arch, ffn_step=opts.ffn_step, variants=opts.variants)
        if opts.seed_with_rule:  # the rule's configs after the grid (which they start with: not enqueued twice)
            cfgs = enqueue_rule(study, arch, opts.seed_with_rule, seed=opts.seed, ffn_step=opts.ffn_step,
                                variants=opts.variants)
            study.set_user_attr(RULE_ATTR, len(cfgs))
            if len(cfgs) < opts.seed_with_rule:
                print(f"search: the rule's family has {len(cfgs)} configs, fewer than --seed-with-rule "
                      f"{opts.seed_with_rule}: all of them are enqueued", file=sys.stderr, flush=True)
    return study


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

    write_trials_csv(study, RunDir(opts.run_dir).trials_csv)
    return study
