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
from app.cli import main
from app.estimate import STEP_SECONDS, plan_lines, seconds_per_step, stage_steps
from app.workflow.pipeline import DEFAULTS, PRESETS, load_config_file, resolve, stage_plan
from elastic.weights import default_teacher_path, read_arch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run.toml"
OPTION_LINE = re.compile(r"^# ([a-z0-9_]+ = .*?)(\s+#.*)?$")


def test_example_config_loads_and_documents_every_option(tmp_path):
    assert resolve("standard", load_config_file(EXAMPLE), {}) == resolve("standard", {}, {})  # all commented out
    lines = [m.group(1) for m in map(OPTION_LINE.match, EXAMPLE.read_text().splitlines()) if m]
    (tmp_path / "all.toml").write_text("\n".join(lines) + "\n")
    every = load_config_file(tmp_path / "all.toml")
    assert set(every) == set(DEFAULTS)  # every pipeline option, no unknown one
    opts = resolve("standard", every, {})
    for key, default in DEFAULTS.items():
        if default is not None:  # documented defaults are the real ones
            assert every[key] == default, key
    assert opts["text_columns"] == ["review"]


def test_columns_reach_the_teacher_command(tmp_path):
    o = resolve("quick", {"text_columns": ["q", "a"]}, {"label_column": "y"})
    (step,) = stage_plan("teacher", tmp_path, o, resume=False)
    assert step.options.text_columns == ("q", "a") and step.options.label_column == "y"


def test_steps_and_estimate_follow_the_measured_table():
    o = resolve("quick", {}, {})
    steps = stage_steps(o, 640)
    assert steps == {"teacher": 60, "stage1": 20, "stage2": 40}  # 640 / 32 = 20 steps per epoch; stage 2: 2 epochs
    arch, _ = read_arch(default_teacher_path())
    assert math.isclose(seconds_per_step("stage2", arch, 64, 32), STEP_SECONDS["stage2"][64])
    assert seconds_per_step("teacher", arch, 128, 32) > 2 * seconds_per_step("teacher", arch, 64, 32)  # MACs
    assert math.isclose(seconds_per_step("stage1", arch, 64, 16), STEP_SECONDS["stage1"][64] / 2)


def test_step_table_is_the_committed_quick_pipeline_measurement():
    """STEP_SECONDS must be stage seconds / steps of results/pipeline_quick.json, re-typed after each re-run."""
    res = Path(__file__).resolve().parents[1] / "results" / "pipeline_quick.json"
    if not res.exists():
        pytest.skip("results/pipeline_quick.json is not in this checkout")
    data = json.loads(res.read_text())
    steps = stage_steps(resolve(data["preset"], {}, {}), data["recipe"]["limit_train"])
    for stage, table in STEP_SECONDS.items():
        assert table[64] == pytest.approx(data["stage_seconds"][stage] / steps[stage], rel=1e-3), stage


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
