"""The trial function of the search: a suggested sub-network -> [dev metric %, costs...], with constraints.

Objective values: the dev metric (%, maximised) first, then the chosen costs (minimised): `latency` (ms on a
scenario, from the run's predictor or measured), `macs`, `params`. Constraints go through
`trial.set_constraint` (Optuna 5), so every sampler and `study.best_trials` see feasibility. With a dev
subset (`fidelity_subset`), a config is evaluated on all of dev only when it could still reach the front
(`search.fidelity`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from elastic.config import SubnetConfig
from search.eval_cache import CachedEvaluator
from search.evaluator import RunContext, latency_fn
from search.fidelity import could_reach_front, subset_margin
from search.options import SearchOptions
from search.space import suggest_subnet


@dataclass
class TrialCosts:
    """Cost objectives of a config: latency (ms, predicted or measured), MACs, params."""

    arch: Any
    num_labels: int
    seq_len: int
    batch: int
    latency_fn: Callable[[SubnetConfig], float] | None = None

    def __call__(self, cfg: SubnetConfig) -> dict[str, float]:
        from profiling.flops import analytic_macs, param_count

        out: dict[str, float] = {
            "macs": analytic_macs(self.arch, cfg, self.seq_len, batch=self.batch, num_labels=self.num_labels),
            "params": param_count(self.arch, cfg, self.num_labels)}
        if self.latency_fn is not None:
            out["latency"] = float(self.latency_fn(cfg))
        return out


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


def build_objective(opts: SearchOptions, ctx: RunContext | None = None) -> Objective:
    """The objective of a run dir: its checkpoint, its cached evaluator, its cost functions."""
    from profiling.scenario import Scenario

    ctx = ctx or RunContext(opts.run_dir, stage=opts.stage, runtime=opts.runtime)
    sc = Scenario.parse(opts.scenario)
    lat = latency_fn(ctx, opts.scenario, measure=opts.measure) if opts.needs_latency else None
    costs = TrialCosts(ctx.arch, ctx.model.num_labels, sc.seq_len, sc.batch, lat)
    return Objective(opts, ctx.arch, ctx.evaluator(subset=opts.fidelity_subset), costs,
                     checkpoint=ctx.cache_namespace())
