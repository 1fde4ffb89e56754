"""The Mix'n'Match rule: a family of per-layer sub-networks chosen without search, the baseline a search must beat.

MatFormer (Devvrit et al. 2023) reports that simple per-layer width schedules over the trained nested widths,
chosen by a rule, come close to searched ones. Our family, enumerated for an architecture:

- the uniform DynaBERT grid (widths 1.0/0.75/0.5/0.25 x depths 1.0/0.75/0.5, `SubnetConfig.uniform`);
- monotone width schedules: over the kept layers, a linear ramp between two levels of the width ladder,
  rising with depth (narrow early, wider later, as MatFormer and Gemma 3n) or falling; each layer's width is
  snapped to the nearest ladder level (ties go to the wider), so every layer runs a width the model was
  trained at, and its heads and FFN follow the uniform rule for that width (heads = round(H w), ffn =
  int(heads / H x FFN)): always a point of the search space;
- layer-drop patterns, at each depth below 1: DynaBERT's rule (`uniform_layers`), its mirror image (drops
  moved to the other end: for depth 0.5, the odd layers instead of the even ones), drop-last (the first k
  layers) and drop-first (the last k); every width (uniform and scheduled) on every pattern.

Configs are de-duplicated by hash. The order is fixed: the grid first (in `grid()` order, as the search
enqueues it), then the rest in a low-discrepancy (van der Corput) order, so that any prefix is an even
subsample of the family: `rule_configs(arch, budget)` is the first `budget` of it, a prefix as the first
`budget` trials of a search are, and a larger budget's list extends a smaller one's. The seed only shifts
the phase of that order (seed 0: none), so seeds give different subsamples while the family is larger than
the budget and the same list once it is not. Pure and deterministic: no randomness, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import optuna

from elastic.model.config import GRID_DEPTHS, GRID_WIDTHS, BertArch, SubnetConfig, grid, uniform_layers
from search.space import params_for

GOLDEN = 0.6180339887498949  # seed -> phase of the low-discrepancy order: seeds far apart on [0, 1)


@dataclass(frozen=True)
class RuleEntry:
    """One member of the family: how the rule made it (`kind`: grid, rise, fall; `layers`: the drop pattern;
    `widths`: the width of each kept layer) and its config."""

    kind: str
    pattern: str
    widths: tuple[float, ...]
    config: SubnetConfig

    @property
    def name(self) -> str:
        w = "/".join(f"{x:g}" for x in self.widths) if self.kind != "grid" else f"{self.widths[0]:g}"
        return f"{self.kind} {self.pattern} w[{w}]"


def layer_patterns(num_layers: int, depths: Sequence[float] = GRID_DEPTHS) -> list[tuple[str, tuple[int, ...]]]:
    """Kept-layer patterns (name, layers): full depth, then for each depth < 1 DynaBERT's rule, its mirror,
    drop-last and drop-first; duplicates (same layers) keep the first name."""
    out: dict[tuple[int, ...], str] = {}
    for d in depths:
        rule = uniform_layers(num_layers, d)
        k = len(rule)
        if not k:
            continue
        for name, layers in ((f"dynabert-d{d:g}", rule),
                             (f"mirror-d{d:g}", tuple(sorted(num_layers - 1 - i for i in rule))),
                             (f"drop-last-d{d:g}", tuple(range(k))),
                             (f"drop-first-d{d:g}", tuple(range(num_layers - k, num_layers)))):
            out.setdefault(layers, name if k < num_layers else "full")
    return [(name, layers) for layers, name in out.items()]


def snap(width: float, ladder: Sequence[float]) -> float:
    """The ladder level nearest `width` (ties: the wider)."""
    return min(ladder, key=lambda w: (abs(w - width), -w))


def ramp(n: int, start: float, end: float, ladder: Sequence[float]) -> tuple[float, ...]:
    """Widths of `n` kept layers on a linear ramp from `start` (first kept layer) to `end` (last), each snapped
    to the ladder: monotone (non-decreasing when start < end, non-increasing otherwise)."""
    if n == 1:
        return (snap((start + end) / 2, ladder),)
    return tuple(snap(start + (end - start) * j / (n - 1), ladder) for j in range(n))


def layer_width(arch: BertArch, width: float) -> tuple[int, int]:
    """(heads, ffn) of one layer at `width`, as `SubnetConfig.uniform` does for every layer."""
    heads = int(round(arch.num_heads * width))
    return heads, int(heads / arch.num_heads * arch.intermediate_size)


def schedule_config(arch: BertArch, layers: Sequence[int], widths: Sequence[float]) -> SubnetConfig:
    """The config keeping `layers` with each at its width (heads and FFN by the uniform rule)."""
    hf = [layer_width(arch, w) for w in widths]
    return SubnetConfig(tuple(layers), tuple(h for h, _ in hf), tuple(f for _, f in hf)).validate(arch)


def rule_family(arch: BertArch, widths: Sequence[float] = GRID_WIDTHS,
                depths: Sequence[float] = GRID_DEPTHS) -> list[RuleEntry]:
    """The whole family, de-duplicated by config hash, grid first (in `grid()` order), then per drop pattern:
    the uniform widths (widest first), then rising and falling ramps for each pair of ladder levels."""
    ladder = sorted(set(widths))
    entries = [RuleEntry("grid", f"d{d:g}", (w,) * len(cfg.layers), cfg) for w, d, cfg in grid(arch, tuple(widths),
                                                                                               tuple(depths))]
    for pattern, layers in layer_patterns(arch.num_layers, depths):
        n = len(layers)
        for w in sorted(ladder, reverse=True):
            entries.append(RuleEntry("uniform", pattern, (w,) * n, schedule_config(arch, layers, (w,) * n)))
        for i, lo in enumerate(ladder):
            for hi in ladder[i + 1:]:
                for kind, (a, b) in (("rise", (lo, hi)), ("fall", (hi, lo))):
                    ws = ramp(n, a, b, ladder)
                    entries.append(RuleEntry(kind, pattern, ws, schedule_config(arch, layers, ws)))
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.config.hash not in seen:
            seen.add(e.config.hash)
            out.append(e)
    return out


def van_der_corput(k: int) -> float:
    """The k-th point of the base-2 van der Corput sequence on [0, 1) (bits of k mirrored after the point)."""
    x, f = 0.0, 0.5
    while k:
        x += f * (k & 1)
        k >>= 1
        f /= 2
    return x


def even_order(n: int, *, seed: int = 0) -> list[int]:
    """A permutation of range(n) whose every prefix is spread evenly over it: index floor(n x ((vdc(k) +
    phase) mod 1)) for k = 0, 1, ..., repeats skipped (phase = seed x golden ratio mod 1)."""
    phase = (seed * GOLDEN) % 1.0
    order, taken = [], set()
    k = 0
    while len(order) < n and k < 64 * max(n, 1):
        i = min(n - 1, int(n * ((van_der_corput(k) + phase) % 1.0)))
        if i not in taken:
            taken.add(i)
            order.append(i)
        k += 1
    return order + [i for i in range(n) if i not in taken]  # never needed in practice; keeps it a permutation


def ordered_family(arch: BertArch, *, seed: int = 0) -> list[RuleEntry]:
    """The family in the rule's order: the grid first, then the rest in `even_order`."""
    family = rule_family(arch)
    head = [e for e in family if e.kind == "grid"]
    rest = [e for e in family if e.kind != "grid"]
    return head + [rest[i] for i in even_order(len(rest), seed=seed)]


