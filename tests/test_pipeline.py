"""`dynabert run`: option resolution, config files, stage order, skipping and failure handling."""
from __future__ import annotations

import json

import pytest

from app.config import ConfigError
from app.workflow.pipeline import (DEFAULTS, PRESETS, STAGES, PipelineError, Step, load_config_file, resolve, run_pipeline,
                                   stage_plan)
from app.workflow.pipeline import already_done
from elastic.training.baselines import Recipe


def test_precedence_defaults_preset_file_cli():
    o = resolve("quick", {"n_trials": 50, "seed": 1}, {"seed": 7, "n_trials": None})
    assert o["max_length"] == PRESETS["quick"]["max_length"]  # preset over default
    assert o["n_trials"] == 50  # file over preset
    assert o["seed"] == 7  # flag over file; None flags do not override
    assert o["lr"] == PRESETS["quick"]["lr"] and o["batch_size"] == DEFAULTS["batch_size"] and o["preset"] == "quick"


def test_unknown_preset_and_option():
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        resolve("fast", {}, {})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['n_trails'\]"):
        resolve("quick", {"n_trails": 3}, {})


def test_paper_preset_needs_mlm_checkpoint():
    with pytest.raises(ConfigError, match="mlm_checkpoint"):
        resolve("paper", {}, {})
    assert resolve("paper", {"mlm_checkpoint": "/ckpt/bert"}, {})["importance_split"] == "dev"


