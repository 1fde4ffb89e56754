"""Baseline recipes on the tiny model: students, losses, training, baselines.csv, the CLI end to end."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from elastic.training.baselines import (BASELINE_COLUMNS, DistilWeights, Objective, Recipe, append_baselines,
                               cosine_hidden_loss, distilbert_loss, make_projection, objective_loss, soft_ce_t,
                               tinybert_intermediate_loss, train_baseline)
from elastic.model.config import SubnetConfig
from elastic.data.tasks import EncodedSplit, PadCollator
from elastic.model.extract import extract
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.training.students import (checkpoint_student, distilbert_layers, distilbert_student, subnet_student,
                              teacher_maps, uniform_teacher_maps)
from elastic.training.loop import BatchPlan, LoopConfig


def _data(n: int = 16, seq: int = 10, labels: int = 3, seed: int = 0) -> EncodedSplit:
    g = torch.Generator().manual_seed(seed)
    ids = [[2] + torch.randint(5, 99, (int(torch.randint(3, seq, (1,), generator=g)),), generator=g).tolist()
           for _ in range(n)]
    return EncodedSplit(ids, [[0] * len(x) for x in ids], [i % labels for i in range(n)], False, 0)


def _eval_loss(objective, student, teacher, batch, projection=None) -> float:
    """The objective in eval mode; soft-CE terms minus their constant floor (the teacher's entropy)."""
    was = student.model.training
    student.model.eval()
    with torch.no_grad():
        loss, _ = objective_loss(objective, student, teacher, batch, is_regression=False, projection=projection)
        t = teacher(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    student.model.train(was)
    if objective is Objective.TINYBERT_INTERMEDIATE:
        return float(loss)
    w = DistilWeights()
    temp, weight = (w.temperature, w.soft * w.temperature ** 2) if objective is Objective.DISTILBERT else (1.0, 1.0)
    return float(loss) - weight * float(soft_ce_t(t, t, temp))


# ---- students ------------------------------------------------------------------------------------
def test_distilbert_layers_every_other():
    assert distilbert_layers(6, 3) == (0, 2, 4)
    assert distilbert_layers(12, 6) == (0, 2, 4, 6, 8, 10)
    assert distilbert_layers(4, 2) == (0, 2)
    assert distilbert_layers(4, 4) == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="depth"):
        distilbert_layers(4, 5)


@pytest.mark.parametrize("layers", [(0, 2), (1, 3), (0, 1, 3)])
def test_distilbert_init_copies_the_chosen_layers(tiny_model, layers):
    student = distilbert_student(tiny_model, layers)
    assert student.model.arch.num_layers == len(layers)
    assert student.in_teacher.layers == layers
    t_state, s_state = tiny_model.state_dict(), student.model.state_dict()
    for j, li in enumerate(layers):
        for key, value in s_state.items():
            if key.startswith(f"bert.encoder.layer.{j}."):
                src = key.replace(f"layer.{j}.", f"layer.{li}.", 1)
                assert torch.equal(value, t_state[src]), key
    for key in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight"):
        assert torch.equal(s_state[key], t_state[key])
    # a layer the student did not copy differs from the one it did (the check above can fail)
    other = next(i for i in range(4) if i not in layers)
    assert not torch.equal(s_state["bert.encoder.layer.0.attention.self.query.weight"],
                           t_state[f"bert.encoder.layer.{other}.attention.self.query.weight"])


def test_distilbert_student_computes_the_teacher_subnetwork(tiny_model, tiny_batch):
    student = distilbert_student(tiny_model, (0, 2))
    student.model.eval()
    b = tiny_batch
    got = student.model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
    want = tiny_model(b["input_ids"], b["attention_mask"], b["token_type_ids"], subnet=student.in_teacher).logits
    assert torch.allclose(got, want, atol=1e-6)


def test_subnet_student_equals_extracted_model(tiny_model, tiny_batch):
    cfg = SubnetConfig.uniform(tiny_model.arch, 0.5, 0.5)
    student = subnet_student(tiny_model, cfg)
    b = tiny_batch
    got = student.model.eval()(b["input_ids"], b["attention_mask"], b["token_type_ids"], subnet=student.subnet).logits
    want = extract(tiny_model, cfg).eval()(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
    assert torch.allclose(got, want, atol=1e-6)
    assert student.model is not tiny_model


def test_layer_maps():
    assert teacher_maps((0, 2, 4), 6) == ((0, 2, 4, 6), (1, 3, 5))
    assert uniform_teacher_maps(4, 12) == ((0, 3, 6, 9, 12), (2, 5, 8, 11))
    assert uniform_teacher_maps(3, 6) == teacher_maps((0, 2, 4), 6)


# ---- losses --------------------------------------------------------------------------------------
def test_soft_ce_temperature_and_distilbert_weights():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert not torch.isclose(soft_ce_t(s, t, 1.0), soft_ce_t(s, t, 2.0))
    h = torch.randn(5, 4, 8, generator=g)
    mask = torch.ones(5, 4, dtype=torch.long)
    labels = torch.tensor([0, 1, 2, 0, 1])
    loss, parts = distilbert_loss(s, t, labels, h, h, mask, DistilWeights(1.0, 0.0, 0.0, 2.0), is_regression=False)
    assert torch.isclose(loss, 4.0 * soft_ce_t(s, t, 2.0))  # T^2 scaling
    assert parts["cosine"] == pytest.approx(0.0, abs=1e-6)


def test_cosine_loss_ignores_padding():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    s2 = s.clone()
    s2[0, 3:] = 100.0  # padded positions of row 0 change
    assert torch.isclose(cosine_hidden_loss(s, t, mask), cosine_hidden_loss(s2, t, mask))
    s3 = s.clone()
    s3[0, 0] = -t[0, 0]
    assert cosine_hidden_loss(s3, t, mask) > cosine_hidden_loss(s, t, mask)
    assert float(cosine_hidden_loss(t, t, mask)) == pytest.approx(0.0, abs=1e-6)


def test_projection_only_when_sizes_differ():
    assert make_projection(32, 32) is None
    proj = make_projection(16, 32)
    assert isinstance(proj, torch.nn.Linear) and proj.in_features == 16 and proj.out_features == 32


def test_projection_is_used_in_the_intermediate_loss():
    g = torch.Generator().manual_seed(0)
    s_hidden = [torch.randn(2, 4, 16, generator=g, requires_grad=True) for _ in range(3)]
    t_hidden = [torch.randn(2, 4, 32, generator=g) for _ in range(5)]
    s_attn = [torch.rand(2, 4, 4, 4, generator=g) for _ in range(2)]
    t_attn = [torch.rand(2, 4, 4, 4, generator=g) for _ in range(4)]
    with pytest.raises(ValueError, match="projection"):
        tinybert_intermediate_loss(s_hidden, t_hidden, s_attn, t_attn, (0, 2, 4), (1, 3), None)
    proj = make_projection(16, 32)
    loss, parts = tinybert_intermediate_loss(s_hidden, t_hidden, s_attn, t_attn, (0, 2, 4), (1, 3), proj)
    loss.backward()
    assert proj.weight.grad is not None and float(proj.weight.grad.abs().sum()) > 0
    assert parts["attention"] > 0 and parts["embedding"] > 0
    # equal sizes: no projection needed, identical states give zero hidden/embedding loss
    same = [torch.randn(2, 4, 32, generator=g) for _ in range(3)]
    loss, parts = tinybert_intermediate_loss(same, [same[0], same[1], same[1], same[2]], t_attn[:2], t_attn,
                                             (0, 1, 3), (0, 1), None)
    assert parts["hidden"] == pytest.approx(0.0) and parts["embedding"] == pytest.approx(0.0)


def test_narrow_student_checkpoint_trains_its_projection(tiny_model):
    small_arch = replace(tiny_model.arch, num_layers=2, hidden_size=16, num_heads=2, head_dim=8, intermediate_size=32)
    torch.manual_seed(3)
    student = checkpoint_student(ElasticBertForSequenceClassification(small_arch, 3), tiny_model.arch)
    assert student.hidden_map == (0, 2, 4)
    proj = make_projection(16, tiny_model.arch.hidden_size, seed=0)
    before = proj.weight.detach().clone()
    data = _data()
    batch = BatchPlan(data, 16, 0).batch(0)
    first = _eval_loss(Objective.TINYBERT_INTERMEDIATE, student, tiny_model, batch, proj)
    train_baseline(student, tiny_model, Objective.TINYBERT_INTERMEDIATE, data,
                   LoopConfig(total_steps=15, batch_size=16, lr=3e-3), is_regression=False, projection=proj,
                   progress=False)
    assert not torch.equal(before, proj.weight.detach())
    assert _eval_loss(Objective.TINYBERT_INTERMEDIATE, student, tiny_model, batch, proj) < first


# ---- every recipe's loss decreases -----------------------------------------------------------------
@pytest.mark.parametrize("objective", list(Objective))
def test_recipe_loss_decreases(tiny_model, objective, tmp_path):
    if objective is Objective.DISTILBERT:
        student = distilbert_student(tiny_model, (0, 2))
    else:
        student = subnet_student(tiny_model, SubnetConfig.uniform(tiny_model.arch, 0.5, 0.5))
    data = _data()
    ordered = PadCollator(0, False)([data[i] for i in range(len(data))])
    with torch.no_grad():  # labels the teacher agrees with: the hard-label term can then fall too
        pred = tiny_model(ordered["input_ids"], ordered["attention_mask"], ordered["token_type_ids"]).logits.argmax(-1)
    data = replace(data, labels=pred.tolist())
    batch = BatchPlan(data, 16, 0).batch(0)
    first = _eval_loss(objective, student, tiny_model, batch)
    log = tmp_path / "log.jsonl"
    res = train_baseline(student, tiny_model, objective, data, LoopConfig(total_steps=12, batch_size=16, lr=3e-3,
                         log_every=4), is_regression=False, log_path=log, progress=False)
    last = _eval_loss(objective, student, tiny_model, batch)
    assert res.steps == 12
    assert last < 0.9 * first, (first, last)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["step"] for x in lines] == [4, 8, 12] and all(x["objective"] == objective.value for x in lines)


class _Killed(Exception):
    pass


def test_selection_ends_on_the_best_scored_weights_and_survives_resume(tiny_model, tmp_path):
    """Scores peak at step 4 of 6: the student must end on step 4's weights, also after a kill and resume."""
    data = _data()
    loop = LoopConfig(total_steps=6, batch_size=8, lr=3e-3, seed=3, save_every=3, select_every=2)
    scores = {2: 1.0, 4: 3.0, 6: 2.0}

    def run(ckpt, *, kill_at=None, resume=False):
        student = distilbert_student(tiny_model, (0, 2))
        seen = {}

        def select(step):
            if step == kill_at:
                raise _Killed
            seen[step] = {k: v.clone() for k, v in student.model.state_dict().items()}  # the weights scored
            return scores[step]
        res = train_baseline(student, tiny_model, Objective.DISTILBERT, data, loop, is_regression=False,
                             ckpt_dir=ckpt, resume=resume, progress=False, select_fn=select)
        return student, res, seen

    student, res, seen = run(tmp_path / "a")
    assert (res.selected_step, res.selected_score) == (4, 3.0)
    assert all(torch.equal(v, seen[4][k]) for k, v in student.model.state_dict().items())
    assert not all(torch.equal(v, seen[6][k]) for k, v in student.model.state_dict().items())
    with pytest.raises(_Killed):
        run(tmp_path / "b", kill_at=6)
    assert json.loads((tmp_path / "b_best" / "best.json").read_text())["step"] == 4
    resumed, res, _ = run(tmp_path / "b", resume=True)  # restarts at step 3's checkpoint
    assert res.selected_step == 4
    diff = max((v - student.model.state_dict()[k]).abs().max().item() for k, v in resumed.model.state_dict().items())
    assert diff <= 1e-6


def test_teacher_is_not_trained(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    student = distilbert_student(tiny_model, (0, 2))
    train_baseline(student, tiny_model, Objective.DISTILBERT, _data(), LoopConfig(total_steps=3, batch_size=8, lr=1e-3),
                   is_regression=False, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())


# ---- baselines.csv -------------------------------------------------------------------------------
def test_baselines_csv_schema_and_append(tmp_path):
    from app.dashboard.artifacts import load_csv
    row = dict(name="distilbert-L0-2", recipe=Recipe.DISTILBERT, config_json='{"ffn":[64,64],"heads":[4,4],"layers":[0,2]}',
               macs=1000, params=50, dev_metric=80.5, test_metric=79.0, latency_ms=1.5,
               scenario="cpu-eager-t2-b1-s128", steps=10, epochs=1.0)
    append_baselines(tmp_path, [row])
    append_baselines(tmp_path, [{**row, "name": "int8-teacher-ort-int8", "recipe": "int8", "steps": None,
                                 "epochs": None}])
    df = load_csv(tmp_path / "baselines.csv")
    assert list(df.columns[:len(BASELINE_COLUMNS)]) == list(BASELINE_COLUMNS)
    assert list(df["name"]) == ["distilbert-L0-2", "int8-teacher-ort-int8"]
    assert list(df["recipe"]) == ["distilbert", "int8"]
    assert df["describe"][0].startswith("L[0,2]")
    # same (name, scenario) replaces instead of duplicating; another scenario appends
    append_baselines(tmp_path, [{**row, "test_metric": 81.0}, {**row, "scenario": "cpu-ort-t2-b1-s128"}])
    df = pd.read_csv(tmp_path / "baselines.csv")
    assert len(df) == 3
    assert df[(df["name"] == "distilbert-L0-2") & (df["scenario"] == "cpu-eager-t2-b1-s128")]["test_metric"].item() == 81.0
    with pytest.raises(ValueError):
        append_baselines(tmp_path, [{**row, "recipe": "bogus"}])
    with pytest.raises(ValueError, match="unknown"):
        append_baselines(tmp_path, [{**row, "colour": "red"}])


# ---- the command, end to end on a tiny run directory ------------------------------------------------
WORDS = [f"w{i}" for i in range(94)]


def _tiny_run(tmp_path: Path, tiny_arch) -> Path:
    """A run directory with tokenizer/, teacher/, rewired/, stage2/ of a 2-label tiny BERT and TSV data."""
    from transformers import BertTokenizerFast

    from elastic.model.weights import save_checkpoint
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 48), ("dev", 16), ("test", 16)):
        lines = ["sentence\tlabel"]
        for i in range(n):
            idx = torch.randint(0, 94, (int(torch.randint(2, 8, (1,), generator=g)),), generator=g).tolist()
            lines.append(" ".join(WORDS[j] for j in idx) + f"\t{int(idx[0] < 47)}")
        (data / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(str(run / "tokenizer"))
    (run / "run.json").write_text(json.dumps({"task_spec": str(data), "seed": 0, "max_length": 16,
                                              "heldout_examples": 0}))
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_arch, 2)
    for stage in ("teacher", "rewired", "stage2"):
        save_checkpoint(model, run / stage)
        (run / stage / "done.json").write_text(json.dumps({"steps": 3, "epochs": 1.0}))
    return run


