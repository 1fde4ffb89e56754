"""Training stages on the tiny model: one step lowers the loss, resume equivalence, the run-dir pipeline,
bad input (other task, missing teacher, incompatible teacher)."""
from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from elastic.model.config import SubnetConfig
from elastic.data.tasks import EncodedSplit
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.training.loop import BatchPlan, LoopConfig
from elastic.training.train import Stage, run_step, step_plan, train_stage
from elastic.model.weights import CheckpointError, save_checkpoint
from tests.conftest import TINY

WORDS = [f"w{i}" for i in range(TINY.vocab_size - 5)]


def tiny(dropout: float = 0.0, seed: int = 0, num_labels: int = 2) -> ElasticBertForSequenceClassification:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ElasticBertForSequenceClassification(TINY, num_labels, hidden_dropout_prob=dropout,
                                                    attention_probs_dropout_prob=dropout)


def tiny_data(n: int = 24, seed: int = 0) -> EncodedSplit:
    g = torch.Generator().manual_seed(seed)
    ids, types, labels = [], [], []
    for _ in range(n):
        length = int(torch.randint(4, 12, (1,), generator=g))
        ids.append([2] + torch.randint(5, TINY.vocab_size, (length,), generator=g).tolist() + [3])
        types.append([0] * (length + 2))
        labels.append(int(torch.randint(0, 2, (1,), generator=g)))
    return EncodedSplit(ids, types, labels, False, 0)


class Killed(Exception):
    """Raised by a `kill_at` hook: a stage interrupted in the middle."""


def kill_at(step_to_kill: int):
    """An `on_step` hook that interrupts training once `step_to_kill` steps are done."""
    def hook(step: int) -> None:
        if step == step_to_kill:
            raise Killed
    return hook


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sb = b.state_dict()
    return max((v - sb[k]).abs().max().item() for k, v in a.state_dict().items())


@pytest.mark.parametrize("stage", [Stage.STAGE1, Stage.STAGE2])
def test_one_step_lowers_distillation_loss(stage):
    teacher, student = tiny(seed=0), tiny(seed=1)
    data = tiny_data(16)
    loop = LoopConfig(total_steps=1, batch_size=16, lr=1e-4, seed=1)
    plan = step_plan(stage, TINY, loop, random.Random(0))
    assert len(plan) == (4 if stage is Stage.STAGE1 else 12)
    batch = BatchPlan(data, 16, 1).batch(0)
    student.eval()  # dropout is 0 anyway; eval only to compare like with like
    before = run_step(student, teacher, batch, plan, stage, is_regression=False)
    student.zero_grad(set_to_none=True)
    train_stage(student, teacher, stage, data, loop, is_regression=False, progress=False)
    after = run_step(student, teacher, batch, plan, stage, is_regression=False)
    assert after["loss"] < before["loss"]
    assert before["hidden"] > 0  # narrower sub-networks differ from the teacher before training


def test_stage2_plan_extras_are_seeded_and_include_smallest():
    loop = LoopConfig(total_steps=1, extra_subnets=2, widths=(1.0, 0.75, 0.5))
    a = step_plan(Stage.STAGE2, TINY, loop, random.Random(7))
    b = step_plan(Stage.STAGE2, TINY, loop, random.Random(7))
    assert [p.student for p in a] == [p.student for p in b]
    assert len(a) == 9 + 1 + 2
    assert a[9].student == SubnetConfig.uniform(TINY, 0.25, 0.5)
    matched = step_plan(Stage.STAGE2, TINY, LoopConfig(total_steps=1, teacher_width="matched"), random.Random(0))
    assert {p.teacher.heads[0] for p in matched} == {4, 3, 2, 1}
    assert all(p.teacher.layers == (0, 1, 2, 3) for p in matched)