def rule_configs(arch: BertArch, budget: int, *, seed: int = 0) -> list[SubnetConfig]:
    """The rule's configs for a budget: the first `budget` of `ordered_family` (grid first, then an even
    subsample). When the family is smaller than the budget, all of it (fewer than `budget`: callers say so,
    `len(rule_family(arch))` is the family's size).

    Raises:
        ValueError: budget < 1.
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1 config, got {budget}")
    return [e.config for e in ordered_family(arch, seed=seed)[:budget]]


def enqueue_rule(study: optuna.Study, arch: BertArch, budget: int, *, seed: int = 0, ffn_step: int | None = None,
                 variants: Sequence[str] = ()) -> list[SubnetConfig]:
    """Enqueue `rule_configs(arch, budget, seed=seed)` as the study's first trials (the grid among them, first),
    like `search.space.enqueue_grid`: with several deployment variants, the whole list in each variant, variant
    after variant; already enqueued or finished configs are skipped.

    Returns:
        The configs, in order (possibly fewer than `budget`: the whole family).
    """
    cfgs = rule_configs(arch, budget, seed=seed)
    for variant in (variants if len(variants) > 1 else [None]):
        for cfg in cfgs:
            extra = {} if variant is None else {"variant": variant}
            study.enqueue_trial({**params_for(cfg, arch, ffn_step=ffn_step), **extra}, skip_if_exists=True)
    return cfgs
