"""The command line's promises: every flag an error message names exists on the command that prints it,
each subcommand lists only its own flags, one name per idea, and the dashboard names real commands."""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from app.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# "dynabert <command> <its flags>" inside a message: those flags must be that command's.
PHRASE = re.compile(r"dynabert ([a-z][a-z0-9-]*)([^`;.]*)")
TRAIN = ("train-teacher", "train-stage1", "train-stage2", "train-stage3")
WITH_TASK = (*TRAIN, "rewire", "evaluate", "run")
# Which commands print the messages of a module (a flag must be on one of them); data errors name the column
# flags, which must be on every command that takes --task.
COMMANDS_OF: dict[str, tuple[str, ...]] = {
    "app/cli/train.py": (*TRAIN, "rewire", "evaluate"), "elastic/training/stages.py": (*TRAIN, "rewire", "evaluate"),
    "elastic/data/augment.py": ("train-stage1", "train-stage2", "run"), "app/cli/profile.py": ("profile",),
    "app/cli/search.py": ("search", "export"), "elastic/export/writer.py": ("export",), "search/study.py": ("search",),
    "search/options.py": ("search",), "search/objective.py": ("search",),
    "search/evaluator.py": ("search", "export"), "search/pareto.py": ("search", "export"),
    "app/workflow/baselines.py": ("baselines",), "app/workflow/baseline_options.py": ("baselines",),
    "app/cli/baselines.py": ("baselines",),
    "app/workflow/train.py": (*TRAIN, "rewire", "evaluate"), "app/workflow/profile.py": ("profile",),
    "app/workflow/search.py": ("search", "export"), "app/workflow/export.py": ("export",),
    "app/workflow/pipeline.py": ("run",), "app/cli/run.py": ("run",), "app/cli/dashboard.py": ("dashboard",),
    "app/dashboard/pages/common.py": ("dashboard",), "profiling/scenario.py": ("profile", "search", "baselines"),
}
STRICT_ALL = {"elastic/data/tasks.py": WITH_TASK}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(p: argparse.ArgumentParser) -> set[str]:
    return {o for a in p._actions for o in a.option_strings if o.startswith("--")}


def _messages() -> list[tuple[str, int, str]]:
    """(module, line, text) of every raised error and printed/logged message that names a flag."""
    out = []
    for f in sorted(ROOT.glob("*/**/*.py")):
        rel = f.relative_to(ROOT).as_posix()
        if rel.split("/")[0] not in ("app", "elastic", "search", "profiling"):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            target = None
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc
            elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "print", "warning", "error", "info"):
                target = node
            if target is not None:
                text = " ".join(n.value for n in ast.walk(target) if isinstance(n, ast.Constant)
                                and isinstance(n.value, str))
                if FLAG.search(text):
                    out.append((rel, node.lineno, text))
    return out


def test_the_walk_finds_the_messages():
    found = {m for m, _, _ in _messages()}
    assert {"elastic/data/tasks.py", "elastic/training/stages.py", "app/workflow/export.py", "search/pareto.py"} <= found


def test_every_flag_an_error_names_exists_where_it_is_printed():
    subs = _subparsers()
    all_flags = set().union(*map(_flags, subs.values()))
    bad = []
    for module, line, text in _messages():
        rest = text
        for cmd, tail in PHRASE.findall(text):
            for flag in FLAG.findall(tail):
                if cmd in subs and flag not in _flags(subs[cmd]):
                    bad.append(f"{module}:{line}: `dynabert {cmd}` has no {flag}")
            rest = rest.replace(tail, " ")
        for flag in FLAG.findall(rest):
            if module in STRICT_ALL:
                bad += [f"{module}:{line}: {c} has no {flag}" for c in STRICT_ALL[module] if flag not in _flags(subs[c])]
            elif module in COMMANDS_OF:
                if not any(flag in _flags(subs[c]) for c in COMMANDS_OF[module]):
                    bad.append(f"{module}:{line}: none of {COMMANDS_OF[module]} has {flag}")
            elif flag not in all_flags:
                bad.append(f"{module}:{line}: no command has {flag}")
    assert not bad, "\n".join(bad)


