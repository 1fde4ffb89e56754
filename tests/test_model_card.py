"""The export's model card: README.md with Hub metadata, and every usage snippet in it runs as written in a
fresh process (stock transformers / onnxruntime, offline, our package not importable), with no
trust_remote_code prompt and no model-type warning; the ONNX model takes the tokenizer's output as it is."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from elastic.model.config import SubnetConfig
from elastic.export.writer import export_subnet
from elastic.export.model_card import CARD_FILE, card_body, hub_metadata, usage_snippets
from profiling.onnx_export import export_onnx
from tests.helpers_search import tiny_elastic, tiny_tokenizer

CFG = SubnetConfig((0, 2, 3), (3, 1, 4), (40, 16, 64))
SNIPPET = re.compile(r"```python\n(.*?)```", re.S)


@pytest.fixture(scope="module", params=[False, True], ids=["single", "pair"])
def export(request, tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("card")
    out = export_subnet(tiny_elastic(2), CFG, root / "tiny-knee", tokenizer=tiny_tokenizer(),
                        label_names=["neg", "pos"], onnx_writer=lambda small, path: export_onnx(small, path),
                        card_info={"metric": "accuracy", "task": "sst2", "task_spec": "glue/sst2",
                                   "pair": request.param, "teacher": None, "dev_metric": 88.5,
                                   "test_metric": 87.25, "scenario": "cpu-ort-t1-b1-s16", "threads": 1})
    return out, request.param


def _fresh(code: str, cwd, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def test_the_onnx_snippet_uses_the_timed_session_settings():
    code = usage_snippets("m", pair=False, onnx=True, onnx_file="model.int8.onnx", threads=2)["onnxruntime"]
    assert "opts.intra_op_num_threads = 2\n" in code and 'disabled_optimizers=["SkipLayerNormFusion"]' in code
    assert '"m/model.int8.onnx", sess_options=opts' in code
    assert "intra_op_num_threads" not in usage_snippets("m", pair=False, onnx=True)["onnxruntime"]
    assert "onnxruntime" not in usage_snippets("m", pair=False, onnx=False)


def test_card_is_readme_with_hub_metadata(export):
    out, _ = export
    text = (out / CARD_FILE).read_text()
    assert not (out / "model_card.md").exists()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["nyu-mll/glue"] and meta["metrics"] == ["accuracy"] and "dynabert" in meta["tags"]
    assert card_body(text).startswith("# tiny-knee")
    assert len(SNIPPET.findall(text)) == 2  # transformers and onnxruntime
    # the ONNX Runtime session opens as the card's latency was timed (profiling.onnx_export.ort_session)
    assert "opts.intra_op_num_threads = 1\n" in text and '"session.force_spinning_stop", "1"' in text
    assert meta["license"] == "apache-2.0"  # the embedded teacher's own card says so
    assert "onnx" in meta["tags"] and (out / "model.onnx").is_file()
    [index] = meta["model-index"]
    assert index["name"] == "tiny-knee"
    dev, test = index["results"]
    assert dev["task"]["type"] == "text-classification"
    assert dev["dataset"] == {"name": "sst2", "type": "nyu-mll/glue", "split": "dev", "config": "sst2"}
    assert dev["metrics"][0]["type"] == "accuracy" and dev["metrics"][0]["value"] == 88.5
    assert test["dataset"]["split"] == "test" and test["metrics"][0]["value"] == 87.25


def test_hub_metadata_omits_ids_it_does_not_know(tmp_path):
    meta = hub_metadata({"teacher": str(tmp_path), "task_spec": str(tmp_path), "metric": "f1"})
    assert "base_model" not in meta and "datasets" not in meta and meta["metrics"] == ["f1"]
    meta = hub_metadata({"teacher": "bert-base-uncased/x", "task_spec": "hf:stanfordnlp/imdb:plain_text"})
    assert meta["base_model"] == "bert-base-uncased/x" and meta["datasets"] == ["stanfordnlp/imdb"]


def test_license_comes_from_the_teacher_or_is_unknown(tmp_path):
    """The teacher's card (YAML front matter), else its config.json, else `unknown`; an explicit one wins."""
    carded, configured, bare = (tmp_path / n for n in ("carded", "configured", "bare"))
    for d in (carded, configured, bare):
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (carded / CARD_FILE).write_text("---\nlanguage: en\nlicense: mit\ntags:\n- bert\n---\n\n# A teacher\n")
    (configured / "config.json").write_text(json.dumps({"model_type": "bert", "license": "cc-by-4.0"}))
    (bare / CARD_FILE).write_text("# A teacher without metadata\n")
    assert hub_metadata({"teacher": str(carded)})["license"] == "mit"
    assert hub_metadata({"teacher": str(configured)})["license"] == "cc-by-4.0"
    assert hub_metadata({"teacher": str(bare)})["license"] == "unknown"
    assert hub_metadata({"teacher": str(tmp_path / "missing")})["license"] == "unknown"
    assert hub_metadata({"teacher": "no-such-owner-xyz/no-such-model"})["license"] == "unknown"  # not cached
    assert hub_metadata({"teacher": str(carded), "license": "apache-2.0"})["license"] == "apache-2.0"
    (carded / CARD_FILE).write_text("---\nlicense: other\nlicense_name: acme\nlicense_link: LICENSE\n---\n")
    meta = hub_metadata({"teacher": str(carded)})
    assert (meta["license"], meta["license_name"], meta["license_link"]) == ("other", "acme", "LICENSE")
    (carded / CARD_FILE).write_text("---\nlicense: [unclosed\n---\n")  # broken YAML: unknown, no error
    assert hub_metadata({"teacher": str(carded)})["license"] == "unknown"


