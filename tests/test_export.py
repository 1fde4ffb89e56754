"""Export: a standalone HF model (fresh process, stock transformers), ONNX parity, names, --force, CLI errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch
import yaml

from app.cli.main import main
from elastic.model.config import SubnetConfig
from elastic.export.writer import export_dir, export_subnet, sanitize_name
from profiling.onnx_export import export_onnx, ort_feeds
from tests.conftest import TINY_BY_BACKBONE
from tests.helpers_search import make_tiny_run, tiny_elastic, tiny_roberta_tokenizer, tiny_tokenizer

CFG = SubnetConfig((0, 2, 3), (3, 1, 4), (40, 16, 64))
# Runs in a fresh interpreter: stock transformers only, offline, our package never imported.
LOADER = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
inp = json.load(open(sys.argv[2]))
with torch.no_grad():
    out = model(torch.tensor(inp["ids"]), torch.tensor(inp["mask"])).logits
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("elastic", "search", "profiling", "app"))
print(json.dumps({"logits": out.tolist(), "ours": ours, "id2label": model.config.id2label,
                  "layer_heads": model.config.layer_heads}))
"""


@pytest.fixture(scope="module", params=sorted(TINY_BY_BACKBONE))
def exported(tmp_path_factory, request):
    """An export of CFG from each backbone's tiny model (RoBERTa: its own position ids and head)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    model = tiny_elastic(2, arch=TINY_BY_BACKBONE[request.param])
    tok = tiny_roberta_tokenizer() if request.param == "roberta" else tiny_tokenizer()
    out = export_subnet(model, CFG, root / "m", tokenizer=tok, label_names=["neg", "pos"],
                        card_info={"metric": "accuracy", "dev_metric": 81.25, "latency_ms": 1.5,
                                   "scenario": "cpu-eager-t1-b1-s16", "fingerprint": {"cpu": "x"}},
                        onnx_writer=lambda small, path: export_onnx(small, path))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 99, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        ref = model(ids, mask, subnet=CFG).logits
    return out, model, ids, mask, ref


def load_in_fresh_process(out, ids: torch.Tensor, mask: torch.Tensor, tmp_path) -> dict:
    """Run LOADER on export `out` in a new interpreter (no PYTHONPATH, offline); its JSON answer."""
    inp = tmp_path / "inp.json"
    inp.write_text(json.dumps({"ids": ids.tolist(), "mask": mask.tolist()}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    res = subprocess.run([sys.executable, "-c", LOADER, str(out), str(inp)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_fresh_process_loads_with_stock_transformers(exported, tmp_path):
    out, _, ids, mask, ref = exported
    got = load_in_fresh_process(out, ids, mask, tmp_path)
    assert got["ours"] == []  # the model code came from the export directory, not our package
    assert np.abs(np.array(got["logits"]) - ref.numpy()).max() < 1e-4
    assert got["id2label"] == {"0": "neg", "1": "pos"}
    assert got["layer_heads"] == [3, 1, 4]


def test_export_contents_and_onnx_parity(exported):
    import onnxruntime as ort

    out, model, ids, mask, ref = exported
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "hf_compact.py", "model.onnx", "README.md",
            "tokenizer_config.json"} <= names
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "hf_compact.CompactBertForSequenceClassification"
    assert config["layer_ffn"] == [40, 16, 64] and config["source_layers"] == [0, 2, 3]
    assert config["backbone"] == model.arch.model_type
    assert f"elastic {'RoBERTa' if config['backbone'] == 'roberta' else 'BERT'}, extracted" in \
        (out / "README.md").read_text()
    assert (out / "model.safetensors").stat().st_mode & 0o044  # readable by others
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, ort_feeds(ids, mask))[0]
    assert np.abs(logits - ref.numpy()).max() < 1e-4
    card = (out / "README.md").read_text()
    assert "| 1 | 2 | 1 | 16 |" in card and "81.25 %" in card and "cpu-eager-t1-b1-s16" in card
    meta = yaml.safe_load(card.split("---\n")[1])
    assert "onnx" in meta["tags"] and meta["license"] == "apache-2.0"  # no teacher given: the embedded one
    assert meta["model-index"][0]["results"][0]["metrics"][0] == {"type": "accuracy", "name": "dev accuracy (%)",
                                                                   "value": 81.25}


def test_sanitize_and_force(tmp_path):
    assert sanitize_name("../../etc/passwd") == "etc-passwd"
    assert sanitize_name("my model/v1") == "my-model-v1"
    assert sanitize_name("a..b") == "a.b"
    for bad in ("", "..", "/", "...///"):
        with pytest.raises(ValueError, match="export name"):
            sanitize_name(bad)
    assert export_dir(tmp_path, "../x") == (tmp_path / "x").resolve()
    model = tiny_elastic(2)
    out = export_subnet(model, SubnetConfig((0,), (1,), (8,)), tmp_path / "e", card_info={"dev_metric": 1.0})
    with pytest.raises(FileExistsError, match="--force"):
        export_subnet(model, SubnetConfig((1,), (2,), (16,)), out)
    assert json.loads((out / "config.json").read_text())["layer_heads"] == [1]
    export_subnet(model, SubnetConfig((1,), (2,), (16,)), out, force=True)
    assert json.loads((out / "config.json").read_text())["layer_heads"] == [2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("exportrun"))


def _cli(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_bad_config_and_empty_study_give_one_clear_message(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [0, 7], "heads": [1, 1], "ffn": [8, 8]}')
    code, _, err = _cli(["export", "--run-dir", str(run_dir), "--subnet", str(bad)], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "unknown layer 7" in err and "bad.json" in err
    bad.write_text("{not json")
    code, _, err = _cli(["export", "--run-dir", str(run_dir), "--subnet", str(bad)], capsys)
    assert code == 2 and "not valid JSON" in err and "Traceback" not in err
    code, _, err = _cli(["export", "--run-dir", str(run_dir), "--subnet", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "not found" in err
    code, _, err = _cli(["export", "--run-dir", str(run_dir), "--pareto"], capsys)
    assert code == 2 and "no study.db" in err
    optuna.create_study(study_name="empty", storage=f"sqlite:///{run_dir / 'study.db'}",
                        directions=["maximize", "minimize"])
    code, _, err = _cli(["export", "--run-dir", str(run_dir), "--pareto"], capsys)
    assert code == 2 and "no completed trials" in err and err.strip().count("\n") == 0


def test_cli_search_then_export_knee(run_dir, tmp_path, capsys):
    code, out, err = _cli(["search", "--run-dir", str(run_dir), "--scenario", "cpu-eager-t1-b1-s16",
                           "--objectives", "metric,macs", "--n-trials", "14", "--study-name", "s", "--threads", "1",
                           "--no-progress", "--no-finalize"], capsys)
    assert code == 0, err
    code, out, err = _cli(["export", "--run-dir", str(run_dir), "--study-name", "s", "--knee", "--no-onnx",
                           "--no-measure", "--out", str(tmp_path / "knee")], capsys)
    assert code == 0, err
    assert (tmp_path / "knee" / "config.json").exists()
    card = (tmp_path / "knee" / "README.md").read_text()
    assert "study 's' trial" in card and "test accuracy" in card
    meta = yaml.safe_load(card.split("---\n")[1])
    assert "onnx" not in meta["tags"] and meta["license"] == "unknown"  # --no-onnx; a teacher with no card
    [index] = meta["model-index"]
    assert index["name"] == "knee" and [r["dataset"]["split"] for r in index["results"]] == ["dev", "test"]
    assert all(r["dataset"]["name"] == "task" and r["metrics"][0]["type"] == "accuracy"
               and isinstance(r["metrics"][0]["value"], float) for r in index["results"])


def test_cli_export_pareto_from_pareto_csv(run_dir, tmp_path, capsys):
    from search.pareto import finalize, load_study

    code, _, err = _cli(["search", "--run-dir", str(run_dir), "--scenario", "cpu-eager-t1-b1-s16",
                         "--objectives", "metric,macs", "--n-trials", "16", "--study-name", "p", "--threads", "1",
                         "--no-progress", "--no-finalize"], capsys)
    assert code == 0, err
    study = load_study(run_dir, study_name="p")
    finalize(study, run_dir=run_dir, scenario="cpu-eager-t1-b1-s16", objectives=("metric", "macs"),
             full_costs=[1e9], test_fn=lambda cfg: 12.5)
    rows = (run_dir / "pareto.csv").read_text().strip().splitlines()[1:]
    code, out, err = _cli(["export", "--run-dir", str(run_dir), "--pareto", "--no-onnx", "--no-measure",
                           "--out", str(tmp_path / "all")], capsys)
    assert code == 0, err
    dirs = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert len(dirs) == len(rows) and all(d.startswith("pareto-t") for d in dirs)
    card = (tmp_path / "all" / dirs[0] / "README.md").read_text()
    assert "test accuracy: 12.5 %" in card and "pareto.csv trial" in card


def test_export_from_a_front_of_older_weights_reevaluates(tmp_path, capsys):
    from search.pareto import finalize, load_study

    run = make_tiny_run(tmp_path / "r")  # its own run: this test retrains (re-stamps) stage2
    code, _, err = _cli(["search", "--run-dir", str(run), "--scenario", "cpu-eager-t1-b1-s16",
                         "--objectives", "metric,macs", "--n-trials", "12", "--study-name", "old", "--threads", "1",
                         "--no-progress", "--no-finalize"], capsys)
    assert code == 0, err
    finalize(load_study(run, study_name="old"), run_dir=run, scenario="cpu-eager-t1-b1-s16",
             objectives=("metric", "macs"), full_costs=[1e9], test_fn=lambda cfg: 12.5)
    done = json.loads((run / "stage2" / "done.json").read_text())
    (run / "stage2" / "done.json").write_text(json.dumps({**done, "finished_at": "2026-03-03T00:00:00+00:00"}))
    code, _, err = _cli(["export", "--run-dir", str(run), "--knee", "--no-onnx", "--no-measure",
                         "--out", str(tmp_path / "k")], capsys)
    assert code == 0, err
    assert "warning: the search ran on checkpoint stage2@2026-01-01" in err
    card = (tmp_path / "k" / "README.md").read_text()
    assert "pareto.csv trial" in card and "12.5" not in card  # the old weights' test figure is not carried over
