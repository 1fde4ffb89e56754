"""A tiny RoBERTa end to end through the CLI: a `RobertaForSequenceClassification` saved with
save_pretrained plus an offline byte-level BPE tokenizer -> teacher, rewire, stage 1, 2, 3, profile of
one sub-network, export, and a fresh process that loads the export with stock transformers."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from app.cli.main import main
from elastic.model.config import SubnetConfig
from elastic.model.weights import load_checkpoint
from tests.helpers_search import tiny_roberta_tokenizer
from tests.test_export import load_in_fresh_process
from tests.test_train import _write_task


def _write_roberta_teacher(root):
    from transformers import RobertaConfig, RobertaForSequenceClassification
    tok = tiny_roberta_tokenizer()
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=34, type_vocab_size=1, layer_norm_eps=1e-5,
                        num_labels=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        RobertaForSequenceClassification(cfg).save_pretrained(str(root))
    tok.save_pretrained(str(root))
    return root


def test_tiny_roberta_pipeline_end_to_end(tmp_path, capsys):
    task, teacher = _write_task(tmp_path / "task", 0), _write_roberta_teacher(tmp_path / "roberta")
    run = tmp_path / "run"
    common = ["--run-dir", str(run), "--batch-size", "8", "--no-progress", "--device", "cpu"]
    steps = [["train-teacher", "--task", str(task), "--teacher", str(teacher), "--max-length", "16",
              "--max-steps", "3", *common],
             ["rewire", "--run-dir", str(run), "--no-progress", "--device", "cpu"],
             ["train-stage1", "--max-steps", "2", *common],
             ["train-stage2", "--max-steps", "2", "--extra-subnets", "1", *common],
             ["train-stage3", "--max-steps", "1", *common]]
    for argv in steps:
        assert main(argv) == 0, (argv[0], capsys.readouterr().err[-2000:])
    model, _ = load_checkpoint(run / "stage3")
    assert model.arch.model_type == "roberta" and model.arch.pad_token_id == 1 and model.bert.pooler is None
    grid = pd.read_csv(run / "grid.csv")
    assert grid.stage.value_counts().to_dict() == {"teacher": 1, "stage1": 12, "stage2": 12, "stage3": 12}
    assert grid.dev_metric.between(0, 100).all() and grid.macs.gt(0).all()

    cfg = SubnetConfig.uniform(model.arch, 0.5, 0.75)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    capsys.readouterr()
    assert main(["export", "--run-dir", str(run), "--subnet", str(tmp_path / "cfg.json"), "--out",
                 str(tmp_path / "exp"), "--no-measure", "--scenario", "cpu-eager-t1-b1-s16"]) == 0, \
        capsys.readouterr().err[-2000:]
    out = tmp_path / "exp"
    assert json.loads((out / "config.json").read_text())["backbone"] == "roberta"

    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(out))  # the RoBERTa tokenizer travelled with the export
    enc = tok(["w1 w2 w3 w40", "w7 w41"], padding=True, return_tensors="pt")
    assert enc["input_ids"][1, -1].item() == 1  # RoBERTa pads with id 1
    with torch.no_grad():
        ref = model.eval()(enc["input_ids"], enc["attention_mask"], subnet=cfg).logits
    got = load_in_fresh_process(out, enc["input_ids"], enc["attention_mask"], tmp_path)
    assert got["ours"] == [] and got["layer_heads"] == list(cfg.heads)
    assert np.abs(np.array(got["logits"]) - ref.numpy()).max() < 1e-4


@pytest.mark.parametrize("model_type", ["gpt2", "distilbert", "xlm-roberta"])
def test_other_model_types_get_one_line_naming_the_supported(tmp_path, capsys, model_type):
    task = _write_task(tmp_path / "task", 0)
    d = tmp_path / model_type
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": model_type, "num_hidden_layers": 2}))
    assert main(["train-teacher", "--run-dir", str(tmp_path / "r"), "--task", str(task), "--teacher", str(d),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"model_type '{model_type}' is not supported" in err and "bert and roberta" in err