def test_cli_baselines_end_to_end(tmp_path, tiny_arch, capsys):
    from app.dashboard.artifacts import load_csv
    from app.cli.main import main
    run = _tiny_run(tmp_path, tiny_arch)
    argv = ["baselines", "--run-dir", str(run), "--recipe", "all", "--scenario", "cpu-eager-t1-b1-s16",
            "--int8-runtime", "eager-int8", "--dynabert-points", "0.5:0.5", "--min-run-time", "0.01",
            "--no-progress", "--lr", "1e-3"]
    assert main(argv) == 0
    df = load_csv(run / "baselines.csv")
    assert list(df["recipe"]) == ["distilbert", "tinybert", "int8", "dynabert_int8"]
    assert list(df["name"]) == ["distilbert-L0-2", "tinybert-w0.5-L0-2", "int8-teacher-eager-int8",
                                "dynabert-stage2-w0.5-d0.5-eager-int8"]
    # budget: the run's stage (3 steps, from stage2/done.json); TinyBERT runs it once per phase
    assert list(df["steps"][:2]) == [3.0, 6.0]
    assert (df["latency_ms"] > 0).all()
    assert list(df["scenario"]) == ["cpu-eager-t1-b1-s16"] * 2 + ["cpu-eager-int8-t1-b1-s16"] * 2
    assert df["dev_metric"].between(0, 100).all() and df["test_metric"].between(0, 100).all()
    from profiling.flops import analytic_macs
    half = SubnetConfig.uniform(tiny_arch, 1.0, 0.5)
    assert df["macs"][0] == analytic_macs(tiny_arch, half, 16)  # the DistilBERT student = teacher layers 0, 2
    assert df["config"][1] == SubnetConfig.uniform(tiny_arch, 0.5, 0.5)
    assert (run / "baselines" / "tinybert-w0.5-L0-2" / "tinybert-intermediate" / "done.json").exists()
    # a rerun measures again but does not retrain, and replaces its rows instead of duplicating them
    ckpt = run / "baselines" / "distilbert-L0-2" / "model.safetensors"
    mtime = ckpt.stat().st_mtime_ns
    assert main(argv[:4] + ["distilbert"] + argv[5:]) == 0
    assert ckpt.stat().st_mtime_ns == mtime
    assert len(load_csv(run / "baselines.csv")) == 4
    assert "distilbert-L0-2" in capsys.readouterr().out


