"""Multi-fidelity: when a metric measured on a dev subset is worth a full evaluation."""
from __future__ import annotations

import math
from typing import Sequence


def subset_margin(metric_pct: float, n_examples: int) -> float:
    """Two binomial standard errors of an accuracy-like % measured on `n_examples` (at least 1 point).

    A heuristic for F1/MCC/Spearman too: what matters is that a small subset gets a wide margin.
    """
    p = min(max(metric_pct / 100.0, 0.0), 1.0)
    return max(1.0, 200.0 * math.sqrt(max(p * (1 - p), 0.01) / max(n_examples, 1)))


def could_reach_front(subset_metric: float, costs: Sequence[float], margin: float,
                      done: Sequence[tuple[float, Sequence[float]]]) -> bool:
    """Whether a config measured on a subset could still be Pareto-optimal.

    It cannot when some fully evaluated config costs no more on every cost objective and beats the
    subset estimate by more than `margin` points; such configs keep their subset metric (which is then
    dominated, so it never reaches the front) and skip the full evaluation.

    Args:
        subset_metric: metric (%) on the dev subset.
        costs: this config's cost objectives (all minimised).
        margin: uncertainty of the subset estimate, in points.
        done: (full-dev metric, costs) of fully evaluated configs.

    Returns:
        True when the full evaluation is worth running.
    """
    for metric, other in done:
        if metric >= subset_metric + margin and all(o <= c for o, c in zip(other, costs)):
            return False
    return True