def test_column_flags_on_every_command_with_task():
    for name, p in _subparsers().items():
        if "--task" in _flags(p):
            assert {"--text-columns", "--label-column"} <= _flags(p), name
    assert {name for name, p in _subparsers().items() if "--task" in _flags(p)} == set(WITH_TASK)


def test_each_training_command_lists_only_its_own_flags():
    subs = _subparsers()
    teacher = _flags(subs["train-teacher"])
    assert not teacher & {"--teacher-width", "--extra-subnets", "--depths", "--widths", "--augment",
                          "--mlm-checkpoint", "--select-best"}
    assert not _flags(subs["train-stage1"]) & {"--teacher-width", "--extra-subnets", "--depths", "--importance-split"}
    assert {"--teacher-width", "--extra-subnets", "--depths", "--widths"} <= _flags(subs["train-stage2"])
    assert not _flags(subs["train-stage3"]) & {"--teacher", "--augment", "--teacher-width", "--extra-subnets"}
    assert not _flags(subs["evaluate"]) & {"--importance-split", "--max-length", "--seed"}  # evaluate ignores them


def test_one_flag_name_per_idea():
    subs = _subparsers()
    assert [n for n, p in subs.items() if "--config" in _flags(p)] == ["run"]  # a TOML/YAML options file
    assert {"--subnet"} <= _flags(subs["evaluate"]) & _flags(subs["export"])  # a SubnetConfig JSON
    for name, p in subs.items():
        assert not _flags(p) & {"--batch", "--seq-len", "--seq-length", "--max-len"}, name
    for name in ("profile", "baselines", "run", *TRAIN):
        assert "--batch-size" in _flags(subs[name]), name
    for name in ("profile", "run", *TRAIN, "rewire"):
        assert "--max-length" in _flags(subs[name]), name


def test_preset_has_choices_and_real_work_is_the_default():
    p = _subparsers()["run"]
    preset = next(a for a in p._actions if "--preset" in a.option_strings)
    assert set(preset.choices) == {"quick", "standard", "paper", "released"} and preset.default == "standard"
    with pytest.raises(SystemExit):
        p.parse_args(["--run-dir", "r", "--preset", "fast"])
    assert "--preset quick" in (ROOT / "Makefile").read_text()  # the demo asks for the demo preset itself


def test_dashboard_and_artifact_hints_name_real_commands():
    subs = set(_subparsers())
    named = []
    for f in sorted((ROOT / "app").rglob("*.py")):
        for m in re.finditer(r"dynabert ([a-z][a-z0-9-]*)", f.read_text()):
            named.append((f.relative_to(ROOT).as_posix(), m.group(1)))
    assert len(named) > 10
    bad = [f"{f}: dynabert {w}" for f, w in named if w not in subs]
    assert not bad, bad
    from app.dashboard.artifacts import STAGE_COMMANDS

    assert set(STAGE_COMMANDS.values()) <= subs


def _generated_commands():
    """(command, options class, its module's head (docstring and leading comments), the explicit flags it names)."""
    import app.cli.baselines
    import app.cli.profile
    import app.cli.search
    from app.workflow.baseline_options import BaselineOptions
    from app.workflow.export import ExportOptions
    from app.workflow.profile import ProfileOptions
    from search.options import SearchOptions

    def head(module) -> str:
        return Path(module.__file__).read_text().split("from __future__")[0]
    runtime = {"--device", "--precision"}
    variants = {"--target", "--precisions", "--runtimes"}
    return [("search", SearchOptions, head(app.cli.search), {*variants, "--no-finalize", *runtime}),
            ("export", ExportOptions, head(app.cli.search), runtime),
            ("profile", ProfileOptions, head(app.cli.profile), {"--scenario", *variants, *runtime}),
            ("baselines", BaselineOptions, head(app.cli.baselines), {"--run-dir", "--dynabert-points", *runtime})]