def test_cli_students_with_model_selection(tmp_path, tiny_arch, capsys):
    from app.cli.main import main
    run = _tiny_run(tmp_path, tiny_arch)
    argv = ["baselines", "--run-dir", str(run), "--recipe", "distilbert", "tinybert", "--scenario", "cpu-eager-t1-b1-s16",
            "--min-run-time", "0.01", "--no-progress", "--lr", "1e-3", "--max-steps", "4", "--select-every", "2"]
    assert main(argv + ["--select-best", "heldout"]) == 2  # this run kept no held-out slice
    assert "no held-out training slice" in capsys.readouterr().err
    assert main(argv + ["--select-best", "dev"]) == 0
    for name in ("distilbert-L0-2", "tinybert-w0.5-L0-2"):
        done = json.loads((run / "baselines" / name / "done.json").read_text())
        assert done["select_best"] == "dev" and done["selected_step"] in (2, 4) and 0 <= done["selected_score"] <= 100
        assert not [d for d in (run / "baselines" / name).iterdir() if d.name.startswith("ckpt")]
    log = [json.loads(x) for x in (run / "baselines" / "tinybert-w0.5-L0-2" / "train.jsonl").read_text().splitlines()]
    # only the prediction phase is scored: the intermediate phase does not train the task output
    assert {r["objective"] for r in log if "select_score" in r} == {"tinybert-prediction"}
    assert main(argv + ["--select-best", "off"]) == 2  # a student trained otherwise is not silently reused
    assert "--select-best dev" in capsys.readouterr().err


