"""Export a sub-network as a standalone Hugging Face model directory.

What users get in `<out>/`: `config.json` (model_type bert, per-layer `layer_heads`/`layer_ffn`/
`source_layers`, `id2label`, `auto_map`), `model.safetensors`, `hf_compact.py` (the model code, copied by
`save_pretrained` because the classes are registered for the auto classes), the tokenizer (plain BERT: it
loads without trust_remote_code), optionally `model.onnx` (the ONNX writer is passed in: elastic/ does not
import profiling/; inputs input_ids, attention_mask, token_type_ids), and the model card `README.md`
(Hub YAML metadata). Load with stock transformers:
`AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)`.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from elastic.model.config import SubnetConfig
from elastic.model.extract import extract
from elastic.model.hf_compact import CompactBertConfig, CompactBertForSequenceClassification
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.export.model_card import CARD_FILE, model_card

_BAD = re.compile(r"[^A-Za-z0-9._-]+")
OnnxWriter = Callable[[Any, Path], Any]


def sanitize_name(name: str) -> str:
    """A safe directory name: only [A-Za-z0-9._-], no path separators, no leading dots, not empty.

    Every run of other characters (including `/`, `\\`, spaces) becomes one `-`; leading dots and
    dashes are stripped so that `..` or `.hidden` cannot be produced.

    Raises:
        ValueError: nothing usable is left.
    """
    safe = _BAD.sub("-", str(name)).lstrip(".-").rstrip("-")
    safe = re.sub(r"\.{2,}", ".", safe)
    if not safe:
        raise ValueError(f"export name {name!r} has no usable characters (allowed: letters, digits, '.', '_', '-')")
    return safe


def export_dir(root: str | os.PathLike, name: str) -> Path:
    """`root/<sanitized name>`, checked to stay inside `root`."""
    root = Path(root).resolve()
    out = (root / sanitize_name(name)).resolve()
    if out.parent != root:
        raise ValueError(f"export name {name!r} escapes {root}")
    return out


def export_subnet(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, out: str | os.PathLike, *,
                  tokenizer: Any = None, label_names: Sequence[str] | None = None,
                  card_info: Mapping[str, Any] | None = None, onnx_writer: OnnxWriter | None = None,
                  force: bool = False, check: Callable[[Path], Mapping[str, Any]] | None = None) -> Path:
    """Write a standalone HF model directory for sub-network `cfg` of `model`.

    The directory is built beside `out` and renamed into place, so a failed export never leaves half a
    model and `--force` replaces an old export only once the new one is complete.

    Args:
        model: the elastic super-network.
        cfg: the sub-network.
        out: target directory (its name should come from `sanitize_name`).
        tokenizer: saved with the model when given.
        label_names: class names in id order (written as id2label/label2id).
        card_info: facts for the model card `README.md` (see `elastic.export.model_card.model_card`).
        onnx_writer: (extracted model, path) -> writes `model.onnx` (and any file beside it, e.g.
            `model.int8.onnx`); None skips ONNX.
        force: replace an existing `out`.
        check: called with the folder once the model files are written, before the card: re-scores what was
            written; what it returns is added to the card's facts; an exception aborts the export (nothing
            written, an old export left as it was).

    Returns:
        The export directory.

    Raises:
        FileExistsError: `out` exists and `force` is False.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to overwrite it, or choose another --name/--out")
    cfg.validate(model.arch)
    small = extract(model, cfg).eval()
    if label_names:
        if len(label_names) != small.config.num_labels:
            raise ValueError(f"{len(label_names)} label names for a model with {small.config.num_labels} outputs")
        small.config.id2label = {i: str(n) for i, n in enumerate(label_names)}
        small.config.label2id = {str(n): i for i, n in enumerate(label_names)}
    # Registering makes save_pretrained copy hf_compact.py and write auto_map into config.json.
    CompactBertConfig.register_for_auto_class("AutoConfig")
    CompactBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        small.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if onnx_writer is not None:
            onnx_writer(small, tmp / "model.onnx")
        name = out.name
        info = {"backbone": model.arch.model_type, **(card_info or {}), **(check(tmp) if check else {})}
        card = model_card(name=name, cfg=cfg, info=info, onnx=(tmp / "model.onnx").is_file())
        (tmp / CARD_FILE).write_text(card)
        for f in tmp.rglob("*"):
            if f.is_file():
                f.chmod(0o644)  # safetensors writes 0600; an export is meant to be shared
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
