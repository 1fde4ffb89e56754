"""The search space: per-layer sub-networks as Optuna parameters, and the DynaBERT grid enqueued first.

Parameters (names are part of the study's contract: `enqueue_grid`, exports and the dashboard read them):
- `keep_{i}`: categorical True/False, whether layer i runs;
- `heads_{i}`: int 1..num_heads (whole heads only: attention kernels work per head);
- `ffn_{i}`: FFN neurons, a multiple of `ffn_step` (default intermediate_size // 8), plus any
  uniform-grid value that is off that lattice so that the grid is always expressible;
- `variant`: the deployment variant (a scenario key), only when the search has several
  (`search.objective.suggest_variant`).

Every layer's `heads_i`/`ffn_i` is suggested even when the layer is dropped: a static search space is
what NSGA-II's crossover and TPE's multivariate model need (conditional parameters would make the
intersection search space empty and silently fall back to random sampling).
"""
from __future__ import annotations

from typing import Any, Sequence

import optuna

from elastic.model.config import BertArch, SubnetConfig, grid

# Layer kept when the sampler drops every layer: layer 0 is the one every DynaBERT depth keeps.
REPAIR_LAYER = 0


def default_ffn_step(arch: BertArch) -> int:
    """1/8 of the full FFN (at least 1)."""
    return max(1, arch.intermediate_size // 8)


def ffn_choices(arch: BertArch, ffn_step: int | None = None) -> list[int]:
    """Legal FFN sizes: multiples of the step up to the full size, the full size, and grid values.

    Args:
        arch: the full architecture.
        ffn_step: lattice step; default `default_ffn_step(arch)`.

    Returns:
        Sorted distinct sizes in 1..intermediate_size.

    Raises:
        ValueError: a step outside 1..intermediate_size.
    """
    step = default_ffn_step(arch) if ffn_step is None else int(ffn_step)
    if not 1 <= step <= arch.intermediate_size:
        raise ValueError(f"ffn_step must be in 1..{arch.intermediate_size}, got {ffn_step}")
    values = set(range(step, arch.intermediate_size + 1, step)) | {arch.intermediate_size}
    # The uniform grid must be a legal point so that the front contains it or dominates it.
    values |= {n for _, _, cfg in grid(arch) for n in cfg.ffn}
    return sorted(values)


def _is_lattice(choices: list[int]) -> bool:
    """Whether choices are exactly step, 2*step, ..., k*step (then an ordinal int parameter fits)."""
    step = choices[0]
    return choices == list(range(step, step * len(choices) + 1, step))


def suggest_subnet(trial: optuna.trial.BaseTrial, arch: BertArch, *, ffn_step: int | None = None
                   ) -> SubnetConfig:
    """Ask the trial for one per-layer sub-network.

    Args:
        trial: an Optuna trial (or FixedTrial / FrozenTrial with these params).
        arch: the full architecture.
        ffn_step: FFN lattice step; default intermediate_size // 8.

    Returns:
        A valid `SubnetConfig`. When every layer is dropped, layer 0 is kept (deterministic repair)
        and the trial's user attr `repaired` says so. `config_json`/`config_hash` user attrs are set.
    """
    choices = ffn_choices(arch, ffn_step)
    lattice = _is_lattice(choices)
    keep, heads, ffn = [], [], []
    for i in range(arch.num_layers):
        keep.append(bool(trial.suggest_categorical(f"keep_{i}", [True, False])))
        heads.append(trial.suggest_int(f"heads_{i}", 1, arch.num_heads))
        if lattice:  # ordinal: TPE's density model and NSGA-II mutation see sizes as ordered
            ffn.append(trial.suggest_int(f"ffn_{i}", choices[0], choices[-1], step=choices[0]))
        else:
            ffn.append(int(trial.suggest_categorical(f"ffn_{i}", choices)))
    if not any(keep):
        keep[REPAIR_LAYER] = True
        _set_attr(trial, "repaired", f"all layers dropped; kept layer {REPAIR_LAYER}")
    layers = [i for i in range(arch.num_layers) if keep[i]]
    cfg = SubnetConfig(tuple(layers), tuple(heads[i] for i in layers), tuple(ffn[i] for i in layers))
    cfg.validate(arch)
    _set_attr(trial, "config_json", cfg.to_json())
    _set_attr(trial, "config_hash", cfg.hash)
    return cfg


def _set_attr(trial: optuna.trial.BaseTrial, key: str, value: Any) -> None:
    # FrozenTrial.set_user_attr mutates a copy and FixedTrial accepts it; both are harmless here.
    trial.set_user_attr(key, value)


def params_for(cfg: SubnetConfig, arch: BertArch, *, ffn_step: int | None = None) -> dict[str, Any]:
    """The parameter dict that makes `suggest_subnet` return `cfg` (for `study.enqueue_trial`).

    Dropped layers get the width of the first kept layer (their values do not matter, but fixing
    them keeps enqueued trials fully determined).

    Raises:
        ValueError: `cfg` invalid for `arch`, or an FFN size that is not a legal choice.
    """
    cfg.validate(arch)
    choices = set(ffn_choices(arch, ffn_step))
    bad = [n for n in cfg.ffn if n not in choices]
    if bad:
        raise ValueError(f"FFN sizes {bad} are not on the search lattice (choices: {sorted(choices)})")
    by_layer = {li: (h, n) for li, h, n in zip(cfg.layers, cfg.heads, cfg.ffn)}
    filler = (cfg.heads[0], cfg.ffn[0])
    params: dict[str, Any] = {}
    for i in range(arch.num_layers):
        h, n = by_layer.get(i, filler)
        params[f"keep_{i}"] = i in by_layer
        params[f"heads_{i}"] = h
        params[f"ffn_{i}"] = n
    return params


def config_from_params(params: dict[str, Any], arch: BertArch) -> SubnetConfig:
    """Rebuild the config of a finished trial from its params (same repair as `suggest_subnet`)."""
    return suggest_subnet(optuna.trial.FixedTrial(params), arch)


def enqueue_grid(study: optuna.Study, arch: BertArch, *, ffn_step: int | None = None,
                 variants: Sequence[str] = ()) -> list[SubnetConfig]:
    """Enqueue the 12 uniform DynaBERT grid configs so that they are the first trials (with several deployment
    variants: each grid config in every variant, config after config, through the `variant` parameter, so that a
    short search still compares the variants on the largest configs).

    Already enqueued or finished grid points are skipped (`skip_if_exists`), so a resumed search does
    not run them twice.

    Returns:
        The grid configs, in grid order.
    """
    cfgs = [cfg for _, _, cfg in grid(arch)]
    for cfg in cfgs:
        for variant in (variants if len(variants) > 1 else [None]):
            extra = {} if variant is None else {"variant": variant}
            study.enqueue_trial({**params_for(cfg, arch, ffn_step=ffn_step), **extra}, skip_if_exists=True)
    return cfgs
