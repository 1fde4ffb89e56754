"""Seeing a stage train: per-sub-network loss terms in the log, the hard-label and hidden weights,
per-sub-network selection metrics, the majority-class warning, and the dashboard's per-sub-network curves."""
from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from app.dashboard import charts as C
from elastic.data.tasks import TaskData
from elastic.training.stages import majority_accuracy, stuck_subnets, stuck_warning
from elastic.training.loop import LoopConfig
from elastic.training.train import LOSS_WEIGHTS, LossWeights, Stage, loss_weights, run_step, step_plan, subnet_name, train_stage
from elastic.training.loop import BatchPlan
from tests.conftest import TINY
from tests.test_train import tiny, tiny_data


def test_log_records_every_subnetworks_loss_terms_and_selection_metrics(tmp_path):
    teacher, student = tiny(seed=0), tiny(seed=1)
    log = tmp_path / "stage2.jsonl"
    loop = LoopConfig(total_steps=2, batch_size=8, lr=1e-4, seed=1, log_every=1, select_every=1)
    names = [subnet_name(p.student, TINY) for p in step_plan(Stage.STAGE2, TINY, loop, random.Random(0))]
    assert names[0] == "w1.0_d1.0" and "w0.25_d0.5" in names and len(set(names)) == 12
    train_stage(student, teacher, Stage.STAGE2, tiny_data(16), loop, is_regression=False, progress=False,
                log_path=log, select_fn=lambda step: {"w1.0_d1.0": 50.0 + step, "w0.25_d0.5": 10.0})
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        per = r["subnet_losses"]
        assert set(per) == set(names)
        # the per-sub-network terms add up to the logged totals
        assert sum(v["logit"] for v in per.values()) == pytest.approx(r["logit_loss"], rel=1e-4)
        assert sum(v["loss"] for v in per.values()) == pytest.approx(r["loss"], rel=1e-4)
        assert r["select_metrics"] == {"w1.0_d1.0": 50.0 + r["step"], "w0.25_d0.5": 10.0}
        assert r["select_score"] == pytest.approx(60.0 + r["step"])
    df = pd.DataFrame(rows)
    series = C.subnet_series(df, "subnet_losses")
    assert set(series) == set(names) and series["w0.25_d0.5"][0] == [1, 2]
    assert C.subnet_curve_figure(df, "select_metrics") is not None
    assert C.subnet_curve_figure(df, "dev_metrics") is None  # not in this log


def test_hard_and_hidden_weights_change_the_loss():
    teacher, student = tiny(seed=0), tiny(seed=1)
    batch = BatchPlan(tiny_data(8), 8, 0).batch(0)
    plan = step_plan(Stage.STAGE2, TINY, LoopConfig(total_steps=1), random.Random(0))[:2]
    student.eval()
    base = run_step(student, teacher, batch, plan, Stage.STAGE2, is_regression=False)
    assert loss_weights(Stage.STAGE2, LoopConfig(total_steps=1)) == LossWeights(*LOSS_WEIGHTS[Stage.STAGE2])
    w = loss_weights(Stage.STAGE2, LoopConfig(total_steps=1, hidden_weight=0.0, hard_weight=2.0))
    assert w == LossWeights(1.0, 0.0, 2.0)
    other = run_step(student, teacher, batch, plan, Stage.STAGE2, is_regression=False, weights=w)
    assert other["hard"] > 0 and base["hard"] == 0
    assert other["loss"] == pytest.approx(base["logit"] + 2.0 * other["hard"], rel=1e-5)
    with pytest.raises(ValueError, match="hard_weight"):
        LoopConfig(total_steps=1, hard_weight=-1.0)


def _task(labels: list[int]) -> TaskData:
    df = pd.DataFrame({"text_a": ["x"] * len(labels), "label": labels})
    return TaskData(name="t", text_columns=("text",), label_names=["a", "b", "c"], metric="accuracy",
                    is_regression=False, splits={"train": df, "dev": df})


def test_majority_class_warning_names_stuck_subnetworks():
    task = _task([0, 0, 0, 1, 2])  # majority class: 60 %
    assert majority_accuracy(task, "dev") == pytest.approx(60.0)
    rows = [{"width_mult": 1.0, "depth_mult": 1.0, "dev_acc": 90.0},
            {"width_mult": 0.25, "depth_mult": 0.5, "dev_acc": 60.0},
            {"width_mult": 0.5, "depth_mult": 0.5, "dev_acc": 58.0}]
    stuck = stuck_subnets(rows, task)
    assert [(s["width_mult"], s["depth_mult"]) for s in stuck] == [(0.25, 0.5), (0.5, 0.5)]
    text = stuck_warning("stage2", stuck)
    assert "2 grid sub-network(s)" in text and "(w0.25, d0.5) 60.0" in text and "60.0%" in text
    assert stuck_subnets(rows[:1], task) == []


def test_length_grouped_batches_cover_the_epoch_with_less_padding():
    data = tiny_data(200, seed=3)
    rand = BatchPlan(data, 8, 5, "random")
    grouped = BatchPlan(data, 8, 5, "length-grouped")
    again = BatchPlan(data, 8, 5, "length-grouped")
    for epoch in (0, 1):
        steps = range(epoch * grouped.steps_per_epoch, (epoch + 1) * grouped.steps_per_epoch)
        seen = sorted(i for s in steps for i in grouped.indices(s))
        assert seen == list(range(200))  # every example once per epoch
        assert [grouped.indices(s) for s in steps] == [again.indices(s) for s in reversed(steps)][::-1]

    def padded(plan: BatchPlan) -> int:
        return sum(plan.batch(s)["input_ids"].numel() for s in range(plan.steps_per_epoch))
    assert padded(grouped) < 0.8 * padded(rand)
    assert grouped.indices(0) != grouped.indices(grouped.steps_per_epoch)  # a new order each epoch
    with pytest.raises(ValueError, match="batching"):
        BatchPlan(data, 8, 5, "sorted")


@pytest.mark.parametrize("stage", [Stage.STAGE1, Stage.STAGE2])
def test_shared_word_lookup_gives_the_gradients_of_separate_lookups(stage):
    """run_step shares one word-embedding lookup between the step's sub-networks; the gradients (embedding
    table included, padding row excluded) equal those of one lookup per sub-network, dropout on."""
    import torch

    from elastic.training.losses import distillation_loss, matched_teacher_indices
    teacher, student = tiny(seed=0), tiny(dropout=0.1, seed=1)
    batch = BatchPlan(tiny_data(8), 8, 0).batch(0)
    plan = step_plan(stage, TINY, LoopConfig(total_steps=1), random.Random(0))
    w = LossWeights(*LOSS_WEIGHTS[stage])
    student.train()
    torch.manual_seed(5)
    run_step(student, teacher, batch, plan, stage, is_regression=False, weights=w, subnet_forward="separate")
    shared = {k: p.grad.clone() for k, p in student.named_parameters()}
    student.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    with torch.no_grad():
        t = teacher(ids, mask, types, output_hidden_states=True)
    for p in plan:
        out = student(ids, mask, types, subnet=p.student, output_hidden_states=True)
        loss, _ = distillation_loss(out.logits, out.hidden_states, t.logits, t.hidden_states,
                                    matched_teacher_indices(p.student.layers, TINY.num_layers),
                                    logit_weight=w.logit, hidden_weight=w.hidden, is_regression=False)
        loss.backward()
    for k, p in student.named_parameters():
        assert torch.allclose(shared[k], p.grad, rtol=1e-5, atol=1e-7), k
    assert shared["bert.embeddings.word_embeddings.weight"].abs().sum() > 0
