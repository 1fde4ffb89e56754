"""The trial function of the search: a suggested sub-network -> [dev metric %, costs...], with constraints.

Objective values: the dev metric (%, maximised) first, then the chosen costs (minimised), each an entry of the
registry `search.objectives`: `latency` (ms on a scenario, from the run's predictor or measured), `macs`,
`params`. Every registered cost is computed and recorded under its column. Constraints go through
`trial.set_constraint` (Optuna 5), so every sampler and `study.best_trials` see feasibility. With a dev
subset (`fidelity_subset`), a config is evaluated on all of dev only when it could still reach the front
(`search.fidelity`).

Deployment variants (`profiling.variants`): with several (`SearchOptions.variants`), a trial is a sub-network plus
a categorical `variant` parameter (a scenario key), and both objectives are the variant's own: latency from that
scenario's predictor (or measured there), the dev metric of its artifact (`RunContext.variant_metric`: the INT8
model's for an INT8 variant), cached per (checkpoint, config, variant).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import optuna
from optuna.trial import TrialState

from elastic.model.config import SubnetConfig
from profiling.variants import variant_columns
from search.eval_cache import CachedEvaluator
from search.evaluator import RunContext, latency_fn
from search.fidelity import could_reach_front, subset_margin
from search.objectives import LATENCY, METRIC_COLUMN, CostContext, cost_objectives
from search.options import SearchOptions
from search.space import suggest_subnet


@dataclass
class TrialCosts:
    """Every registered cost of a config in a variant (`search.objectives`: latency in ms, predicted or measured,
    MACs, params, ...), by objective name; a cost whose function lacks its input (no latency) is left out.

    `latency_fn` is one function (a single variant) or one per variant key.
    """

    arch: Any
    num_labels: int
    seq_len: int
    batch: int
    latency_fn: Callable[[SubnetConfig], float] | Mapping[str, Callable[[SubnetConfig], float]] | None = None

    def __call__(self, cfg: SubnetConfig, variant: str | None = None) -> dict[str, float]:
        fn = self.latency_fn
        if isinstance(fn, Mapping):
            fn = fn[variant if variant is not None else next(iter(fn))]
        ctx = CostContext(self.arch, self.num_labels, self.seq_len, self.batch, fn)
        out: dict[str, float] = {}
        for o in cost_objectives():
            value = o.compute(cfg, ctx)
            if value is not None:
                out[o.name] = value
        return out


@dataclass
class Objective:
    """The trial function: (config, variant) -> [metric, costs...], with constraints and JSON-safe user attrs.

    Attributes:
        evaluators: one cached evaluator per variant key (`evaluator` alone serves a single-variant search).
        variants: the scenario keys searched (default: the one of `opts.scenario`).
    """

    opts: SearchOptions
    arch: Any
    evaluator: CachedEvaluator
    costs: Callable[..., dict[str, float]]
    checkpoint: str | None = None  # the searched checkpoint's stamp (see open_study)
    evaluators: dict[str, CachedEvaluator] = field(default_factory=dict)
    eval_seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not self.evaluators:
            self.evaluators = {self.variants[0]: self.evaluator}

    @property
    def variants(self) -> tuple[str, ...]:
        return self.opts.variants

    def __call__(self, trial: optuna.Trial) -> list[float]:
        opts = self.opts
        cfg = suggest_subnet(trial, self.arch, ffn_step=opts.ffn_step)
        variant = suggest_variant(trial, self.variants)
        costs = self.costs(cfg, variant) if len(self.variants) > 1 else self.costs(cfg)
        cost_values = [float(costs[o]) for o in opts.objectives[1:]]
        ev = self.evaluators[variant]
        before = ev.eval_seconds
        metric, hit, fidelity = self._metric(trial, cfg, variant, cost_values)
        spent = ev.eval_seconds - before
        self.eval_seconds += spent
        attrs = {METRIC_COLUMN: metric, "fidelity": fidelity, "cache_hit": hit, "eval_seconds": round(spent, 4),
                 **{o.column: o.record(costs[o.name]) for o in cost_objectives() if o.name in costs},
                 **variant_columns(variant)}
        if LATENCY.name in costs:
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

    def _metric(self, trial: optuna.Trial, cfg: SubnetConfig, variant: str, cost_values: list[float]
                ) -> tuple[float, bool, str]:
        ev, n = self.evaluators[variant], self.opts.fidelity_subset
        full = ev.cache.get(ev.cache.key(cfg, "dev", None)) or self._from_study(trial, cfg, variant)
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

    def _from_study(self, trial: optuna.Trial, cfg: SubnetConfig, variant: str) -> dict[str, Any] | None:
        """The full-dev metric of `cfg` in `variant` from a COMPLETE trial of the study, put in this machine's cache.

        Workers on other machines keep their own cache file; the study (same checkpoint, checked by
        `open_study`) is what they share, so a config completed anywhere is evaluated nowhere again. A trial of
        another variant does not count (an INT8 trial's metric is not the fp32 model's); trials from before
        variants existed carry no `scenario` and are of the study's only variant.
        """
        tag = variant_columns(variant)
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            same = all(t.user_attrs.get(k, tag[k]) == tag[k] for k in ("precision", "runtime"))
            if t.user_attrs.get("config_hash") == cfg.hash and t.user_attrs.get("fidelity") == "full" and same:
                rec = {"config_json": cfg.to_json(), "split": "dev", "n_examples": None, "seconds": 0.0,
                       "metric": float(t.user_attrs["dev_metric"]), "source": f"study trial {t.number}"}
                cache = self.evaluators[variant].cache
                return cache.get_or_compute(cache.key(cfg, "dev", None), lambda: rec)[0]  # once, under its lock
        return None


def suggest_variant(trial: optuna.trial.BaseTrial, variants: tuple[str, ...]) -> str:
    """The trial's variant: the categorical parameter `variant` when there are several, else the only one."""
    if len(variants) == 1:
        return variants[0]
    return str(trial.suggest_categorical("variant", list(variants)))


def build_objective(opts: SearchOptions, ctx: RunContext | None = None) -> Objective:
    """The objective of a run dir: its checkpoint, one cached evaluator and latency function per variant."""
    from profiling.scenario import Scenario

    ctx = ctx or RunContext(opts.run_dir, stage=opts.stage, runtime=opts.runtime)
    sc = Scenario.parse(opts.variants[0])  # every variant has the same batch and sequence length (one target)
    lat = ({v: latency_fn(ctx, v, measure=opts.measure) for v in opts.variants} if opts.needs_latency else None)
    if lat is not None and len(lat) == 1:
        lat = next(iter(lat.values()))
    costs = TrialCosts(ctx.arch, ctx.model.num_labels, sc.seq_len, sc.batch, lat)
    for v in opts.variants:  # a variant's accuracy is scored where it runs: a CUDA variant needs the GPU here
        if Scenario.parse(v).device == "cuda":
            Scenario.parse(v).check(ctx.arch)
    evaluators = {v: ctx.evaluator(subset=opts.fidelity_subset, variant=v) for v in opts.variants}
    return Objective(opts, ctx.arch, evaluators[opts.variants[0]], costs, checkpoint=ctx.cache_namespace(),
                     evaluators=evaluators)
