"""`dynabert` training subcommands: train-teacher, rewire, train-stage1/2/3, evaluate."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Literal, Optional

from app.cli.common import add_run_dir, add_task_args, task_kwargs
from app.cli.runtime import add_runtime_args, runtime_from_args
from elastic.model.config import SubnetConfig

StageName = Literal["teacher", "stage1", "stage2", "stage3", "rewire"]


def _stage_command(p: argparse.ArgumentParser, stage: StageName) -> None:
    """The flags of `train-<stage>` (or `rewire`), generated from the `StageOptions` fields of that stage. Their
    defaults are the stage's options under `dynabert run`'s default preset (app/config `command_defaults`), so a
    single-stage command trains the recipe the pipeline trains."""
    from dataclasses import asdict

    from app.config import command_defaults
    from app.config.flags import add_options
    from elastic.training.option_fields import specs
    from elastic.training.stage_options import StageOptions

    add_run_dir(p)
    defaults = asdict(command_defaults(stage))
    add_options(p, [("", [s for s in specs(StageOptions) if stage in s.stages])], defaults=defaults, stage=stage)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_args(p)
    p.set_defaults(options_of=stage)


def _options(args: argparse.Namespace):
    """`StageOptions` from the flags this subcommand has (the others keep the stage's defaults)."""
    from dataclasses import replace

    from app.config import command_defaults
    from elastic.training.option_fields import specs
    from elastic.training.stage_options import StageOptions
    given = {s.name: getattr(args, s.name) for s in specs(StageOptions) if hasattr(args, s.name)}
    return replace(command_defaults(args.options_of), **given, progress=not args.no_progress,
                   runtime=runtime_from_args(args))


def _train(stage_name: str):
    def run(args: argparse.Namespace) -> int:
        from app.workflow.train import train_stage
        for line in train_stage(args.run_dir, stage_name, _options(args)).lines():
            print(line)
        return 0
    return run


def _rewire(args: argparse.Namespace) -> int:
    from app.workflow.train import rewire
    for line in rewire(args.run_dir, _options(args)).lines():
        print(line)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from app.workflow.train import evaluate
    cfg: Optional[SubnetConfig] = None
    if args.subnet:
        text = Path(args.subnet).read_text() if Path(args.subnet).is_file() else args.subnet
        cfg = SubnetConfig.from_json(text)
    res = evaluate(args.run_dir, args.stage, cfg, width=args.width, depth=args.depth,
                   splits=tuple(args.splits.split(",")), **task_kwargs(args), runtime=runtime_from_args(args))
    print(json.dumps(res.to_dict(), indent=2))
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the `dynabert` parser."""
    specs = [("train-teacher", "teacher", "fine-tune the teacher on the task with hard labels"),
             ("train-stage1", "stage1", "DynaBERT_W: width-adaptive distillation from the rewired teacher"),
             ("train-stage2", "stage2", "DynaBERT: width- and depth-adaptive distillation from DynaBERT_W"),
             ("train-stage3", "stage3", "optional hard-label fine-tuning of all grid sub-networks")]
    for name, stage, help_ in specs:
        p = sub.add_parser(name, help=help_, description=help_ + "; defaults: the stage's recipe under `dynabert "
                           "run --preset standard`")
        _stage_command(p, stage)
        p.set_defaults(func=_train(stage))
    p = sub.add_parser("rewire", help="importance of heads/neurons and reordering of the teacher")
    _stage_command(p, "rewire")
    p.set_defaults(func=_rewire)
    p = sub.add_parser("evaluate", help="dev/test metrics of any sub-network of a stage")
    add_run_dir(p)
    add_task_args(p)
    p.add_argument("--stage", default="stage2", help="stage checkpoint folder (teacher, rewired, stage1..3)")
    p.add_argument("--subnet", help="SubnetConfig JSON (text or file); default: full or --width/--depth")
    p.add_argument("--width", type=float, help="uniform width multiplier")
    p.add_argument("--depth", type=float, help="uniform depth multiplier")
    p.add_argument("--splits", default="dev,test", help="comma-separated splits (default dev,test)")
    add_runtime_args(p)
    p.set_defaults(func=_evaluate)