def test_onnx_tag_and_model_index_only_when_there_is_one(tmp_path):
    """No ONNX file (none asked for, or a writer that wrote none): no `onnx` tag and no ONNX Runtime usage;
    no metric value: no `model-index`."""
    model = tiny_elastic(2)
    plain = export_subnet(model, CFG, tmp_path / "plain", card_info={"metric": "f1", "task": "mine"})
    silent = export_subnet(model, CFG, tmp_path / "silent", card_info={"dev_metric": 70.0, "task": "mine"},
                           onnx_writer=lambda small, path: None)
    for out in (plain, silent):
        text = (out / CARD_FILE).read_text()
        meta = yaml.safe_load(text.split("---\n")[1])
        assert not (out / "model.onnx").exists() and "onnx" not in meta["tags"]
        assert "onnxruntime" not in text and meta["license"] == "apache-2.0"
    assert "model-index" not in yaml.safe_load((plain / CARD_FILE).read_text().split("---\n")[1])
    [index] = yaml.safe_load((silent / CARD_FILE).read_text().split("---\n")[1])["model-index"]
    [result] = index["results"]
    assert result["dataset"] == {"name": "mine", "type": "mine", "split": "dev"}
    assert result["metrics"][0]["type"] == "accuracy" and result["metrics"][0]["value"] == 70.0


def test_every_card_snippet_runs_in_a_fresh_process(export, tmp_path):
    out, _ = export
    snippets = SNIPPET.findall((out / CARD_FILE).read_text())
    results = [_fresh(code, out.parent, tmp_path) for code in snippets]
    for code, res in zip(snippets, results):
        assert res.returncode == 0, f"{code}\n---\n{res.stderr[-2000:]}"
        text = res.stdout + res.stderr
        assert "Do you wish to run the custom code" not in text and "to instantiate a model of type" not in text
    assert re.search(r"\['(neg|pos)', '(neg|pos)'\]", results[0].stdout)  # transformers: two label names
    assert re.search(r"\[[01] [01]\]", results[1].stdout)  # onnxruntime: two class ids


def test_onnx_takes_the_tokenizer_output_and_matches_pytorch(export, tmp_path):
    """ONNX Runtime on `dict(tokenizer(...))` (token_type_ids included) equals the HF model on the same input."""
    out, pair = export
    code = f"""
import json, numpy as np, onnxruntime as ort, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained("{out.name}")
args = (["the a b", "c the"], ["b c the a", "a"]) if {pair} else (["the a b c", "c"],)
enc = tok(*args, padding=True, return_tensors="np")
onnx = ort.InferenceSession("{out.name}/model.onnx", providers=["CPUExecutionProvider"]).run(None, dict(enc))[0]
model = AutoModelForSequenceClassification.from_pretrained("{out.name}", trust_remote_code=True).eval()
with torch.no_grad():
    ref = model(**tok(*args, padding=True, return_tensors="pt")).logits.numpy()
print(json.dumps({{"diff": float(np.abs(onnx - ref).max()), "types": enc["token_type_ids"].tolist()}}))
"""
    res = _fresh(code, out.parent, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["diff"] < 1e-4
    assert any(1 in row for row in got["types"]) == pair  # a pair really has a second segment


def test_without_trust_remote_code_a_pruned_export_fails_loudly(export, tmp_path):
    """model_type is bert (so the tokenizer needs no custom code): plain BertForSequenceClassification must then
    refuse the per-layer-sized weights rather than load a wrong model."""
    out, _ = export
    code = f"""
from transformers import AutoModelForSequenceClassification
AutoModelForSequenceClassification.from_pretrained("{out.name}")
"""
    res = _fresh(code, out.parent, tmp_path)
    assert res.returncode != 0 and "mismatched_sizes" in res.stderr
