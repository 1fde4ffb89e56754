"""The `released` preset (the released code's recipe as named options) and its two benches' reports."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from app.workflow.pipeline import resolve, stage_plan
from elastic.training.stage_options import StageOptions
from elastic.training.loop import LoopConfig, eps_at


def _opts(stage: str, **cli) -> StageOptions:
    (step,) = stage_plan(stage, Path("runs/x"), resolve("released", {}, cli), resume=False)
    return step.options


def test_released_preset_sets_the_released_recipe() -> None:
    teacher = _opts("teacher", task="sst2")
    assert teacher.importance_split == "dev"  # importance on dev: the teacher trains on all of train
    assert teacher.max_length == 64 and teacher.lr == 2e-5
    rewire = _opts("rewire")
    assert (rewire.importance_grads, rewire.importance_order, rewire.importance_batch_size) == ("cumulative", "file", 8)
    for stage in ("stage1", "stage2"):
        o = _opts(stage, stage1_steps=433, stage2_steps=433)
        assert o.max_steps == 433 and o.lr == 2e-5
        assert o.padding == "max_length" and o.adam_eps == "released"
        assert o.select_best == "off" and o.augment == 0
    assert _opts("stage2").teacher_width == "full"
    assert _opts("stage1").max_steps is None  # without steps, the preset's epochs apply
    assert _opts("stage1").epochs == 2.0


def test_cli_options_reach_stage_options() -> None:
    from app.cli.main import build_parser
    from app.cli.train import _options
    args = build_parser().parse_args(["train-stage1", "--run-dir", "r", "--padding", "max_length", "--adam-eps", "released"])
    opts = _options(args)
    assert (opts.padding, opts.adam_eps) == ("max_length", "released")
    args = build_parser().parse_args(["rewire", "--run-dir", "r", "--importance-grads", "cumulative",
                                      "--importance-order", "file", "--importance-batch-size", "8"])
    opts = _options(args)
    assert (opts.importance_grads, opts.importance_order, opts.importance_batch_size) == ("cumulative", "file", 8)


def test_bad_released_options_are_refused() -> None:
    with pytest.raises(ValueError, match="padding"):
        StageOptions(padding="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="importance-batch-size"):
        StageOptions(importance_batch_size=0)
    with pytest.raises(ValueError, match="adam_eps"):
        LoopConfig(total_steps=1, adam_eps="tf")  # type: ignore[arg-type]


def test_released_eps_is_eps_before_bias_correction() -> None:
    loop = LoopConfig(total_steps=3, adam_eps="released")
    assert eps_at(0, loop, 0.999) == pytest.approx(1e-8 / (1 - 0.999) ** 0.5)
    assert eps_at(0, LoopConfig(total_steps=3), 0.999) == 1e-8


def _reference(path: Path) -> Path:
    rows = [("stage2", w, d, 80.0 + w, 81.0 + d) for d in (1.0, 0.75, 0.5) for w in (1.0, 0.75, 0.5, 0.25)]
    pd.DataFrame(rows, columns=["stage", "width_mult", "depth_mult", "dev_acc", "test_acc"]).to_csv(path, index=False)
    return path


def test_released_recipe_bench_writes_its_keys(tmp_path, monkeypatch) -> None:
    import bench.sst2_released_recipe as bench
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    grid = [{"stage": "stage2", "width_mult": w, "depth_mult": d, "dev_acc": 80.0 + w, "test_acc": 81.5 + d - (w == 0.25)}
            for d in (1.0, 0.75, 0.5) for w in (1.0, 0.75, 0.5, 0.25)]
    pd.DataFrame(grid).to_csv(run_dir / "grid.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps({"teacher_metrics": {"dev": {"accuracy": 86.0},
                                                                       "test": {"accuracy": 87.0}}}))
    monkeypatch.setattr(bench, "REFERENCE", _reference(tmp_path / "ref.csv"))
    monkeypatch.setattr(bench, "run", lambda a: None)  # the training itself is the pipeline's (tested elsewhere)
    assert bench.main(["--run-dir", str(run_dir), "--out-dir", str(tmp_path / "out"), "--steps", "3"]) == 0
    r = json.loads((tmp_path / "out" / "sst2_released_recipe.json").read_text())
    for key in ("grid", "teacher", "mean_abs_test_diff", "min_test_diff", "commit", "dirty", "command", "fingerprint",
                "wall_seconds", "load_before", "load_after"):
        assert key in r, key
    assert len(r["grid"]) == 12 and set(r["grid"][0]) == {
        "width_mult", "depth_mult", "ours_dev_acc", "ours_test_acc", "released_dev_acc", "released_test_acc"}
    assert r["teacher"] == {"dev_acc": 86.0, "test_acc": 87.0}
    assert r["min_test_diff"] == pytest.approx(-0.5) and r["mean_abs_test_diff"] == pytest.approx(0.5)
    assert "NOT comparable" in (tmp_path / "out" / "sst2_released_recipe.md").read_text()


def test_step_time_report_and_checkpoint_conversion(tmp_path, tiny_model) -> None:
    from bench.step_time_vs_released import convert_checkpoint, render_md, summarize
    from elastic.model.weights import save_checkpoint
    s = summarize({"stage1": {"ours": [1.0, 2.0, 3.0], "released": [4.0, 4.0]},
                   "stage2": {"ours": [3.0], "released": [6.0, 6.0, 7.0]}})
    assert s["stage1_ms"] == {"ours": 2000.0, "released": 4000.0} and s["stage1_ratio"] == 0.5
    assert s["stage2_ratio"] == 0.5
    md = render_md({**s, "command": "c", "commit": "abc", "dirty": False, "threads": 2, "load_before": 1.0,
                    "load_after": 1.0, "wall_seconds": 1.0, "fingerprint": {"cpu": "x"}, "checkpoint": "k", "rounds": 2,
                    "order": ["ours", "released"], "steps_per_round": 3, "steps_each": 6, "ours_padding": "longest"})
    assert "| stage2 | 12 | 3000 | 6000 | 0.500 |" in md and "Smoke size" in md
    run = tmp_path / "run"
    save_checkpoint(tiny_model, run / "stage1")
    (run / "tokenizer").mkdir()
    (run / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    out = convert_checkpoint(run, "stage1", tmp_path / "released")
    state = torch.load(out / "pytorch_model.bin", weights_only=True)
    assert set(state) == set(tiny_model.state_dict())  # bert.* / classifier.* keys
    assert all(k.startswith(("bert.", "classifier.")) for k in state)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_attention_heads"] == 4 and cfg["num_labels"] == 3 and cfg["output_intermediate"] is False


def test_sst2_bench_report_has_recipe_seed_and_the_targets(tmp_path, monkeypatch) -> None:
    import sys

    import bench.sst2_dynabert as bench
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    grid = [{"stage": "stage2", "width_mult": w, "depth_mult": d, "dev_acc": 80.0, "test_acc": 82.0 + d - (w == 0.25)}
            for d in (1.0, 0.75, 0.5) for w in (1.0, 0.75, 0.5, 0.25)]
    pd.DataFrame(grid).to_csv(run_dir / "grid.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps({"teacher_metrics": {"dev": {"accuracy": 86.0},
                                                                       "test": {"accuracy": 84.0}}}))
    monkeypatch.setattr(bench, "REFERENCE", _reference(tmp_path / "ref.csv"))  # test_acc 81 + d
    monkeypatch.setattr(sys, "argv", ["sst2_dynabert.py", "--run-dir", str(run_dir), "--out", str(tmp_path / "r"),
                                      "--report-only", "--seed", "43", "--extra=--lr 1e-4 --select-best heldout"])
    assert bench.main() == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["recipe"] == "standard" and {g["seed"] for g in r["grid"]} == {43}
    assert {g["recipe"] for g in r["grid"]} == {"standard"}
    v = r["vs_released"]
    assert v["test_diff"]["w1_d1"] == pytest.approx(1.0) and v["test_diff"]["w0.25_d0.5"] == pytest.approx(0.0)
    assert v["mean_test_diff"] == pytest.approx(0.75) and v["min_test_diff"] == pytest.approx(0.0)
    assert v["w0.25_d0.5_minus_teacher"] == pytest.approx(82.5 - 1 - 84.0)
    md = (tmp_path / "r.md").read_text()
    assert "released code's + 1.0: NOT met (+0.75)" in md and "every point >= the released code's: met" in md
    assert "(0.25, 0.5) >= teacher - 3.0: met (-2.50)" in md


def test_sst2_bench_report_only_keeps_the_training_provenance(tmp_path, monkeypatch) -> None:
    import sys

    import bench.sst2_dynabert as bench
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pd.DataFrame([{"stage": "stage1", "width_mult": 1.0, "depth_mult": 1.0, "dev_acc": 80.0, "test_acc": 81.0}]).to_csv(
        run_dir / "grid.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps({"teacher_metrics": {"dev": {"accuracy": 86.0},
                                                                       "test": {"accuracy": 84.0}}}))
    trained = {"commit": "abc123", "dirty": False, "wall_seconds": 5000.0, "load_before": 0.9, "load_after": 1.1,
               "command": "python -m bench.sst2_dynabert --steps 433", "overhead": {}}
    (tmp_path / "r.json").write_text(json.dumps(trained))
    monkeypatch.setattr(bench, "REFERENCE", _reference(tmp_path / "ref.csv"))
    monkeypatch.setattr(sys, "argv", ["x", "--run-dir", str(run_dir), "--out", str(tmp_path / "r"), "--report-only"])
    assert bench.main() == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert {k: r[k] for k in trained if k != "overhead"} == {k: v for k, v in trained.items() if k != "overhead"}
    assert r["report_command"].endswith("--report-only") and "report_commit" in r
    assert "Provenance (written by `python -m bench.run`): commit `abc123`" in (tmp_path / "r.md").read_text()


def test_sst2_bench_retrains_the_stages_whose_recipe_changed(tmp_path, capsys) -> None:
    """A reused run directory keeps a finished stage only while it was trained with the asked recipe."""
    from bench.sst2_dynabert import RECIPE_STAMP, reconcile_recipe

    run_dir = tmp_path / "run"
    base = {"teacher": ["sst2", 3.0, 42, 64], "stage1": [433, "--select-best", "heldout"],
            "stage2": [433, "--lr", "1e-4", "--select-best", "heldout"]}

    def trained() -> None:
        for s in ("teacher", "rewired", "stage1", "stage2"):
            (run_dir / s).mkdir(parents=True, exist_ok=True)
            (run_dir / s / "done.json").write_text("{}")

    trained()
    assert reconcile_recipe(run_dir, base) == []  # no record yet: today's is written
    assert json.loads((run_dir / RECIPE_STAMP).read_text()) == base
    assert reconcile_recipe(run_dir, base) == []  # same recipe: everything kept
    assert all((run_dir / s / "done.json").exists() for s in ("teacher", "rewired", "stage1", "stage2"))

    hard = {**base, "stage2": [*base["stage2"], "--hard-weight", "1.0"]}
    moved = reconcile_recipe(run_dir, hard)
    assert [m.split(".old-")[0] for m in moved] == ["stage2"]
    assert not (run_dir / "stage2").exists() and (run_dir / moved[0] / "done.json").exists()
    assert (run_dir / "stage1" / "done.json").exists() and "stage2 was trained with" in capsys.readouterr().out
    assert json.loads((run_dir / RECIPE_STAMP).read_text()) == hard

    trained()
    moved = reconcile_recipe(run_dir, {**hard, "stage1": [216]})  # an earlier stage: it and every later one
    assert sorted(m.split(".old-")[0] for m in moved) == ["stage1", "stage2"]
    assert (run_dir / "teacher" / "done.json").exists() and (run_dir / "rewired" / "done.json").exists()

    with pytest.raises(SystemExit, match="use another --run-dir"):
        reconcile_recipe(run_dir, {**hard, "teacher": ["sst2", 3.0, 43, 64]})
    assert (run_dir / "teacher" / "done.json").exists()
