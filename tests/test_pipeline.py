"""`dynabert run`: option resolution, config files, stage order, skipping and failure handling."""
from __future__ import annotations

import json

import pytest

from app.pipeline import DEFAULTS, PRESETS, STAGES, PipelineError, load_config_file, resolve, run_pipeline, stage_argv


def test_precedence_defaults_preset_file_cli():
    o = resolve("quick", {"n_trials": 50, "seed": 1}, {"seed": 7, "n_trials": None})
    assert o["max_length"] == PRESETS["quick"]["max_length"]  # preset over default
    assert o["n_trials"] == 50  # file over preset
    assert o["seed"] == 7  # flag over file; None flags do not override
    assert o["lr"] == PRESETS["quick"]["lr"] and o["batch_size"] == DEFAULTS["batch_size"] and o["preset"] == "quick"


def test_unknown_preset_and_option():
    with pytest.raises(PipelineError, match="unknown preset 'fast'"):
        resolve("fast", {}, {})
    with pytest.raises(PipelineError, match=r"unknown option\(s\) \['n_trails'\]"):
        resolve("quick", {"n_trails": 3}, {})


def test_paper_preset_needs_mlm_checkpoint():
    with pytest.raises(PipelineError, match="mlm_checkpoint"):
        resolve("paper", {}, {})
    assert resolve("paper", {"mlm_checkpoint": "/ckpt/bert"}, {})["importance_split"] == "dev"


def test_config_files(tmp_path):
    (tmp_path / "a.toml").write_text('n_trials = 12\nstage1-epochs = 0.5\n')
    (tmp_path / "b.yaml").write_text("n_trials: 13\nextra_subnets: 2\n")
    (tmp_path / "bad.toml").write_text("n_trials = = 1")
    (tmp_path / "c.json").write_text("{}")
    assert load_config_file(tmp_path / "a.toml") == {"n_trials": 12, "stage1_epochs": 0.5}
    assert load_config_file(tmp_path / "b.yaml") == {"n_trials": 13, "extra_subnets": 2}
    with pytest.raises(PipelineError, match="cannot be parsed"):
        load_config_file(tmp_path / "bad.toml")
    with pytest.raises(PipelineError, match="use .toml"):
        load_config_file(tmp_path / "c.json")
    with pytest.raises(PipelineError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")


def test_stage_argv_carries_options(tmp_path):
    o = resolve("quick", {"extra_subnets": 2, "stage3": True}, {"task": "/data/sst2"})
    teacher = stage_argv("teacher", tmp_path, o, resume=True)[0]
    assert teacher[:1] == ["train-teacher"] and "--resume" in teacher
    assert teacher[teacher.index("--task") + 1] == "/data/sst2"
    assert teacher[teacher.index("--max-length") + 1] == str(PRESETS["quick"]["max_length"])
    s2 = stage_argv("stage2", tmp_path, o, resume=False)
    assert [a[0] for a in s2] == ["train-stage2", "train-stage3"]
    assert s2[0][s2[0].index("--extra-subnets") + 1] == "2" and "--resume" not in s2[0]
    assert [a[a.index("--recipe") + 1] for a in stage_argv("baselines", tmp_path, o, resume=False)] == \
        PRESETS["quick"]["baselines"].split(",")
    # students train as stage 2 does: its learning rate and its model selection (INT8 trains nothing)
    students = stage_argv("baselines", tmp_path, {**o, "baselines": "distilbert,int8", "stage2_lr": 3e-4,
                                                  "select_best": "heldout"}, resume=False)
    assert students[0][students[0].index("--lr") + 1] == "0.0003"
    assert students[0][students[0].index("--select-best") + 1] == "heldout"
    assert "--lr" not in students[1] and "--select-best" not in students[1]
    assert stage_argv("export", tmp_path, {**o, "export": "none"}, resume=False) == []
    sel = {**o, "stage2_lr": 1e-4, "select_best": "heldout", "select_every": 25}
    s1, s2 = stage_argv("stage1", tmp_path, sel, resume=False)[0], stage_argv("stage2", tmp_path, sel, resume=False)[0]
    assert s1[s1.index("--lr") + 1] == str(o["lr"]) and s2[s2.index("--lr") + 1] == "0.0001"
    for argv in (s1, s2):
        assert argv[argv.index("--select-best") + 1] == "heldout" and argv[argv.index("--select-every") + 1] == "25"
    assert "--select-best" not in stage_argv("stage1", tmp_path, o, resume=False)[0]


def test_run_order_timing_and_failure(tmp_path):
    calls = []
    o = resolve("quick", {}, {})
    rec = run_pipeline(tmp_path / "r", o, resume=False, dispatch=lambda argv: calls.append(argv[0]) or 0)
    firsts = [c for c in calls]
    assert firsts[:4] == ["train-teacher", "rewire", "train-stage1", "train-stage2"]
    assert firsts[-1] == "export" and set(rec["stage_seconds"]) == set(STAGES)
    saved = json.loads((tmp_path / "r" / "pipeline.json").read_text())
    assert saved["options"]["task"] == "bbc" and "total_seconds" in saved

    def failing(argv):
        return 2 if argv[0] == "train-stage1" else 0
    with pytest.raises(PipelineError, match="stage 'stage1' failed .*--resume"):
        run_pipeline(tmp_path / "r2", o, resume=False, dispatch=failing)
    # What finished before the failure is recorded.
    assert set(json.loads((tmp_path / "r2" / "pipeline.json").read_text())["stage_seconds"]) == {"teacher", "rewire"}


def test_run_dir_of_other_task(tmp_path):
    run_pipeline(tmp_path, resolve("quick", {}, {}), resume=False, dispatch=lambda a: 0, only=["teacher"])
    with pytest.raises(PipelineError, match="was run on task 'bbc'"):
        run_pipeline(tmp_path, resolve("quick", {}, {"task": "/data/trec"}), resume=False, dispatch=lambda a: 0)


def test_finished_non_training_stages_are_skipped(tmp_path):
    o = resolve("quick", {}, {})
    (tmp_path / "latency.csv").write_text("x\n")
    (tmp_path / "predictor.json").write_text("{}")
    (tmp_path / "baselines.csv").write_text("name,recipe\nd3,distilbert\n")
    (tmp_path / "exports" / "knee").mkdir(parents=True)
    (tmp_path / "exports" / "knee" / "README.md").write_text("card")
    calls = []
    run_pipeline(tmp_path, o, resume=False, dispatch=lambda a: calls.append(a) or 0)
    ran = [(a[0], a[a.index("--recipe") + 1] if "--recipe" in a else None) for a in calls]
    assert ("profile", None) not in ran and ("export", None) not in ran
    assert ("baselines", "distilbert") not in ran and ("baselines", "int8") in ran
    assert ("search", None) in ran  # the search resumes from its storage itself


def test_search_stage_carries_workers_and_storage(tmp_path):
    o = resolve("quick", {}, {"n_workers": 3, "storage": "postgresql://u:pw@db.example/s", "study_name": "shared"})
    argv = stage_argv("search", tmp_path, o, resume=False)[0]
    assert argv[argv.index("--n-workers") + 1] == "3"
    assert argv[argv.index("--storage") + 1] == "postgresql://u:pw@db.example/s"
    assert argv[argv.index("--study-name") + 1] == "shared"
    assert "--storage" not in stage_argv("search", tmp_path, resolve("quick", {}, {}), resume=False)[0]
