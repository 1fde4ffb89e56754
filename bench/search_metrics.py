"""Pure functions of the search benchmark: fronts without duplicate configs, hypervolume of re-measured fronts
on test (and dev) accuracy, mean and spread over seeds, the sampler comparison. Tested in
tests/test_search_bench.py on fixtures with known answers.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence, TypeVar

from search.pareto import count_dominated, hypervolume, pareto_mask

T = TypeVar("T")


@dataclass(frozen=True)
class Point:
    """One re-measured sub-network: dev and test accuracy (%), measured latency (ms)."""

    config_hash: str
    dev: float
    test: float
    latency_ms: float


@dataclass(frozen=True)
class Trial:
    """What the front selection needs of a completed trial: its number, objective values as searched
    (metric, predicted latency) and its config's hash."""

    number: int
    values: tuple[float, ...]
    config_hash: str


def dedup(items: Iterable[T], key) -> list[T]:
    """`items` with only the first of each `key(item)` kept, order preserved."""
    seen: set[Hashable] = set()
    out = []
    for it in items:
        k = key(it)
        if k not in seen:
            seen.add(k)
            out.append(it)
    return out


def searched_front(trials: Sequence[Trial], budget: int) -> list[Trial]:
    """The front the search found after `budget` trials: the non-dominated of the first `budget` completed
    trials (by number) on the values it searched, one trial per config (a sampler may propose a config
    again: it counts once)."""
    done = dedup(sorted(trials, key=lambda t: t.number)[:budget], key=lambda t: t.config_hash)
    if not done:
        return []
    mask = pareto_mask([list(t.values) for t in done])
    return [t for t, keep in zip(done, mask) if keep]


def hv(points: Sequence[Point], reference: Sequence[float], on: str = "test") -> float:
    """Hypervolume of (accuracy on `on` = test or dev, measured latency) w.r.t. `reference` (% x ms)."""
    if on not in ("test", "dev"):
        raise ValueError(f"on must be 'test' or 'dev', got {on!r}")
    return hypervolume([[getattr(p, on), p.latency_ms] for p in points], reference)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min, max and count."""
    vals = [float(v) for v in values]
    if not vals:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def beats_by_one_sd(a: Sequence[float], b: Sequence[float]) -> bool:
    """mean(a) - mean(b) > the pooled standard deviation of the two samples (seeds are not paired)."""
    sa, sb = spread(a), spread(b)
    pooled = math.sqrt((sa["std"] ** 2 + sb["std"] ** 2) / 2)
    return sa["mean"] - sb["mean"] > pooled


def dominated_on_test(grid: Sequence[Point], front: Sequence[Point]) -> int:
    """How many grid points are strictly dominated on (test accuracy, measured latency) by a front point."""
    return count_dominated([[g.test, g.latency_ms] for g in grid], [[f.test, f.latency_ms] for f in front])


def front_shortfall_on_test(grid: Sequence[Point], front: Sequence[Point]) -> float | None:
    """By how many test-accuracy points the front falls short of the grid at worst: for each grid point, its
    test accuracy minus the best test accuracy of the front points at most as slow, the largest of these
    (0.0 when every grid point is matched or beaten); None when some grid point is faster than every front point.
    Read it beside the test set's standard error: the front is chosen on dev, so a grid point that is merely
    lucky on test stays unbeaten."""
    worst = 0.0
    for g in grid:
        best = max((f.test for f in front if f.latency_ms <= g.latency_ms), default=None)
        if best is None:
            return None
        worst = max(worst, g.test - best)
    return worst


def standard_error_pct(accuracy_pct: float, n: int) -> float:
    """One standard error (percentage points) of an accuracy measured on `n` examples (binomial)."""
    p = accuracy_pct / 100.0
    return 100.0 * math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


def compare_with_rule(hv_test: dict[str, Sequence[float]], hv_dev: dict[str, Sequence[float]], sampler: str,
                      budgets: Sequence[int]) -> dict:
    """The search (`sampler`'s rows `<sampler>_<budget>`) against the Mix'n'Match rule (rows `rule_<budget>`):
    mean and sample sd over seeds of the hypervolume on test (reported) and on dev (deciding), per budget. The
    decision is made on dev: the search is better when its mean dev hypervolume beats the rule's by more than
    their pooled sd (`beats_by_one_sd`), the rule when the reverse holds, else a tie; the rule is "as good"
    unless the search is better. The top-level figures are the largest budget's."""
    by_budget: dict[str, dict] = {}
    for b in budgets:
        s, r = f"{sampler}_{b}", f"rule_{b}"
        st, rt, sd, rd = spread(hv_test[s]), spread(hv_test[r]), spread(hv_dev[s]), spread(hv_dev[r])
        better = ("search" if beats_by_one_sd(hv_dev[s], hv_dev[r])
                  else "rule" if beats_by_one_sd(hv_dev[r], hv_dev[s]) else "tie")
        by_budget[str(b)] = {
            "hv_test_search": st["mean"], "hv_test_rule": rt["mean"], "sd": {"search": st["std"], "rule": rt["std"]},
            "hv_dev_search": sd["mean"], "hv_dev_rule": rd["mean"], "sd_dev": {"search": sd["std"], "rule": rd["std"]},
            "better_on_dev": better, "rule_as_good": better != "search", "seeds": st["n"]}
    top = max(budgets)
    return {"sampler": sampler, "budget": top, **by_budget[str(top)],
            "rule_as_good_at_every_budget": all(v["rule_as_good"] for v in by_budget.values()),
            "decided_on": "dev hypervolume (mean over seeds; better = ahead by more than the pooled sd); "
                          "test hypervolume reported only",
            "by_budget": by_budget}
