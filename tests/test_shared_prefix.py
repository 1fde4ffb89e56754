"""`--subnet-forward shared-prefix`: the embedding output once per step and each layer prefix once per group of
sub-networks. Without dropout it must give the gradients and losses of the separate forward passes, with fewer
layer passes; with dropout it still trains."""
from __future__ import annotations

import copy
import random

import pytest
import torch

from elastic.training.loop import BatchPlan, LoopConfig
from elastic.training.train import SharedPrefixForward, Stage, run_step, step_plan, train_stage
from tests.conftest import TINY
from tests.test_train import tiny, tiny_data


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _step(student, teacher, batch, plan, stage, mode, **kw):
    student.zero_grad(set_to_none=True)
    out = run_step(student, teacher, batch, plan, stage, is_regression=False, subnet_forward=mode, **kw)
    return out, _grads(student)


@pytest.mark.parametrize("stage,loop_kw,kw", [
    (Stage.STAGE1, {}, {}),
    (Stage.STAGE2, {}, {}),
    (Stage.STAGE2, {"extra_subnets": 3}, {}),
    (Stage.STAGE2, {"teacher_width": "matched"}, {"scale": 0.5}),
    (Stage.STAGE3, {}, {}),
])
def test_shared_prefix_gives_the_gradients_of_separate_passes(stage, loop_kw, kw):
    teacher, student = tiny(seed=0), tiny(seed=1)
    student.train()  # dropout probabilities are 0: train mode is deterministic
    batch = BatchPlan(tiny_data(16), 16, 1).batch(0)
    plan = step_plan(stage, TINY, LoopConfig(total_steps=1, **loop_kw), random.Random(3))
    sep, g_sep = _step(student, teacher if stage is not Stage.STAGE3 else None, batch, plan, stage, "separate", **kw)
    shr, g_shr = _step(student, teacher if stage is not Stage.STAGE3 else None, batch, plan, stage, "shared-prefix",
                       **kw)
    assert g_sep.keys() == g_shr.keys() and g_sep
    for k in g_sep:  # the same sums in another order: equal to float rounding, relative to the tensor's scale
        # (+1e-9: some gradients are 0 in exact arithmetic, e.g. the key biases', and rounding noise in floats)
        assert (g_shr[k] - g_sep[k]).abs().max() <= 1e-5 * g_sep[k].abs().max() + 1e-9, k
    assert len(shr["per_subnet"]) == len(plan)
    for a, b in zip(sep["per_subnet"], shr["per_subnet"]):  # per sub-network, in plan order
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7)


def test_shared_prefix_runs_each_layer_prefix_once(monkeypatch):
    teacher, student = tiny(seed=0), tiny(seed=1)
    batch = BatchPlan(tiny_data(8), 8, 1).batch(0)
    plan = step_plan(Stage.STAGE2, TINY, LoopConfig(total_steps=1), random.Random(0))
    calls = []
    real = student.run_layer
    monkeypatch.setattr(student, "run_layer", lambda *a, **k: calls.append(a[2:5]) or real(*a, **k))
    _step(student, teacher, batch, plan, Stage.STAGE2, "separate")
    separate = len(calls)
    assert separate == sum(len(p.student.layers) for p in plan)
    calls.clear()
    _step(student, teacher, batch, plan, Stage.STAGE2, "shared-prefix")
    prefixes = {tuple(zip(p.student.layers[:i], p.student.heads[:i], p.student.ffn[:i]))
                for p in plan for i in range(1, len(p.student.layers) + 1)}
    assert len(calls) == len(prefixes) < separate
    assert len(SharedPrefixForward.groups(plan)) == len(LoopConfig(total_steps=1).widths)


def test_a_stage_trained_with_shared_prefixes_matches_separate_without_dropout():
    teacher, base = tiny(seed=0), tiny(seed=1)
    data = tiny_data(32)
    weights = {}
    for mode in ("separate", "shared-prefix"):
        student = copy.deepcopy(base)
        loop = LoopConfig(total_steps=3, batch_size=16, lr=1e-3, seed=1, subnet_forward=mode)
        train_stage(student, teacher, Stage.STAGE2, data, loop, is_regression=False, progress=False)
        weights[mode] = student.state_dict()
    moved = 0
    for k, v in weights["separate"].items():
        assert (weights["shared-prefix"][k] - v).abs().max() <= 1e-5 * max(1.0, v.abs().max()), k
        moved += int(not torch.equal(v, base.state_dict()[k]))
    assert moved > 10  # the stage did train


def test_with_dropout_shared_prefix_trains_and_differs_only_by_its_masks():
    teacher, student = tiny(seed=0), tiny(dropout=0.1, seed=1)
    data = tiny_data(16)
    batch = BatchPlan(data, 16, 1).batch(0)
    plan = step_plan(Stage.STAGE2, TINY, LoopConfig(total_steps=1), random.Random(0))
    student.train()
    out, grads = _step(student, teacher, batch, plan, Stage.STAGE2, "shared-prefix")
    assert all(torch.isfinite(g).all() for g in grads.values()) and out["loss"] > 0
    before = run_step(student.eval(), teacher, batch, plan, Stage.STAGE2, is_regression=False)["loss"]
    student.zero_grad(set_to_none=True)
    train_stage(student.train(), teacher, Stage.STAGE2, data,
                LoopConfig(total_steps=2, batch_size=16, lr=1e-3, seed=1, subnet_forward="shared-prefix"),
                is_regression=False, progress=False)
    assert run_step(student.eval(), teacher, batch, plan, Stage.STAGE2, is_regression=False)["loss"] < before


def test_unknown_subnet_forward_is_refused():
    with pytest.raises(ValueError, match="subnet_forward"):
        LoopConfig(total_steps=1, subnet_forward="fused")


def test_stage1_is_unchanged_with_dropout_on():
    """Stage 1's sub-networks all differ in their first layer: one per group, so shared-prefix runs exactly the
    separate passes, dropout masks included (the same random draws in the same order)."""
    teacher, student = tiny(seed=0), tiny(dropout=0.1, seed=1)
    batch = BatchPlan(tiny_data(16), 16, 1).batch(0)
    plan = step_plan(Stage.STAGE1, TINY, LoopConfig(total_steps=1), random.Random(0))
    assert [len(g) for g in SharedPrefixForward.groups(plan)] == [1] * len(plan)
    student.train()
    grads = {}
    for mode in ("separate", "shared-prefix"):
        torch.manual_seed(11)
        out, grads[mode] = _step(student, teacher, batch, plan, Stage.STAGE1, mode)
    for k, g in grads["separate"].items():
        assert torch.equal(grads["shared-prefix"][k], g), k


def test_the_step_time_tool_runs_both_modes_on_a_run(tmp_path, capsys):
    import json

    from bench.subnet_forward_ab import main
    from tests.helpers_search import make_tiny_run
    run = make_tiny_run(tmp_path)
    assert main(["--run-dir", str(run), "--rounds", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.startswith("round ") for line in out[:-1]] == [True, True]
    summary = json.loads(out[-1])
    assert summary["rounds"] == 2 and summary["subnets_per_step"] == 12
    assert summary["median_separate_s"] > 0 and summary["median_shared_prefix_s"] > 0
