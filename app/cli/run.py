"""`dynabert run`: the end-to-end pipeline (app/workflow/pipeline.py), its flags generated from the run's
configuration (app/config): one flag per option, grouped by section, each also a --config file key."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import add_run_dir


def _note(spec) -> str:
    """After an option's help: its default and the presets that change it."""
    from app.config import PRESETS
    from app.config.flags import shown
    presets = [f"{name} {shown(o[spec.name])}" for name, o in PRESETS.items()
               if spec.name in o and o[spec.name] != spec.default]
    return "; ".join([f"default {shown(spec.default)}", *presets])


def register(sub) -> None:
    """Add `dynabert run`."""
    from app.config.flags import add_options
    from app.config.presets import PRESETS
    from app.config.run_config import DEFAULT_PRESET, SECTIONS, STAGES
    from elastic.training.option_fields import specs

    p = sub.add_parser(
        "run", help="the whole pipeline: teacher, rewiring, stage 1, stage 2, profiling, search, baselines, export",
        description="Runs teacher -> rewiring -> stage 1 -> stage 2 (+ grid evaluation) -> profiling -> search -> "
                    "baselines -> export of the knee point. Stages already complete are skipped; --resume "
                    "continues an interrupted one. Options: defaults < --preset < --config file < flags; each "
                    "option below is also a config-file key (examples/run.toml). Everything is checked (options, "
                    "data, teacher, scenario) before the run directory is created. Then prints the preset, the "
                    "training examples, the max length, the steps per stage and the expected time on this machine.")
    add_run_dir(p, "run directory, e.g. runs/demo")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=tuple(PRESETS),
                   help="standard (real work, default), quick (the offline demo: minutes, 640 examples at "
                        "length 64), paper (the paper's hyper-parameters) or released (the released code's recipe)")
    p.add_argument("--config", type=Path, help="TOML or YAML file of options (see examples/run.toml)")
    p.add_argument("--only", help=f"comma-separated stages to run ({','.join(STAGES)})")
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage from its checkpoint")
    add_options(p, [((cls.__doc__ or name).strip(), specs(cls)) for name, cls in SECTIONS.items()],
                unset_is_none=True, note=_note)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from app.config import SPECS, load_config_file, parse_only, resolve
    from app.workflow.checks import check_run
    from app.workflow.estimate import plan_lines
    from app.workflow.pipeline import run_pipeline

    cfg = resolve(args.preset, load_config_file(args.config) if args.config else {},
                  {name: getattr(args, name) for name in SPECS})
    only = parse_only(args.only)
    check_run(args.run_dir, cfg, only)  # everything a user can get wrong, before anything is written
    for line in plan_lines(cfg):
        print(line, flush=True)
    record = run_pipeline(args.run_dir, cfg, resume=args.resume, only=only)
    print(f"\npipeline done in {record['total_seconds']:.0f} s; stages: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in record["stage_seconds"].items()))
    return 0
