"""The search action: an Optuna multi-objective study over per-layer sub-networks (resumed from its storage),
then the front re-measured (pareto.csv, search.json)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from elastic.training.options import DEFAULT_SCENARIO
from elastic.rundir import RunDir, RunDirError
from search.options import SearchOptions


@dataclass(frozen=True)
class SearchResult:
    """The study that ran, and the finalized front's summary (None with `finalize=False`)."""

    study_name: str
    storage_url: str
    n_trials: int
    run_dir: Path
    scenario: str
    summary: Optional[dict[str, Any]] = None

    def lines(self) -> list[str]:
        out = [f"study '{self.study_name}' in {self.storage_url}: {self.n_trials} trials, "
               f"trials.csv written to {self.run_dir / 'trials.csv'}"]
        s = self.summary
        if s is not None:
            conf = s.get("confirmation") or {}
            out.append(f"front confirmed on {conf['n']} {conf['split']} examples ({conf['candidates']} candidates "
                       f"re-scored)" if conf.get("split") else f"warning: {conf.get('warning', 'front not confirmed')}")
            out.append(f"Pareto front: {s['n_front']} points (each re-measured on its variant of {self.scenario}); hypervolume "
                       f"{s['hypervolume']:.4g} (reference {s['reference_point']}); knee {s['knee_hash']} "
                       f"(trial {s['knee_trial']}); pareto.csv and search.json in {self.run_dir}")
        return out


def default_scenario(run_dir: Path) -> str:
    """The scenario of the run's search (its variants, comma-separated), else of its predictor, else the default."""
    rd = RunDir(run_dir)
    for f in (rd.search_json, rd.predictor_json):
        if f.exists():
            try:
                return str(rd.read_json(f)["scenario"])
            except (RunDirError, KeyError):
                continue
    return DEFAULT_SCENARIO


def front_timer(ctx, scenario_key: str) -> Callable[[list[Any]], dict[str, Any]]:
    """configs -> their latencies on `scenario_key`, all as paired ratios to the full model on one clock
    (`profiling.latency.measure_front`; not cached: the common full-model time belongs to one call)."""
    from profiling.latency import measure_front
    from profiling.scenario import Scenario

    scenario = Scenario.parse(scenario_key).check(ctx.arch)
    return lambda cfgs: measure_front(ctx.model, cfgs, scenario)


def search(opts: SearchOptions, *, finalize: bool = True) -> SearchResult:
    """Run (or resume) the study to `opts.n_trials` trials; with `finalize`, re-measure the front and write
    pareto.csv and search.json (test metrics too when the task has a test split)."""
    from elastic.model.config import SubnetConfig, grid
    from search.confirm import run_confirmer
    from search.evaluator import RunContext
    from search.pareto import finalize as finalize_front
    from search.objective import build_objective
    from search.study import run_search

    if not Path(opts.run_dir).is_dir():
        raise FileNotFoundError(f"run directory {opts.run_dir} does not exist")
    ctx = RunContext(opts.run_dir, stage=opts.stage, runtime=opts.runtime)
    objective = build_objective(opts, ctx)
    study = run_search(opts, objective=objective)
    result = SearchResult(study_name=study.study_name, storage_url=opts.storage_url, n_trials=len(study.trials),
                          run_dir=Path(opts.run_dir), scenario=opts.scenario)
    if not finalize:
        return result
    # The reference point's costs: the full model's in its most expensive variant, so every variant's full model
    # still adds volume.
    fulls = [objective.costs(SubnetConfig.full(ctx.arch), v) if len(opts.variants) > 1 else
             objective.costs(SubnetConfig.full(ctx.arch)) for v in opts.variants]
    has_test = "test" in ctx.task.splits
    # The front shown is confirmed on the run's held-out slice of train, each point in its own variant
    # (search.confirm); a run without the slice keeps the dev front, with a warning in search.json.
    summary = finalize_front(study, run_dir=opts.run_dir, scenario=opts.scenario, objectives=opts.objectives,
                             full_costs=[max(f[o] for f in fulls) for o in opts.objectives[1:]],
                             time_front={v: front_timer(ctx, v) for v in opts.variants},
                             test_fn={v: variant_test_fn(objective.evaluators[v]) for v in opts.variants}
                             if has_test else None,
                             confirmer=run_confirmer(ctx, objective.evaluators),
                             grid_hashes={c.hash for _, _, c in grid(ctx.arch)})
    return SearchResult(**{**result.__dict__, "summary": summary})


def variant_test_fn(evaluator) -> Callable[[Any], float]:
    """cfg -> test metric (%) through a variant's cached evaluator (its artifact's, as its dev metric)."""
    return lambda cfg: evaluator(cfg, "test")
