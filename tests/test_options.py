"""Each shared default is defined once (elastic/training/options.py) and every option object and parser uses it."""
from __future__ import annotations

from typing import get_args

from app.cli.main import build_parser
from elastic.training.options import DEFAULT_LR, DEFAULT_SCENARIO, SAMPLERS, TEACHER_WIDTHS, TIMINGS, Sampler


def _defaults(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and command in a.choices)
    return {a.dest: a.default for a in sub.choices[command]._actions}


def test_one_learning_rate_and_scenario_everywhere():
    from app.workflow.baseline_options import BaselineOptions
    from app.workflow.pipeline import DEFAULTS
    from elastic.training.stage_options import StageOptions
    from elastic.training.loop import LoopConfig
    from search.options import SearchOptions
    assert StageOptions().lr == LoopConfig(total_steps=1).lr == BaselineOptions().lr == DEFAULTS["lr"] == DEFAULT_LR
    assert _defaults("train-stage1")["lr"] == _defaults("baselines")["lr"] == DEFAULT_LR
    assert BaselineOptions().scenarios == (DEFAULT_SCENARIO,) and DEFAULTS["scenario"] == DEFAULT_SCENARIO
    assert SearchOptions.__dataclass_fields__["scenario"].default == DEFAULT_SCENARIO
    # one default sampler for `dynabert search`, `dynabert run` and the library
    assert _defaults("search")["sampler"] == SearchOptions.sampler == DEFAULTS["sampler"] == "tpe"


def test_closed_choices_come_from_the_literals():
    assert SAMPLERS == get_args(Sampler) == ("nsga2", "tpe", "random")
    parser = build_parser()
    sub = next(a for a in parser._actions if getattr(a, "choices", None) and "search" in a.choices).choices
    choices = {(cmd, a.dest): tuple(a.choices) for cmd in ("search", "profile", "train-stage2")
               for a in sub[cmd]._actions if a.choices}
    assert choices[("search", "sampler")] == SAMPLERS
    assert choices[("profile", "timing")] == TIMINGS
    assert choices[("train-stage2", "teacher_width")] == TEACHER_WIDTHS