def test_resume_gives_the_same_weights(tmp_path):
    """Interrupt after step 3 (last checkpoint at step 2), resume in a fresh model, finish at 6.

    Dropout is on and extra random sub-networks are drawn, so RNG states must be restored too.
    Tolerance: 1e-6 (observed: bitwise equal on CPU).
    """
    teacher, init = tiny(dropout=0.1, seed=0), tiny(dropout=0.1, seed=1)
    data = tiny_data(20)
    loop = LoopConfig(total_steps=6, batch_size=8, lr=1e-3, seed=3, save_every=2, extra_subnets=1,
                      widths=(1.0, 0.5), depths=(1.0, 0.5))
    ref = copy.deepcopy(init)
    train_stage(ref, teacher, Stage.STAGE2, data, loop, is_regression=False, ckpt_dir=tmp_path / "a", progress=False)

    victim = copy.deepcopy(init)
    with pytest.raises(Killed):
        train_stage(victim, teacher, Stage.STAGE2, data, loop, is_regression=False, ckpt_dir=tmp_path / "b",
                    progress=False, on_step=kill_at(3), log_path=tmp_path / "b.jsonl")
    assert json.loads((tmp_path / "b" / "state.json").read_text())["step"] == 2
    resumed = copy.deepcopy(init)
    res = train_stage(resumed, teacher, Stage.STAGE2, data, loop, is_regression=False, ckpt_dir=tmp_path / "b",
                      progress=False, resume=True)
    assert res.steps == 6
    assert _max_diff(resumed, ref) <= 1e-6
    assert _max_diff(resumed, init) > 1e-4  # it trained at all
    # A checkpoint written before an option existed resumes as if it had the option's default.
    state_file = tmp_path / "a" / "state.json"
    state = json.loads(state_file.read_text())
    del state["loop"]["select_every"]
    state_file.write_text(json.dumps(state))
    old = copy.deepcopy(init)
    assert train_stage(old, teacher, Stage.STAGE2, data, loop, is_regression=False, ckpt_dir=tmp_path / "a",
                       progress=False, resume=True).steps == 6
    changed = LoopConfig(**{**loop.__dict__, "lr": 2e-3})
    with pytest.raises(ValueError, match="different options"):
        train_stage(copy.deepcopy(init), teacher, Stage.STAGE2, data, changed, is_regression=False,
                    ckpt_dir=tmp_path / "b", progress=False, resume=True)


# ---- the run-directory pipeline on a tiny tokenizer and task ------------------------------------
def _write_task(root: Path, seed: int, n_train: int = 48) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", 12), ("test", 12)):
        rows = []
        for _ in range(n):
            label = rng.randint(0, 1)
            words = [rng.choice(WORDS[:40] if label else WORDS[40:]) for _ in range(rng.randint(3, 8))]
            rows.append({"sentence": " ".join(words), "label": label})
        pd.DataFrame(rows).to_csv(root / f"{split}.tsv", sep="\t", index=False)
    return root


def _write_teacher(root: Path, vocab: int = TINY.vocab_size) -> Path:
    from transformers import BertTokenizerFast
    root.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    words = words[:vocab] + [f"x{i}" for i in range(vocab - len(words))]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(root))
    arch = TINY if vocab == TINY.vocab_size else TINY.__class__(**{**TINY.to_dict(), "vocab_size": vocab})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        save_checkpoint(ElasticBertForSequenceClassification(arch, 2), root)
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from elastic.training.stage_options import StageOptions
    from elastic.training.stages import run_rewire, run_stage
    base = tmp_path_factory.mktemp("pipeline")
    task, teacher = _write_task(base / "task", 0), _write_teacher(base / "teacher")
    run = base / "run"
    common = dict(task=str(task), max_length=16, seed=1, save_every=2, progress=False, batch_size=8)
    run_stage(run, Stage.TEACHER, StageOptions(teacher=str(teacher), max_steps=3, **common))
    run_rewire(run, StageOptions(progress=False))
    run_stage(run, Stage.STAGE1, StageOptions(max_steps=2, **common))
    run_stage(run, Stage.STAGE2, StageOptions(max_steps=2, extra_subnets=1, **common))
    run_stage(run, Stage.STAGE3, StageOptions(max_steps=1, **common))
    return {"run": run, "task": task, "teacher": teacher, "base": base, "common": common}


