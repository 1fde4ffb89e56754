"""The deployment variants of a `dynabert run` (profiling.variants): `scenario` (one key or several, comma-separated)
or `target` with `precisions` and `runtimes`, never both.

Layers (defaults < preset < file < flags) name the variants one way or the other: a layer that gives `scenario`
without `target` replaces the target of the layers below it, and one that gives `target` (or precisions/runtimes)
without `scenario` replaces their scenario. So `dynabert run --preset quick --scenario cpu-eager-t2-b1-s64` searches
that one key although the quick preset names a target.
"""
from __future__ import annotations

from typing import Any, Mapping

from elastic.training.options import DEFAULT_SCENARIO

TARGET_KEYS: tuple[str, ...] = ("target", "precisions", "runtimes")


def _given(layer: Mapping[str, Any], key: str) -> bool:
    return layer.get(key) is not None or layer.get(key.replace("_", "-")) is not None


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The layers merged in order, later ones winning; a layer that names the variants one way drops the other way
    from the layers below it (a layer naming both keeps both: `run_variants` refuses them)."""
    out: dict[str, Any] = {}
    for layer in layers:
        scenario, target = _given(layer, "scenario"), any(_given(layer, k) for k in TARGET_KEYS)
        if scenario and not target:
            out = {k: v for k, v in out.items() if k.replace("-", "_") not in TARGET_KEYS}
        elif target and not scenario:
            out = {k: v for k, v in out.items() if k != "scenario"}
        out.update(layer)
    return out


def run_variants(cfg: Any) -> tuple[str, ...]:
    """The scenario keys a run profiles and searches, from its `profile` section.

    Raises:
        ValueError: naming the option: a bad key or target, a precision or runtime the target cannot run, the
            variants named both ways, or precisions/runtimes without a target.
    """
    from profiling.variants import resolve_variants

    p = cfg.profile
    if p.target and p.scenario != DEFAULT_SCENARIO:
        raise ValueError(f"--scenario ({p.scenario}) and --target ({p.target}) both name the deployment variants: "
                         "give one of them")
    # messages name the flags, which are the options' names with dashes (config keys: underscores)
    return resolve_variants(scenario=None if p.target else p.scenario, target=p.target, precisions=p.precisions,
                            runtimes=p.runtimes)


def timing_variant(variants: tuple[str, ...]) -> str:
    """The variant the baselines are timed in: the first fp32 one (their students are fp32 models; the INT8 recipes
    pick their own runtime), else the first."""
    from profiling.scenario import Scenario

    return next((v for v in variants if not Scenario.parse(v).int8), variants[0])