def test_config_files(tmp_path):
    (tmp_path / "a.toml").write_text('n_trials = 12\nstage1-epochs = 0.5\n')
    (tmp_path / "b.yaml").write_text("n_trials: 13\nextra_subnets: 2\n")
    (tmp_path / "bad.toml").write_text("n_trials = = 1")
    (tmp_path / "c.json").write_text("{}")
    assert load_config_file(tmp_path / "a.toml") == {"n_trials": 12, "stage1_epochs": 0.5}
    assert load_config_file(tmp_path / "b.yaml") == {"n_trials": 13, "extra_subnets": 2}
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="use .toml"):
        load_config_file(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")


def test_stage_plan_carries_options(tmp_path):
    o = resolve("quick", {"extra_subnets": 2, "stage3": True}, {"task": "/data/sst2"})
    (teacher,) = stage_plan("teacher", tmp_path, o, resume=True)
    assert teacher.action == "train-teacher" and teacher.options.resume
    assert teacher.options.task == "/data/sst2" and teacher.options.max_length == PRESETS["quick"]["max_length"]
    s2 = stage_plan("stage2", tmp_path, o, resume=False)
    assert [s.action for s in s2] == ["train-stage2", "train-stage3"]
    assert s2[0].options.extra_subnets == 2 and not s2[0].options.resume
    assert [s.options.recipes for s in stage_plan("baselines", tmp_path, o, resume=False)] == \
        [(Recipe(r),) for r in PRESETS["quick"]["baselines"]]
    # students train as stage 2 does: its learning rate and its model selection (INT8 trains nothing)
    students = stage_plan("baselines", tmp_path, o.updated(baselines="distilbert,int8", stage2_lr=3e-4,
                                                           select_best="heldout"), resume=False)
    assert students[0].options.lr == 3e-4 and students[0].options.select_best == "heldout"
    assert students[1].options.lr == DEFAULTS["lr"] and students[1].options.select_best == "off"
    assert stage_plan("export", tmp_path, o.updated(export="none"), resume=False) == []
    (knee,) = stage_plan("export", tmp_path, o, resume=False)
    assert knee.options.knee and not knee.options.pareto
    with pytest.raises(ConfigError, match="option 'export' must be one of knee, pareto, none, got 'best'"):
        stage_plan("export", tmp_path, {**o, "export": "best"}, resume=False)  # a flat mapping is checked too
    sel = o.updated(stage2_lr=1e-4, select_best="heldout", select_every=25)
    (s1,), (s2, _) = stage_plan("stage1", tmp_path, sel, resume=False), stage_plan("stage2", tmp_path, sel, resume=False)
    assert s1.options.lr == o["lr"] and s2.options.lr == 1e-4
    for step in (s1, s2):
        assert (step.options.select_best, step.options.select_every) == ("heldout", 25)
    assert stage_plan("stage1", tmp_path, o, resume=False)[0].options.select_best == "off"


def test_stage2_hard_weight_applies_to_stage_2_alone(tmp_path):
    """standard: hard-label term in stage 2 only; quick: in both (hard_weight); each can be set on its own."""
    def weights(o):
        return [stage_plan(s, tmp_path, o, resume=False)[0].options.hard_weight for s in ("stage1", "stage2")]

    assert weights(resolve("standard", {}, {})) == [0.0, 1.0]
    assert weights(resolve("quick", {}, {})) == [1.0, 1.0]
    assert weights(resolve("released", {}, {})) == [0.0, 0.0]
    assert weights(resolve("standard", {}, {"stage2_hard_weight": 0.0})) == [0.0, 0.0]
    assert weights(resolve("standard", {"hard_weight": 0.5, "stage2_hard_weight": None}, {})) == [0.5, 0.5]


def test_stage_options_equal_those_of_the_same_command_line(tmp_path):
    """What the pipeline passes is what `dynabert train-stage2 ...` with the same values builds."""
    from app.cli.main import build_parser
    from app.cli.train import _options

    o = resolve("quick", {"extra_subnets": 1, "hidden_weight": 0.5}, {"select_best": "heldout"})
    (step,) = stage_plan("stage1", tmp_path, o, resume=True)
    args = build_parser().parse_args([
        "train-stage1", "--run-dir", str(tmp_path), "--epochs", str(o["stage1_epochs"]), "--batch-size", "32",
        "--lr", str(o["lr"]), "--seed", "42", "--save-every", str(o["save_every"]), "--limit-train",
        str(o["limit_train"]), "--padding", "longest", "--adam-eps", "torch", "--resume", "--select-best", "heldout",
        "--select-every", "50", "--hard-weight", str(o["hard_weight"]), "--batching", "random", "--hidden-weight",
        "0.5", "--device", o["device"], "--precision", o["precision"]])
    assert step.options == _options(args)


def test_run_order_timing_and_failure(tmp_path):
    calls = []
    o = resolve("quick", {}, {})
    rec = run_pipeline(tmp_path / "r", o, resume=False, execute=lambda step: calls.append(step.action))
    assert calls[:4] == ["train-teacher", "rewire", "train-stage1", "train-stage2"]
    assert calls[-1] == "export" and set(rec["stage_seconds"]) == set(STAGES)
    saved = json.loads((tmp_path / "r" / "pipeline.json").read_text())
    assert saved["options"]["task"] == "bbc" and "total_seconds" in saved

    def failing(step: Step):
        if step.action == "train-stage1":
            raise FileNotFoundError("teacher/ holds no checkpoint")
    with pytest.raises(PipelineError, match="stage 'stage1' failed .*teacher/ holds no checkpoint.*--resume"):
        run_pipeline(tmp_path / "r2", o, resume=False, execute=failing)
    # What finished before the failure is recorded.
    assert set(json.loads((tmp_path / "r2" / "pipeline.json").read_text())["stage_seconds"]) == {"teacher", "rewire"}


def test_run_dir_of_other_task(tmp_path):
    run_pipeline(tmp_path, resolve("quick", {}, {}), resume=False, execute=lambda s: None, only=["teacher"])
    with pytest.raises(PipelineError, match="was run on task 'bbc'"):
        run_pipeline(tmp_path, resolve("quick", {}, {"task": "/data/trec"}), resume=False, execute=lambda s: None)


def test_finished_non_training_stages_are_skipped(tmp_path):
    o = resolve("quick", {}, {})
    (tmp_path / "latency.csv").write_text("x\n")
    (tmp_path / "predictor.json").write_text("{}")
    (profile,) = stage_plan("profile", tmp_path, o, resume=False)
    assert len(profile.options.scenarios) == 2 and not already_done(profile)  # one predictor per variant
    (tmp_path / "predictors").mkdir()
    for key in profile.options.scenarios:
        (tmp_path / "predictors" / f"{key}.json").write_text("{}")
    (tmp_path / "baselines.csv").write_text("name,recipe\nd3,distilbert\n")
    (tmp_path / "exports" / "knee").mkdir(parents=True)
    (tmp_path / "exports" / "knee" / "README.md").write_text("card")
    calls = []
    run_pipeline(tmp_path, o, resume=False, execute=lambda s: calls.append(s.label))
    assert "profile" not in calls and "export" not in calls
    assert "baselines distilbert" not in calls and "baselines int8" in calls
    assert "search" in calls  # the search resumes from its storage itself


def test_search_stage_carries_workers_and_storage(tmp_path):
    o = resolve("quick", {}, {"n_workers": 3, "storage": "postgresql://u:pw@db.example/s", "study_name": "shared"})
    (step,) = stage_plan("search", tmp_path, o, resume=False)
    assert (step.options.n_workers, step.options.storage, step.options.study_name) == (
        3, "postgresql://u:pw@db.example/s", "shared")
    assert stage_plan("search", tmp_path, resolve("quick", {}, {}), resume=False)[0].options.storage is None


def test_dynabert_run_carries_out_every_stage_on_a_tiny_model(tmp_path, capsys):
    """The whole pipeline through the real workflow functions (no stand-in executor): tiny BERT, small CSV
    task, every stage; the clock of latency measurements is fixed (tests/real_run.py). Run again, it
    finds every stage done and changes nothing."""
    import torch

    from app.cli.main import main
    from elastic.model.weights import save_checkpoint
    from tests.helpers_search import _write_task, tiny_elastic, tiny_tokenizer
    from tests.real_run import fixed_clock

    teacher, data, run = tmp_path / "teacher", tmp_path / "task", tmp_path / "run"
    model = tiny_elastic(2)
    _write_task(data, {"train": 40, "dev": 24, "test": 24}, model)
    save_checkpoint(model, teacher)
    tiny_tokenizer().save_pretrained(str(teacher))
    (tmp_path / "tiny.toml").write_text(
        'max_length = 16\nbatch_size = 8\nteacher_epochs = 0.2\nstage1_steps = 2\nstage2_steps = 2\nsave_every = 1\n'
        'scenario = "cpu-eager-t1-b1-s16"\nn_random = 4\nn_heldout = 2\nn_trials = 6\nsampler = "random"\n'
        'baselines = "distilbert"\nbaseline_steps = 2\nexport = "knee"\ndevice = "cpu"\n')
    argv = ["run", "--run-dir", str(run), "--task", str(data), "--teacher", str(teacher), "--preset", "quick",
            "--config", str(tmp_path / "tiny.toml")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with fixed_clock():
            assert main(argv) == 0
            first = json.loads((run / "pipeline.json").read_text())
            assert set(first["stage_seconds"]) == set(STAGES)
            out = capsys.readouterr().out
            assert "stage2 done: 2 steps" in out and "Pareto front:" in out and "1 export(s)" in out
            cards = list((run / "exports").glob("*/README.md"))
            assert len(cards) == 1 and (cards[0].parent / "model.onnx").exists()
            assert "distilbert" in (run / "baselines.csv").read_text()
            assert {"stage1", "stage2"} <= {line.split(",")[0] for line in (run / "grid.csv").read_text().splitlines()}
            before = {p: p.stat().st_mtime_ns for p in (run / "stage2").glob("*")}
            assert main(argv) == 0  # everything is done: skipped, resumed from the storage, nothing retrained
            out = capsys.readouterr().out
            assert "stage2 already finished" in out and "already done" in out
            assert "trained with other options" not in out  # the same command: nothing differs
            assert before == {p: p.stat().st_mtime_ns for p in (run / "stage2").glob("*")}
            # Another budget for a finished stage: still skipped (nothing lost), but the command says what differs.
            (tmp_path / "tiny.toml").write_text((tmp_path / "tiny.toml").read_text().replace("stage2_steps = 2",
                                                                                           "stage2_steps = 3"))
            assert main(argv) == 0
            out = capsys.readouterr().out
            assert "stage2 already finished" in out and "max_steps: 2 -> 3" in out
            assert before == {p: p.stat().st_mtime_ns for p in (run / "stage2").glob("*")}
    finally:
        torch.set_num_threads(threads)


def test_run_variants_from_a_target_or_a_scenario_and_layers_that_replace_each_other(tmp_path):
    """The presets name the deployment variants; a file or flag naming them the other way replaces them (never
    both); profile gets one predictor per variant, search all of them, baselines the first fp32 one."""
    from app.config.variants import run_variants

    std = resolve("standard", {}, {})
    assert run_variants(std) == ("cpu-eager-t2-b1-s128", "cpu-ort-t2-b1-s128", "cpu-eager-int8-t2-b1-s128",
                                 "cpu-ort-int8-t2-b1-s128")
    (profile,) = stage_plan("profile", tmp_path, std, resume=False)
    (search,) = stage_plan("search", tmp_path, std, resume=False)
    assert profile.options.scenarios == run_variants(std) and search.options.variants == run_variants(std)
    assert stage_plan("baselines", tmp_path, std, resume=False)[0].options.scenarios == ("cpu-eager-t2-b1-s128",)
    one = resolve("standard", {}, {"scenario": "cpu-ort-int8-t2-b1-s64"})  # a flag's scenario replaces the target
    assert run_variants(one) == ("cpu-ort-int8-t2-b1-s64",) and one["target"] is None
    quick = resolve("quick", {"target": "cpu-t1-b1-s32"}, {"runtimes": "ort", "seed_with_rule": 20})
    assert run_variants(quick) == ("cpu-ort-t1-b1-s32",)  # the file's target replaces the preset's scenario
    (search,) = stage_plan("search", tmp_path, quick, resume=False)
    assert search.options.seed_with_rule == 20
    assert run_variants(std.updated(scenario="cpu-eager-t2-b1-s64")) == ("cpu-eager-t2-b1-s64",)
    with pytest.raises(ConfigError, match="both name the deployment variants"):
        resolve("released", {}, {"scenario": "cpu-ort-t2-b1-s64", "target": "cpu-t2-b1-s64"})
