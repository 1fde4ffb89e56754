"""What the dashboard says about a front point's deployment variant and the trust in its metric (pure functions).

A point is a sub-network plus its variant (precision, runtime; `profiling.variants`): its metric and latency are
that variant's. A latency is only ever shown beside the metric of the same variant: `row_scenarios` gives each
row the scenario its latency may come from. A point's metric is shown with its standard error and the split it
comes from (`confirmation_text`): the confirming split where pareto.csv has one, else "dev, not confirmed".
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import pandas as pd

from profiling.scenario import Scenario
from profiling.variants import precision_of, runtime_of, split_list, target_of, variant_key

OWN = "each point's own variant"  # the latency selector's choice that shows every point in its own variant
PRECISION_LABELS = {"fp32": "fp32", "int8": "INT8", "bf16": "bf16", "fp16": "fp16"}
RUNTIME_LABELS = {"eager": "eager", "ort": "ONNX Runtime"}
# Marker symbol by precision, colour by runtime (the legend names both).
PRECISION_SYMBOLS = {"fp32": "circle", "int8": "diamond", "bf16": "square", "fp16": "triangle-up"}
RUNTIME_COLORS = {"eager": "#1f77b4", "ort": "#e377c2"}
SPLIT_LABELS = {"heldout": "held-out", "train-heldout": "held-out", "train_heldout": "held-out"}


def variant_of(key: Any) -> tuple[str, str] | None:
    """(precision, runtime) of a scenario key; None for an empty or unparsable key."""
    if not isinstance(key, str) or not key.strip():
        return None
    try:
        sc = Scenario.parse(key)
    except ValueError:
        return None
    return precision_of(sc), runtime_of(sc)


def target_of_key(key: Any) -> str | None:
    """The target of a scenario key (`cpu-ort-int8-t2-b1-s64` -> `cpu-t2-b1-s64`); None for a bad key."""
    try:
        return target_of(Scenario.parse(key)) if isinstance(key, str) else None
    except ValueError:
        return None


def variant_label(precision: Any, runtime: Any) -> str:
    """`INT8 · ONNX Runtime`; `?` for a missing part."""
    p = PRECISION_LABELS.get(precision, precision) if isinstance(precision, str) and precision else "?"
    r = RUNTIME_LABELS.get(runtime, runtime) if isinstance(runtime, str) and runtime else "?"
    return f"{p} · {r}"


def row_variant(row: pd.Series) -> str:
    """A row's variant as text with its key, e.g. `INT8 · ONNX Runtime (cpu-ort-int8-t2-b1-s64)`."""
    key = row.get("scenario")
    label = variant_label(row.get("precision"), row.get("runtime"))
    return f"{label} ({key})" if isinstance(key, str) and key else label


def search_variants(search: dict[str, Any] | None, front: pd.DataFrame | None = None) -> list[str]:
    """The searched variants' keys: search.json `variants`, else its (comma-separated) `scenario`, else the
    front's scenarios in order of appearance."""
    search = search or {}
    keys = list(split_list(search.get("variants") or search.get("scenario")))
    if not keys and front is not None and "scenario" in front:
        keys = [k for k in dict.fromkeys(front["scenario"]) if isinstance(k, str) and k]
    return keys


def fp32_eager_key(variants: Sequence[str]) -> str | None:
    """The fp32 eager variant of the searched target (where the uniform grid's fp32 metrics belong)."""
    for key in variants:
        try:
            return variant_key(target_of(Scenario.parse(key)), "fp32", "eager")
        except ValueError:
            continue
    return None


def row_scenarios(home: pd.Series, selected: str) -> pd.Series:
    """The scenario in which each row's latency is shown.

    Args:
        home: each row's own variant (a scenario key; None where unknown).
        selected: a scenario key, or `OWN` (every row in its own variant).

    Returns:
        `home` under `OWN`; else `selected` for the rows of the same precision and runtime (e.g. another thread
        count, from latency.csv) and None for the others: a latency of one variant is never shown beside the
        metric of another.
    """
    if selected == OWN:
        return home.where(home.notna(), None)
    want = variant_of(selected)
    same = [want is not None and variant_of(k) == want for k in home]
    return pd.Series([selected if s else None for s in same], index=home.index, dtype=object)


def variant_mask(df: pd.DataFrame, precisions: Iterable[str], runtimes: Iterable[str]) -> pd.Series:
    """Rows whose precision and runtime are among those chosen (rows without variant columns: fp32 eager)."""
    p = df["precision"].replace("", "fp32") if "precision" in df else pd.Series("fp32", index=df.index)
    r = df["runtime"].replace("", "eager") if "runtime" in df else pd.Series("eager", index=df.index)
    return p.isin(list(precisions)) & r.isin(list(runtimes))


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def with_se(value: Any, se: Any, digits: int = 2) -> str:
    """`86.40 ± 1.20 %`, `86.40 %` without a standard error, `n/a` without a value."""
    v = _num(value)
    if v is None:
        return "n/a"
    s = _num(se)
    return f"{v:.{digits}f} ± {s:.{digits}f} %" if s is not None else f"{v:.{digits}f} %"


def split_label(split: Any) -> str:
    """`heldout` -> `held-out`; other split names as written."""
    return SPLIT_LABELS.get(split, str(split).replace("_", " ")) if isinstance(split, str) else "?"


def confirmed(row: pd.Series) -> bool:
    """The point's metric was confirmed on a split the search never saw."""
    return _num(row.get("confirm_metric")) is not None and bool(row.get("confirm_split"))


def confirmation_text(row: pd.Series) -> str:
    """The point's trusted figure: `86.40 ± 1.20 % (held-out, n=500)` when confirmed, else its dev metric
    `87.10 ± 1.05 % (dev, not confirmed)`."""
    if confirmed(row):
        n = _num(row.get("confirm_n"))
        where = split_label(row["confirm_split"]) + (f", n={int(n)}" if n is not None else "")
        return f"{with_se(row.get('confirm_metric'), row.get('confirm_se'))} ({where})"
    return f"{with_se(row.get('dev_metric'), row.get('dev_se'))} (dev, not confirmed)"
