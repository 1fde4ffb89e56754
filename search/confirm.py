"""Front figures a user can trust: every front point confirmed on examples the search never saw.

A front chosen on dev carries a winner's curse: among many configs of nearly equal dev metric, those that topped
dev partly by luck make the front, and their dev figure promises more than they deliver (issue 34: on a 377-example
dev, the searched points lost 4.8 test points on average against 0.4 for the grid's). `search.pareto.finalize`
therefore shows and exports the front of CONFIRMED figures:

1. Only full-fidelity points compete (a point scored on a dev subset would be refused by export's re-score).
2. Candidates: the points whose dev metric lies within one standard error (their own, `standard_error_pct` on
   dev's size) of the best dev metric among the points at most as costly on every searched cost
   (`near_front_mask`; margin 0 would be the dev front itself).
3. Each candidate is scored on the confirming split, the run's held-out slice of train (`search.evaluator.HELDOUT`:
   never trained on, never seen by the search), in ITS deployment variant (the artifact's metric for every variant
   but fp32 eager; the cached evaluator either way, so a re-run scores nothing twice).
4. The front is the Pareto front on (confirmed metric, searched costs); pareto.csv states the confirmed figure, its
   standard error, split and size beside the dev figure and its standard error.

What remains optimistic: step 4 picks, among the few candidates near one cost, the best on the held-out slice, so
the confirmed figure of a front point keeps a small selection bias (of order one held-out standard error at most,
far less than dev's over hundreds of trials). `bench.front_confirmation` measures the fronts on test; pareto.csv
carries dev, confirmed and test figures and `grid_point` so a bench can compare the gaps of searched and grid points.

A run without a held-out slice (`--importance-split dev`, or an empty slice) has nothing to confirm on: the front
stays the dev front, `confirm_split` is empty and search.json says so under `confirmation.warning`.

bench.front_confirmation shares `near_front_mask`, `standard_error_pct` and the held-out split with this module.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from elastic.model.config import SubnetConfig

# Metrics whose standard error is binomial: sqrt(p (1 - p) / n). Others (F1, MCC, correlations) have none stated
# (pareto.csv leaves dev_se/confirm_se empty); their candidate margin uses the same formula as a heuristic.
BINOMIAL_METRICS: tuple[str, ...] = ("accuracy",)


def standard_error_pct(metric_pct: float, n_examples: int) -> float:
    """Binomial standard error, in points, of an accuracy of `metric_pct` % on `n_examples` examples."""
    if n_examples < 1:
        raise ValueError(f"a standard error needs at least one example, got {n_examples}")
    p = min(max(float(metric_pct) / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(p * (1.0 - p) / n_examples)


def near_front_mask(points: Sequence[Sequence[float]], margins: float | Sequence[float]) -> np.ndarray:
    """Which (metric, costs...) points lie within `margins` (one per point, or one for all) of the best metric
    among the points at most as costly on every cost (each point counts itself: margin 0 keeps the front)."""
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return np.zeros(0, dtype=bool)
    margin = np.broadcast_to(np.asarray(margins, dtype=float), (len(pts),))
    if np.any(margin < 0):
        raise ValueError(f"margins must be >= 0, got {margin.min()}")
    cheaper = np.all(pts[None, :, 1:] <= pts[:, None, 1:], axis=2)  # [i, j]: j costs no more than i everywhere
    best = np.where(cheaper, pts[None, :, 0], -np.inf).max(axis=1)
    return pts[:, 0] >= best - margin


def pareto_mask(points: Sequence[Sequence[float]]) -> np.ndarray:
    """Non-dominated (metric, costs...) points, metric maximised (`search.pareto.pareto_mask`, which imports this
    module)."""
    from optuna.study._multi_objective import _is_pareto_front

    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return np.zeros(0, dtype=bool)
    return _is_pareto_front(np.concatenate([-pts[:, :1], pts[:, 1:]], axis=1), assume_unique_lexsorted=False)


@dataclass
class Confirmer:
    """How a search's front points are confirmed.

    Attributes:
        split: the confirming split (`heldout`), or None: nothing to confirm on (`reason` says why).
        n: its examples. dev_n: dev's examples (the standard error of a dev figure).
        metric: the task's primary metric name (`accuracy` gets standard errors).
        score: variant key -> (cfg -> metric % on `split` of that variant's artifact).
        reason: why `split` is None (the warning search.json carries).
    """

    split: str | None
    n: int
    dev_n: int
    metric: str
    score: Mapping[str, Callable[[SubnetConfig], float]] = field(default_factory=dict)
    reason: str = ""

    @property
    def binomial(self) -> bool:
        return self.metric in BINOMIAL_METRICS

    def se(self, metric_pct: float, n: int) -> float | str:
        """The standard error column of a figure on `n` examples ("" when the metric has none stated)."""
        return round(standard_error_pct(metric_pct, n), 4) if self.binomial and n > 0 else ""

    def margin(self, dev_metric: float) -> float:
        return standard_error_pct(dev_metric, max(self.dev_n, 1))


def run_confirmer(ctx: Any, evaluators: Mapping[str, Any]) -> Confirmer:
    """The confirmer of a `search.evaluator.RunContext`: its held-out slice scored through each variant's cached
    evaluator (split `heldout`), or none (with the reason) when the run kept no slice."""
    from search.evaluator import HELDOUT

    n_dev = len(ctx.task.splits["dev"]) if "dev" in ctx.task.splits else 0
    metric = str(ctx.run.get("metric") or getattr(ctx.task, "metric", "") or "accuracy")
    if ctx.heldout_examples <= 0:
        why = ("the run kept no held-out slice of train (importance measured on dev, --importance-split dev): the "
               "front is chosen and shown on dev alone, whose figures carry the search's winner's curse")
        return Confirmer(None, 0, n_dev, metric, reason=why)
    return Confirmer(HELDOUT, ctx.heldout_examples, n_dev, metric,
                     {v: (lambda ev: lambda cfg: float(ev(cfg, HELDOUT)))(ev) for v, ev in evaluators.items()})


@dataclass
class Confirmed:
    """The outcome of `confirm`: the chosen trials, their confirmed figures (by index of `chosen`), what it cost."""

    chosen: list[Any]
    figures: list[float | None]
    summary: dict[str, Any]


def confirm(pool: Sequence[Any], keys: Sequence[str], confirmer: Confirmer | None) -> Confirmed:
    """The front of a search's full-fidelity points (`pool`: FrozenTrials, values (dev metric, costs...); `keys`
    their variants), confirmed as the module docstring says, or the dev front when there is nothing to confirm on.

    Returns:
        `Confirmed`; its `summary` is search.json's `confirmation`.
    """
    values = [list(t.values) for t in pool]
    if confirmer is None or confirmer.split is None:
        why = confirmer.reason if confirmer is not None else "no confirming split was given to finalize"
        print(f"warning: the front is not confirmed: {why}", file=sys.stderr, flush=True)
        mask = pareto_mask(values)
        return Confirmed([t for t, m in zip(pool, mask) if m], [None] * int(mask.sum()),
                         {"split": None, "n": 0, "warning": f"front not confirmed: {why}"})
    t0 = time.perf_counter()
    near = near_front_mask(values, [confirmer.margin(v[0]) for v in values])
    cands = [(t, k) for t, k, m in zip(pool, keys, near) if m]
    figures = [confirmer.score[k](SubnetConfig.from_json(t.user_attrs["config_json"])) for t, k in cands]
    front = pareto_mask([[f, *t.values[1:]] for f, (t, _) in zip(figures, cands)])
    chosen = [(t, f) for (t, _), f, m in zip(cands, figures, front) if m]
    summary = {"split": confirmer.split, "n": confirmer.n, "dev_n": confirmer.dev_n, "metric": confirmer.metric,
               "candidates": len(cands), "full_fidelity_points": len(pool),
               "margin": "one standard error of each point's dev metric (binomial on dev's size)",
               "rule": "points within the margin of the best dev metric at most as costly, re-scored on the split in "
                       "their own variant; the front is non-dominated on (confirmed metric, searched costs)",
               "seconds": round(time.perf_counter() - t0, 2)}
    return Confirmed([t for t, _ in chosen], [f for _, f in chosen], summary)