def test_cli_tinybert_needs_rewiring(tmp_path, tiny_arch, capsys):
    import shutil

    from app.cli.main import main
    run = _tiny_run(tmp_path, tiny_arch)
    shutil.rmtree(run / "rewired")
    assert main(["baselines", "--run-dir", str(run), "--recipe", "tinybert", "--no-progress"]) == 2
    assert "dynabert rewire" in capsys.readouterr().err


def test_ort_int8_accuracy_matches_fp32(tmp_path, tiny_arch):
    from app.workflow.baselines import int8_metrics
    from elastic.data.tasks import load_task
    from elastic.training.evaluate import evaluate, make_eval_loader
    from elastic.training.stage_options import StageOptions
    from elastic.training.prepare import prepare
    run = _tiny_run(tmp_path, tiny_arch)
    prep = prepare(run, StageOptions(progress=False))
    model, _ = __import__("elastic.model.weights", fromlist=["load_checkpoint"]).load_checkpoint(run / "teacher")
    cfg = SubnetConfig.uniform(tiny_arch, 0.5, 1.0)
    fp32 = {s: evaluate(model, ld, cfg, prep.task)["metric"] for s, ld in prep.loaders.items()}
    q = int8_metrics(model, cfg, "ort-int8", prep.loaders, prep.task, threads=1)
    assert set(q) == {"dev", "test"}
    for s in q:  # 16 examples each: at most 2 predictions may flip under INT8
        assert abs(q[s] - fp32[s]) <= 12.5 + 1e-9