def test_generated_commands_have_exactly_their_options_fields_plus_the_documented_explicit_flags():
    from app.config.flags import flag_fields

    subs = _subparsers()
    for command, cls, head, explicit in _generated_commands():
        actions = [a for a in subs[command]._actions if a.option_strings and a.dest != "help"]
        assert explicit <= _flags(subs[command]), command
        assert all(f"`{flag}" in head for flag in explicit), command  # the module says which flags are explicit
        generated = [a for a in actions if not set(a.option_strings) & explicit]
        assert sorted(a.dest for a in generated) == sorted(s.name for s, _ in flag_fields(cls)), command
    assert {"--latency-budget", "--metric-floor", "--max-params", "--measure", "--no-progress"} <= _flags(subs["search"])
    assert {"--subnet", "--no-onnx", "--no-measure", "--trial", "--pareto", "--knee"} <= _flags(subs["export"])
    assert {"--min-run-time", "--no-progress", "--scenario"} <= _flags(subs["profile"])
    assert {"--recipe", "--scenario", "--int8-runtime", "--min-run-time", "--alpha-soft", "--no-progress"} <= _flags(
        subs["baselines"])


def test_parsed_flags_build_the_options_objects(tmp_path):
    from app.config.flags import options_from_args
    from app.workflow.export import ExportOptions
    from app.workflow.profile import ProfileOptions
    from elastic.training.options import DEFAULT_SCENARIO
    from search.options import SearchOptions

    parse = build_parser().parse_args
    opts = options_from_args(SearchOptions, parse(["search", "--run-dir", str(tmp_path), "--latency-budget", "5",
                                                   "--objectives", "metric,macs", "--no-progress", "--measure"]),
                             scenario=DEFAULT_SCENARIO)
    assert (opts.latency_budget_ms, opts.objectives, opts.progress, opts.measure, opts.n_trials) == (
        5.0, ("metric", "macs"), False, True, 100)
    opts = options_from_args(ExportOptions, parse(["export", "--run-dir", str(tmp_path), "--subnet", "c.json",
                                                   "--no-onnx"]))
    assert (opts.subnet_file, opts.onnx, opts.measure, opts.trial) == (Path("c.json"), False, True, None)
    opts = options_from_args(ProfileOptions, parse(["profile", "--run-dir", str(tmp_path), "--min-run-time", "0.1",
                                                    "--device", "cpu", "--scenario", "cpu-eager-t1-b1-s16"]),
                             scenarios=())
    assert (opts.min_run_time_s, opts.device, opts.progress, opts.threads) == (0.1, "cpu", True, 2)
    from app.workflow.baseline_options import BaselineOptions
    from elastic.training.baselines import Recipe
    from elastic.training.options import Int8Runtime, TinyBudget

    args = parse(["baselines", "--run-dir", str(tmp_path), "--recipe", "distilbert", "tinybert", "--scenario", "a-key",
                  "b-key,c-key", "--layers", "0,2", "--tinybert-budget", "split", "--alpha-soft", "4", "--no-progress"])
    opts = options_from_args(BaselineOptions, args)
    assert (opts.recipes, opts.scenarios, opts.layers, opts.tinybert_budget, opts.progress) == (
        (Recipe.DISTILBERT, Recipe.TINYBERT), ("a-key", "b-key", "c-key"), (0, 2), TinyBudget.SPLIT, False)
    assert (opts.distil.soft, opts.distil.temperature, opts.int8_runtimes) == (4.0, 2.0, tuple(Int8Runtime))
    args = parse(["baselines", "--run-dir", str(tmp_path), "--recipe", "all", "--dynabert-points", "0.5:0.5"])
    opts = options_from_args(BaselineOptions, args)
    assert opts.recipes == tuple(Recipe) and opts.dynabert_points == ((0.5, 0.5),)


@pytest.mark.parametrize("argv, message", [
    (["search", "--n-trials", "0"], "argument --n-trials: must be >= 1, got 0"),
    (["search", "--latency-budget", "-1"], "argument --latency-budget: must be > 0, got -1"),
    (["search", "--objectives", "metric,flops"], "argument --objectives: must be a comma-separated list of one of "),
    (["profile", "--threads", "0"], "argument --threads: must be >= 1, got 0"),
    (["profile", "--n-heldout", "1"], "argument --n-heldout: must be >= 2, got 1"),
    (["export", "--knee", "--trial", "x"], "argument --trial: must be an integer, got 'x'"),
    (["baselines", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["baselines", "--recipe", "distilbert", "bert"], "argument --recipe: must be a comma-separated list of one of "),
])
def test_a_bad_value_is_argparse_one_line_error(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([argv[0], "--run-dir", "r", *argv[1:]])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"dynabert {argv[0]}: error: {message}")
