"""The backbone registry: one adapter per encoder family (`elastic.model.backbones.base.Backbone`).

A new family is one file defining its `Backbone`, one `register(...)` line below, and its parity test against
transformers (tests/test_backbones.py). Everything that differs per family is looked up here
(`backbone_for(config)`), never branched on by `model_type`.
"""
from __future__ import annotations

from typing import Any, Mapping

from elastic.model.backbones.base import Backbone, HeadLayout, PositionIds
from elastic.model.backbones.bert import BERT
from elastic.model.backbones.roberta import ROBERTA

_REGISTRY: dict[str, Backbone] = {}


def register(backbone: Backbone) -> Backbone:
    """Add an adapter; its `model_types` then load. Raises ValueError when a name is already taken."""
    taken = [t for t in (backbone.name, *backbone.model_types) if t in _REGISTRY]
    if taken:
        raise ValueError(f"backbone model_type(s) {', '.join(taken)} already registered")
    for t in dict.fromkeys((backbone.name, *backbone.model_types)):
        _REGISTRY[t] = backbone
    return backbone


def unregister(name: str) -> None:
    """Remove an adapter and its aliases (tests that register a family of their own)."""
    for t in [t for t, b in _REGISTRY.items() if b.name == name]:
        del _REGISTRY[t]


def supported() -> tuple[str, ...]:
    """Canonical names of the registered backbones, in registration order."""
    return tuple(dict.fromkeys(b.name for b in _REGISTRY.values()))


def backbone_for(config: Any = "bert") -> Backbone:
    """The adapter of a `model_type`, an HF config (object or config.json dict; no `model_type` means BERT), or
    anything with a `model_type` attribute (`BertArch`).

    Raises:
        ValueError: the model type is not supported; the message names the supported ones.
    """
    if isinstance(config, str):
        model_type = config
    elif isinstance(config, Mapping):
        model_type = config.get("model_type") or "bert"
    else:
        model_type = getattr(config, "model_type", None) or "bert"
    if model_type not in _REGISTRY:
        raise ValueError(f"model_type '{model_type}' is not supported: DynaBERT Explorer loads "
                         f"{' and '.join(supported())} checkpoints")
    return _REGISTRY[model_type]


register(BERT)
register(ROBERTA)

__all__ = ["Backbone", "HeadLayout", "PositionIds", "backbone_for", "register", "supported", "unregister"]
