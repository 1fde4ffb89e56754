"""`dynabert run`: the end-to-end pipeline (see app/pipeline.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli_common import add_run_dir, add_task_args, task_kwargs
from app.cli_runtime import add_runtime_args

# Flags of `dynabert run` that are pipeline options (app/pipeline.py DEFAULTS); every other option is set in a
# --config file (examples/run.toml lists and explains all of them).
_OPTION_FLAGS = ("teacher", "max_length", "seed", "batch_size", "lr", "limit_train", "teacher_epochs",
                 "stage1_epochs", "stage2_epochs", "stage1_steps", "stage2_steps", "extra_subnets", "stage2_lr",
                 "stage2_hard_weight", "select_best", "augment", "mlm_checkpoint", "scenario", "n_trials", "n_workers", "device",
                 "precision", "storage", "study_name")


def register(sub) -> None:
    """Add `dynabert run`."""
    from app.workflow.pipeline import PRESETS
    from elastic.config import SELECT_SPLITS

    p = sub.add_parser(
        "run", help="the whole pipeline: teacher, rewiring, stage 1, stage 2, profiling, search, baselines, export",
        description="Runs teacher -> rewiring -> stage 1 -> stage 2 (+ grid evaluation) -> profiling -> search -> "
                    "baselines -> export of the knee point. Stages already complete are skipped; --resume "
                    "continues an interrupted one. Options: defaults < --preset < --config file < flags; "
                    "examples/run.toml lists every option. First prints the preset, the training examples, "
                    "the max length, the steps per stage and the expected time on this machine.")
    add_run_dir(p, "run directory, e.g. runs/demo")
    add_task_args(p, default_note="default bbc (embedded)")
    p.add_argument("--preset", default="standard", choices=tuple(PRESETS),
                   help="standard (real work, default), quick (the offline demo: minutes, 640 examples at "
                        "length 64), paper (the paper's hyper-parameters) or released (the released code's recipe)")
    p.add_argument("--config", type=Path, help="TOML or YAML file of pipeline options (see examples/run.toml)")
    p.add_argument("--teacher", help="pretrained HF BERT dir or hub id (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=int, help="tokens per example")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size of every training stage")
    p.add_argument("--lr", type=float, help="peak learning rate of every training stage (stage 2: --stage2-lr)")
    p.add_argument("--limit-train", type=int, help="train on the first N training examples only")
    p.add_argument("--teacher-epochs", type=float)
    p.add_argument("--stage1-epochs", type=float)
    p.add_argument("--stage2-epochs", type=float)
    p.add_argument("--stage1-steps", type=int, help="stage-1 optimizer steps (override --stage1-epochs)")
    p.add_argument("--stage2-steps", type=int, help="stage-2 optimizer steps (override --stage2-epochs)")
    p.add_argument("--extra-subnets", type=int, help="stage 2: also train K random per-layer sub-networks per step")
    p.add_argument("--stage2-lr", type=float, help="stage-2 peak learning rate (default: the preset's lr)")
    p.add_argument("--stage2-hard-weight", type=float,
                   help="stage 2's hard-label loss weight (standard: 1.0; default: hard_weight, 0)")
    p.add_argument("--select-best", choices=SELECT_SPLITS,
                   help="distillation stages end on their best-scoring weights (see train-stage1 --help)")
    p.add_argument("--augment", type=int, help="TinyBERT-style augmented copies per example (distillation stages)")
    p.add_argument("--mlm-checkpoint", help="masked-LM checkpoint dir used by --augment")
    p.add_argument("--scenario", help="latency scenario key, e.g. cpu-eager-t2-b1-s128")
    p.add_argument("--n-trials", type=int)
    p.add_argument("--n-workers", type=int, help="search worker processes on this machine")
    p.add_argument("--storage", help="search storage URL, e.g. postgresql://user:pw@host/db (see dynabert search)")
    p.add_argument("--study-name", help="search study name (default search-<scenario>)")
    p.add_argument("--only", help="comma-separated stages to run (teacher,rewire,stage1,stage2,profile,search,"
                                  "baselines,export)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage from its checkpoint")
    add_runtime_args(p, unset_is_none=True)  # unset: the preset's/config file's, else auto and fp32
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from app.estimate import plan_lines
    from app.workflow.pipeline import STAGES, load_config_file, resolve, run_pipeline
    cli = {**task_kwargs(args), **{k: getattr(args, k) for k in _OPTION_FLAGS}}
    opts = resolve(args.preset, load_config_file(args.config) if args.config else {}, cli)
    from elastic.device import Runtime
    Runtime(device=opts["device"], precision=opts["precision"]).check()  # before any stage: one clear line
    only = None
    if args.only:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in only if s not in STAGES]
        if bad:
            raise ValueError(f"--only: unknown stage(s) {bad}; stages are {', '.join(STAGES)}")
    for line in plan_lines(opts):
        print(line, flush=True)
    record = run_pipeline(args.run_dir, opts, resume=args.resume, only=only)
    print(f"\npipeline done in {record['total_seconds']:.0f} s; stages: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in record["stage_seconds"].items()))
    return 0
