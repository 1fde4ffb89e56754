"""Architecture description and `SubnetConfig`, the one currency of the project.

A `SubnetConfig` says exactly which sub-network of an elastic BERT runs: the kept layer indices of
the full model, and for each kept layer the number of attention heads and FFN neurons kept (the
first ones after rewiring). Hidden size is never cut, as in DynaBERT.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping, get_args

from elastic.model.backbones import backbone_for

# Where importance is computed, and where distillation stages score their model selection.
ImportanceSplit = Literal["train-heldout", "dev"]
SelectSplit = Literal["off", "heldout", "dev"]
IMPORTANCE_SPLITS: tuple[str, ...] = get_args(ImportanceSplit)
SELECT_SPLITS: tuple[str, ...] = get_args(SelectSplit)
GRID_WIDTHS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
GRID_DEPTHS: tuple[float, ...] = (1.0, 0.75, 0.5)


@dataclass(frozen=True)
class BertArch:
    """Dimensions of a (full) BERT or RoBERTa encoder, read from an HF config (`model_type` names the backbone
    adapter, `elastic.model.backbones`, that owns the embeddings' position ids and the classification head)."""

    num_layers: int
    hidden_size: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    model_type: str = "bert"  # a registered backbone (elastic.model.backbones)

    @classmethod
    def from_hf_config(cls, config: Any) -> "BertArch":
        """Build from a `transformers` config object or a config.json dict.

        Raises:
            ValueError: the config is not a BERT or RoBERTa config.
        """
        d = config if isinstance(config, Mapping) else config.to_dict()
        model_type = backbone_for(d).name  # one clear ValueError naming the supported backbones
        missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                               "intermediate_size", "vocab_size") if k not in d]
        if missing:
            raise ValueError(f"BERT config is missing required fields: {', '.join(missing)}")
        hidden, heads = int(d["hidden_size"]), int(d["num_attention_heads"])
        if hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
        return cls(
            num_layers=int(d["num_hidden_layers"]),
            hidden_size=hidden,
            num_heads=heads,
            head_dim=hidden // heads,
            intermediate_size=int(d["intermediate_size"]),
            vocab_size=int(d["vocab_size"]),
            max_position_embeddings=int(d.get("max_position_embeddings", 512)),
            type_vocab_size=int(d.get("type_vocab_size", 2)),
            layer_norm_eps=float(d.get("layer_norm_eps", 1e-12)),
            hidden_act=str(d.get("hidden_act", "gelu")),
            pad_token_id=int(d.get("pad_token_id") or 0),
            model_type=model_type,
        )

    @property
    def max_seq_len(self) -> int:
        """Longest input: the position table, less RoBERTa's offset (its positions start at pad + 1)."""
        return backbone_for(self.model_type).max_seq_len(self.max_position_embeddings, self.pad_token_id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["model_type"] == "bert":  # as before RoBERTa existed: hashes of BERT artifacts stay valid
            del d["model_type"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BertArch":
        return cls(**dict(d))


def uniform_layers(num_layers: int, depth_mult: float) -> tuple[int, ...]:
    """Kept layers for a depth multiplier, as the official DynaBERT code does.

    Keeps `floor(i / depth_mult)` for `i < round(num_layers * depth_mult)`.
    """
    n_keep = int(round(num_layers * depth_mult))
    return tuple(math.floor(i / depth_mult) for i in range(n_keep))


@dataclass(frozen=True)
class SubnetConfig:
    """Which sub-network runs: kept layers, heads and FFN neurons per kept layer.

    Attributes:
        layers: kept layer indices of the full model, strictly increasing.
        heads: heads kept in each kept layer (the first `h` after rewiring).
        ffn: FFN neurons kept in each kept layer (the first `n` after rewiring).
    """

    layers: tuple[int, ...]
    heads: tuple[int, ...]
    ffn: tuple[int, ...]

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON) to tuples so configs hash and compare by value.
        for name in ("layers", "heads", "ffn"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"SubnetConfig.{name} must be a list of integers, got {value!r}")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"SubnetConfig.{name} must hold integers only, got {list(value)!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        if not (len(self.layers) == len(self.heads) == len(self.ffn)):
            raise ValueError(
                f"SubnetConfig fields must have one entry per kept layer: layers has {len(self.layers)}, "
                f"heads {len(self.heads)}, ffn {len(self.ffn)}"
            )

    # ---- validation -------------------------------------------------------------------------
    def validate(self, arch: BertArch) -> "SubnetConfig":
        """Check this config against an architecture; returns self so calls chain.

        Raises:
            ValueError: naming the field and the offending value.
        """
        if not self.layers:
            raise ValueError("SubnetConfig.layers is empty: a sub-network needs at least one layer")
        for i in self.layers:
            if not 0 <= i < arch.num_layers:
                raise ValueError(f"SubnetConfig.layers: unknown layer {i} (model has layers 0..{arch.num_layers - 1})")
        if any(b <= a for a, b in zip(self.layers, self.layers[1:])):
            raise ValueError(f"SubnetConfig.layers must be sorted without duplicates, got {list(self.layers)}")
        for layer, h in zip(self.layers, self.heads):
            if not 1 <= h <= arch.num_heads:
                raise ValueError(f"SubnetConfig.heads: layer {layer} keeps {h} heads, must be 1..{arch.num_heads}")
        for layer, n in zip(self.layers, self.ffn):
            if not 1 <= n <= arch.intermediate_size:
                raise ValueError(
                    f"SubnetConfig.ffn: layer {layer} keeps {n} FFN neurons, must be 1..{arch.intermediate_size}"
                )
        return self

    def is_full(self, arch: BertArch) -> bool:
        return self == SubnetConfig.full(arch)

    # ---- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, list[int]]:
        return {"layers": list(self.layers), "heads": list(self.heads), "ffn": list(self.ffn)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal configs give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SubnetConfig":
        if not isinstance(d, Mapping):
            raise ValueError(f"a SubnetConfig must be a JSON object with layers/heads/ffn, got {type(d).__name__}")
        unknown = set(d) - {"layers", "heads", "ffn"}
        missing = {"layers", "heads", "ffn"} - set(d)
        if missing or unknown:
            raise ValueError(
                "a SubnetConfig needs exactly the keys layers, heads, ffn"
                + (f"; missing: {sorted(missing)}" if missing else "")
                + (f"; unknown: {sorted(unknown)}" if unknown else "")
            )
        return cls(layers=d["layers"], heads=d["heads"], ffn=d["ffn"])

    @classmethod
    def from_json(cls, text: str) -> "SubnetConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"SubnetConfig JSON is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @property
    def hash(self) -> str:
        """Canonical hash (12 hex chars of SHA-256 of the canonical JSON): the cache key."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        """Short human-readable form, e.g. `L[0,2,4] H[6,6,6] F[768,768,768]`."""
        return (f"L[{','.join(map(str, self.layers))}] H[{','.join(map(str, self.heads))}] "
                f"F[{','.join(map(str, self.ffn))}]")

    # ---- constructors -----------------------------------------------------------------------
    @classmethod
    def full(cls, arch: BertArch) -> "SubnetConfig":
        n = arch.num_layers
        return cls(tuple(range(n)), (arch.num_heads,) * n, (arch.intermediate_size,) * n)

    @classmethod
    def uniform(cls, arch: BertArch, width_mult: float, depth_mult: float) -> "SubnetConfig":
        """DynaBERT's uniform sub-network.

        heads = round(num_heads * width_mult); ffn = int(heads / num_heads * intermediate_size);
        layers by `uniform_layers`.
        """
        if not 0 < width_mult <= 1:
            raise ValueError(f"width_mult must be in (0, 1], got {width_mult}")
        if not 0 < depth_mult <= 1:
            raise ValueError(f"depth_mult must be in (0, 1], got {depth_mult}")
        heads = int(round(arch.num_heads * width_mult))
        if heads < 1:
            raise ValueError(f"width_mult {width_mult} keeps no head of {arch.num_heads}")
        ffn = int(heads / arch.num_heads * arch.intermediate_size)
        layers = uniform_layers(arch.num_layers, depth_mult)
        if not layers:
            raise ValueError(f"depth_mult {depth_mult} keeps no layer of {arch.num_layers}")
        return cls(layers, (heads,) * len(layers), (ffn,) * len(layers)).validate(arch)

    @classmethod
    def random(cls, arch: BertArch, rng: random.Random, *, ffn_step: int | None = None,
               min_layers: int = 1) -> "SubnetConfig":
        """A random valid per-layer config drawn from a seeded `random.Random`.

        Args:
            rng: the generator (never the global one).
            ffn_step: FFN sizes are multiples of this (default intermediate_size // 8).
            min_layers: at least this many layers are kept.
        """
        step = ffn_step or max(1, arch.intermediate_size // 8)
        n_keep = rng.randint(min_layers, arch.num_layers)
        layers = tuple(sorted(rng.sample(range(arch.num_layers), n_keep)))
        heads = tuple(rng.randint(1, arch.num_heads) for _ in layers)
        ffn = tuple(min(arch.intermediate_size, step * rng.randint(1, -(-arch.intermediate_size // step)))
                    for _ in layers)
        return cls(layers, heads, ffn).validate(arch)


def grid(arch: BertArch, widths: tuple[float, ...] = GRID_WIDTHS,
         depths: tuple[float, ...] = GRID_DEPTHS) -> list[tuple[float, float, SubnetConfig]]:
    """The DynaBERT uniform grid: (width_mult, depth_mult, config) for every pair."""
    return [(w, d, SubnetConfig.uniform(arch, w, d)) for w in widths for d in depths]