def test_pipeline_writes_the_run_directory(tiny_run):
    run = tiny_run["run"]
    grid = pd.read_csv(run / "grid.csv")
    assert grid.stage.value_counts().to_dict() == {"teacher": 1, "stage1": 12, "stage2": 12, "stage3": 12}
    assert grid.dev_metric.between(0, 100).all() and grid.params.gt(0).all()
    imp = json.loads((run / "importance.json").read_text())
    assert imp["split"] == "train-heldout" and imp["n_examples"] == 4 and len(imp["head"]) == TINY.num_layers
    meta = json.loads((run / "run.json").read_text())
    assert meta["heldout_examples"] == 4 and meta["options"]["stage1"]["train_examples"] == 44
    assert set(meta["stage_seconds"]) == {"teacher", "rewired", "stage1", "stage2", "stage3"}
    log = [json.loads(x) for x in (run / "logs" / "stage2.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and "dev_metric" in log[-1] and log[-1]["subnets"] == 13
    for stage in ("teacher", "stage1", "stage2", "stage3"):
        assert (run / stage / "done.json").exists() and not (run / stage / "ckpt").exists()


def test_finished_stage_is_not_rerun_and_cli_evaluates(tiny_run, capsys):
    from app.cli.main import main
    from elastic.training.stage_options import StageOptions
    from elastic.training.stages import run_stage
    before = (tiny_run["run"] / "stage1" / "model.safetensors").stat().st_mtime_ns
    info = run_stage(tiny_run["run"], Stage.STAGE1, StageOptions(max_steps=5, progress=False))
    assert info["skipped"] and info["steps"] == 2
    assert (tiny_run["run"] / "stage1" / "model.safetensors").stat().st_mtime_ns == before
    assert main(["evaluate", "--run-dir", str(tiny_run["run"]), "--width", "0.5", "--depth", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["layers"] == [0, 2] and 0 <= out["results_pct"]["test"]["accuracy"] <= 100


def test_bad_inputs_give_one_clear_message(tiny_run, tmp_path, capsys):
    from app.cli.main import main
    run = str(tiny_run["run"])
    other = _write_task(tmp_path / "other", seed=9)
    assert main(["train-stage3", "--run-dir", run, "--task", str(other), "--max-steps", "1"]) == 2
    assert "belongs to task" in capsys.readouterr().err
    assert main(["train-teacher", "--run-dir", str(tmp_path / "r2"), "--task", str(other),
                 "--teacher", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    wrong_vocab = _write_teacher(tmp_path / "big", vocab=120)
    fresh = tmp_path / "run_copy"
    shutil.copytree(run, fresh)
    shutil.rmtree(fresh / "stage2")
    assert main(["train-stage2", "--run-dir", str(fresh), "--teacher", str(wrong_vocab), "--max-steps", "1",
                 "--no-progress"]) == 2
    assert "vocabulary of 120 tokens" in capsys.readouterr().err
    from elastic.training.prepare import check_compatible
    other_arch = ElasticBertForSequenceClassification(TINY.__class__(**{**TINY.to_dict(), "num_layers": 2}), 2)
    with pytest.raises(CheckpointError, match="another architecture"):
        check_compatible(tiny(), other_arch, "x")


# ---- augmentation ------------------------------------------------------------------------------
def _write_mlm(root: Path, with_head: bool = True) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertModel
    tok_dir = _write_teacher(root / "tok_src")
    cfg = BertConfig(vocab_size=TINY.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForMaskedLM(cfg) if with_head else BertModel(cfg)
    out = root / ("mlm" if with_head else "plain")
    model.save_pretrained(str(out))
    for f in tok_dir.iterdir():
        if f.name not in ("model.safetensors", "elastic_config.json"):
            shutil.copy(f, out / f.name)
    return out


def test_augmentation_replaces_words_deterministically(tmp_path):
    from elastic.data.augment import AugmentError, augment_texts
    mlm = _write_mlm(tmp_path)
    texts = ["w1 w2 w3 w4 w5 w6", "w7 w8 w9"]
    a = augment_texts(texts, n_per_example=3, mlm_checkpoint=mlm, seed=0, p_replace=0.9)
    b = augment_texts(texts, n_per_example=3, mlm_checkpoint=mlm, seed=0, p_replace=0.9)
    assert a == b and len(a) == 6
    assert all(len(x.split()) == len(texts[i // 3].split()) for i, x in enumerate(a))
    assert sum(x != texts[i // 3] for i, x in enumerate(a)) >= 3
    with pytest.raises(AugmentError, match="no masked-LM head"):
        augment_texts(texts, n_per_example=1, mlm_checkpoint=_write_mlm(tmp_path / "p", with_head=False), seed=0)


def test_length_sorted_eval_loader_keeps_labels_aligned():
    from elastic.data.tasks import TaskData, compute_metrics, make_loader
    from elastic.training.evaluate import make_eval_loader, predict_logits
    model, data = tiny(seed=2), tiny_data(40, seed=4)
    task = TaskData("t", ("sentence",), ["0", "1"], "accuracy", False,
                    {"train": pd.DataFrame({"text_a": ["x"], "label": [0]})})
    plain = predict_logits(model, make_loader(data, 7, shuffle=False))
    fast = predict_logits(model, make_eval_loader(data, 16))
    assert sorted(fast[1].tolist()) == sorted(plain[1].tolist())
    assert compute_metrics(task, *fast) == pytest.approx(compute_metrics(task, *plain))
    assert not torch.equal(torch.tensor(fast[1]), torch.tensor(plain[1]))  # the order did change


# ---- model selection (--select-best) --------------------------------------------------------------
def test_selection_keeps_the_best_scored_weights_and_survives_resume(tmp_path):
    """Scores peak at step 4 of 6: the stage must end on step 4's weights, also after a kill + resume."""
    teacher, init = tiny(dropout=0.1, seed=0), tiny(dropout=0.1, seed=1)
    data = tiny_data(20)
    loop = LoopConfig(total_steps=6, batch_size=8, lr=1e-3, seed=3, save_every=3, select_every=2,
                      widths=(1.0, 0.5), depths=(1.0, 0.5))
    scores = {2: 1.0, 4: 3.0, 6: 2.0}
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def run(model, ckpt, resume=False, on_step=None):
        def step_hook(step):
            snapshots.setdefault(step, {k: v.clone() for k, v in model.state_dict().items()})
            if on_step:
                on_step(step)
        return train_stage(model, teacher, Stage.STAGE2, data, loop, is_regression=False, ckpt_dir=ckpt,
                           progress=False, resume=resume, on_step=step_hook,
                           select_fn=lambda step: scores[step])

    ref = copy.deepcopy(init)
    res = run(ref, tmp_path / "a")
    assert (res.selected_step, res.selected_score) == (4, 3.0)
    step4 = snapshots[4]
    assert max((v - step4[k]).abs().max().item() for k, v in ref.state_dict().items()) == 0.0
    assert json.loads((tmp_path / "a_best" / "best.json").read_text()) == {"step": 4, "score": 3.0}

    victim = copy.deepcopy(init)
    with pytest.raises(Killed):
        run(victim, tmp_path / "b", on_step=kill_at(5))
    assert json.loads((tmp_path / "b_best" / "best.json").read_text())["step"] == 4
    resumed = copy.deepcopy(init)
    res = run(resumed, tmp_path / "b", resume=True)  # restarts at step 3, re-scores 4 and 6
    assert res.selected_step == 4 and _max_diff(resumed, ref) <= 1e-6
    with pytest.raises(ValueError, match="select_every"):
        LoopConfig(total_steps=2, select_every=-1)


def test_select_best_in_a_run_directory(tiny_run, tmp_path, capsys):
    from app.cli.main import main
    fresh = tmp_path / "run_sel"
    shutil.copytree(tiny_run["run"], fresh)
    shutil.rmtree(fresh / "stage2")
    assert main(["train-stage2", "--run-dir", str(fresh), "--max-steps", "3", "--select-best", "heldout",
                 "--select-every", "2", "--no-progress"]) == 0
    done = json.loads((fresh / "stage2" / "done.json").read_text())
    assert done["select_on"] == "heldout" and done["selected_step"] in (2, 3) and done["selected_over"] == 12
    assert 0 <= done["selected_score"] <= 1200 and not (fresh / "stage2" / "ckpt_best").exists()
    log = [json.loads(x) for x in (fresh / "logs" / "stage2.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "select_score" in r] == [2, 3]
    shutil.rmtree(fresh / "stage2")
    meta = json.loads((fresh / "run.json").read_text())
    meta["heldout_examples"] = 0
    (fresh / "run.json").write_text(json.dumps(meta))
    assert main(["train-stage2", "--run-dir", str(fresh), "--max-steps", "1", "--select-best", "heldout",
                 "--no-progress"]) == 2
    assert "no held-out training slice" in capsys.readouterr().err


def test_teacher_with_a_fresh_head_is_the_same_for_the_same_seed(tmp_path):
    """--seed fixes the teacher: its fresh classifier head is drawn from a seeded RNG, whatever ran before."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from elastic.training.stage_options import StageOptions
    from elastic.training.stages import run_stage
    task = _write_task(tmp_path / "task", 0, n_train=16)
    teacher = tmp_path / "hf_bert"  # a transformers BERT without a classification head (and its tokenizer)
    tok = _write_teacher(tmp_path / "tok")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=TINY.vocab_size, hidden_size=TINY.hidden_size, num_hidden_layers=TINY.num_layers,
                         num_attention_heads=TINY.num_heads, intermediate_size=TINY.intermediate_size,
                         max_position_embeddings=TINY.max_position_embeddings)).save_pretrained(str(teacher))
    for f in tok.iterdir():
        if "tok" in f.name or f.name.startswith(("vocab", "special")):
            shutil.copy(f, teacher / f.name)
    weights = []
    for name, disturb in (("a", 1), ("b", 2), ("c", 3)):
        torch.manual_seed(disturb)  # the global RNG in another state before each run
        opts = StageOptions(teacher=str(teacher), task=str(task), max_length=16, batch_size=8, max_steps=2,
                            seed=7 if name != "c" else 8, progress=False)
        run_stage(tmp_path / name, Stage.TEACHER, opts)
        weights.append(load_file(str(next((tmp_path / name / "teacher").glob("*.safetensors")))))
    a, b, c = weights
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])  # another seed, another head
