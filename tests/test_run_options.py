"""`dynabert run` for real work: every option documented in examples/run.toml (loaded through the real loader),
the plan and expected time printed first, and the column options carried to the stage commands."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from app.workflow import pipeline
from app.cli.main import main
from app.workflow.estimate import STEP_RATES, plan_lines, seconds_per_step, stage_steps, step_rates
from app.config import render_example
from app.config.run_config import coerce_options, field_names
from app.workflow.pipeline import DEFAULTS, PRESETS, load_config_file, resolve, stage_plan
from elastic.model.weights import default_teacher_path, read_arch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run.toml"
OPTION_LINE = re.compile(r"^# ([a-z0-9_]+ = .*?)(\s+#.*)?$")


def test_example_config_is_generated_from_the_fields():
    assert EXAMPLE.read_text() == render_example(), "examples/run.toml is stale: run `python -m app.config > " \
        "examples/run.toml`"


def test_example_config_loads_and_documents_every_option(tmp_path):
    assert resolve("standard", load_config_file(EXAMPLE), {}) == resolve("standard", {}, {})  # all commented out
    lines = [m.group(1) for m in map(OPTION_LINE.match, EXAMPLE.read_text().splitlines()) if m]
    (tmp_path / "all.toml").write_text("\n".join(lines) + "\n")
    every = load_config_file(tmp_path / "all.toml")
    assert list(every) == list(DEFAULTS) == list(field_names())  # every option, in section order, no unknown one
    opts = resolve("standard", every, {})
    for key, default in DEFAULTS.items():
        if default is not None:  # documented defaults are the real ones
            assert every[key] == default, key
    assert opts["text_columns"] == ("review",)


def test_presets_are_overrides_of_checked_fields():
    for name, overrides in PRESETS.items():
        assert set(overrides) <= set(DEFAULTS), name
        assert coerce_options(overrides, str) == overrides, name  # each value already of its field's type
    assert resolve("quick", {}, {}).stage2.stage2_lr == PRESETS["quick"]["stage2_lr"]


def test_flags_of_run_and_train_commands_are_the_fields():
    import argparse
    from dataclasses import fields

    from app.cli.main import build_parser
    from elastic.training.stage_options import StageOptions, stage_flags

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    flags = {name: {o for a in p._actions for o in a.option_strings if o.startswith("--")} for name, p in sub.items()}
    own = {"--help", "--run-dir"}
    assert flags["run"] - own - {"--preset", "--config", "--only", "--resume", "--no-stage3"} == {
        "--" + k.replace("_", "-") for k in DEFAULTS}
    for stage in ("teacher", "stage1", "stage2", "stage3"):
        names = {"--" + k.replace("_", "-") for k in stage_flags(stage)}
        assert flags[f"train-{stage}"] - own - {"--no-progress", "--device", "--precision"} == names, stage
        assert names <= {"--" + f.name.replace("_", "-") for f in fields(StageOptions)}


def test_single_stage_commands_default_to_the_run_recipe(tmp_path):
    """`dynabert train-stage2` with no flags trains what `dynabert run --preset standard` trains in stage 2."""
    from dataclasses import asdict

    from app.cli.main import build_parser
    from app.cli.train import _options
    from elastic.training.stage_options import RUN_LEVEL

    run = resolve("standard", {}, {})
    for stage in ("teacher", "stage1", "stage2", "stage3"):
        args = build_parser().parse_args([f"train-{stage}", "--run-dir", str(tmp_path)])
        alone = asdict(_options(args))
        plan = [s for st in ("teacher", "stage1", "stage2") for s in stage_plan(st, tmp_path, run.updated(stage3=True),
                                                                               resume=False)]
        piped = asdict(next(s.options for s in plan if s.action == f"train-{stage}"))
        for key in RUN_LEVEL:  # the run's facts: the pipeline passes them, a single command reads run.json
            alone.pop(key), piped.pop(key)
        assert alone == piped, stage
    args = build_parser().parse_args(["train-stage2", "--run-dir", str(tmp_path)])
    assert (_options(args).lr, _options(args).epochs, _options(args).hard_weight) == (2e-4, 2.0, 1.0)


def test_columns_reach_the_teacher_command(tmp_path):
    o = resolve("quick", {"text_columns": ["q", "a"]}, {"label_column": "y"})
    (step,) = stage_plan("teacher", tmp_path, o, resume=False)
    assert step.options.text_columns == ("q", "a") and step.options.label_column == "y"


def test_steps_and_estimate_follow_the_measured_table():
    o = resolve("quick", {}, {})
    steps = stage_steps(o, 640)
    assert steps == {"teacher": 60, "stage1": 20, "stage2": 40}  # 640 / 32 = 20 steps per epoch; stage 2: 2 epochs
    arch, _ = read_arch(default_teacher_path())
    rates = step_rates()
    assert rates.batch_size == 32
    assert math.isclose(seconds_per_step("stage2", arch, 64, 32), rates.seconds["stage2"][64])
    assert seconds_per_step("teacher", arch, 128, 32) > 2 * seconds_per_step("teacher", arch, 64, 32)  # MACs
    assert math.isclose(seconds_per_step("stage1", arch, 64, 16), rates.seconds["stage1"][64] / 2)
    assert math.isclose(seconds_per_step("stage3", arch, 64, 32), rates.seconds["stage2"][64])  # at stage 2's rate


def test_step_rates_file_is_derived_from_the_committed_quick_pipeline_result():
    """app/data/step_rates.json is what bench/pipeline_quick.py derives from results/pipeline_quick.json (stage
    seconds / steps): `python -m bench.pipeline_quick --write-step-rates` rewrites it; nothing is typed by hand."""
    from bench.pipeline_quick import step_rates as derive

    res = Path(__file__).resolve().parents[1] / "results" / "pipeline_quick.json"
    if not res.exists():
        pytest.skip("results/pipeline_quick.json is not in this checkout")
    data = json.loads(res.read_text())
    assert json.loads(STEP_RATES.read_text()) == derive(data), \
        "app/data/step_rates.json is out of date: run `python -m bench.pipeline_quick --write-step-rates`"
    steps = stage_steps(resolve(data["preset"], {}, {}), data["recipe"]["limit_train"])
    for stage, table in step_rates().seconds.items():  # the estimate reads back stage seconds / steps
        assert table[64] == pytest.approx(data["stage_seconds"][stage] / steps[stage], rel=1e-6), stage


def test_run_prints_its_plan_first(tmp_path, capsys, monkeypatch):
    d = tmp_path / "data"
    d.mkdir()
    pd.DataFrame({"body": [f"text {i}" for i in range(100)], "stars": [i % 2 for i in range(100)]}).to_csv(
        d / "train.csv", index=False)
    monkeypatch.setattr(pipeline, "run_pipeline",
                        lambda *a, **k: {"total_seconds": 0.0, "stage_seconds": {}})
    assert main(["run", "--run-dir", str(tmp_path / "r"), "--task", str(d), "--text-columns", "body",
                 "--label-column", "stars", "--max-length", "32"]) == 0
    out = capsys.readouterr().out.splitlines()
    # 100 rows: 10 dev + 10 test carved, 8 of the 80 held out for importance -> 72
    assert out[0].startswith("preset standard: 72 training examples") and "max length 32" in out[0]
    assert out[1] == "steps per stage: teacher 9, stage1 6, stage2 6"  # 3 / 2 / 2 epochs of 3 steps
    assert out[2].startswith("expected training time on this machine: about") and "measured" in out[2]
    assert PRESETS["standard"]["stage1_epochs"] == 2.0


def test_closed_choices_of_the_config_are_the_libraries_own():
    from typing import get_args

    from app.config.run_config import BaselineRecipe, SearchConfig
    from elastic.training.baselines import Recipe
    from elastic.training.option_fields import specs
    from search.options import OBJECTIVES
    assert {s.name: s for s in specs(SearchConfig)}["objectives"].choices == OBJECTIVES
    assert get_args(BaselineRecipe) == tuple(r.value for r in Recipe)


def test_an_objective_registered_later_is_a_choice_of_the_config_and_of_dynabert_run(capsys):
    """The objectives are an open set (search.objectives' registry): one `register` call makes a new objective a
    valid config value and a valid `dynabert run --objectives` choice; unregistered, it is refused again."""
    from app.cli.main import build_parser
    from app.config import resolve
    from app.config.run_config import SearchConfig
    from elastic.training.option_fields import specs
    from search.objectives import CostObjective, register, unregister

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--run-dir", "x", "--objectives", "metric,layers"])
    assert "must be a comma-separated list of one of metric, latency, macs, params, got layers" in capsys.readouterr().err
    register(CostObjective(name="layers", unit="layers", column="kept_layers", label="Kept layers",
                           compute=lambda cfg, ctx: len(cfg.layers), integer=True))
    try:
        assert "layers" in {s.name: s for s in specs(SearchConfig)}["objectives"].choices
        args = build_parser().parse_args(["run", "--run-dir", "x", "--objectives", "metric,layers"])
        assert args.objectives == ("metric", "layers")
        assert resolve("standard", {}, {"objectives": "metric,layers"}).search.objectives == ("metric", "layers")
    finally:
        unregister("layers")
