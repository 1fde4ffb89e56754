"""`dynabert run`: the end-to-end pipeline (see app/pipeline.py)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    """Add `dynabert run`."""
    p = sub.add_parser(
        "run", help="the whole pipeline: teacher, rewiring, stage 1, stage 2, profiling, search, baselines, export",
        description="Runs teacher -> rewiring -> stage 1 -> stage 2 (+ grid evaluation) -> profiling -> search -> "
                    "baselines -> export of the knee point. Stages already complete are skipped; --resume "
                    "continues an interrupted one. Options: defaults < --preset < --config file < flags.")
    p.add_argument("--run-dir", required=True, type=Path, help="run directory, e.g. runs/demo")
    p.add_argument("--task", help="task spec: a data dir/file, glue/<task>, or bbc (embedded default)")
    p.add_argument("--preset", default="quick",
                   help="quick (demo, minutes), standard, paper, or released (the released code's recipe; default quick)")
    p.add_argument("--config", type=Path, help="TOML or YAML file holding any of the options below")
    p.add_argument("--teacher", help="pretrained HF BERT dir or hub id (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--teacher-epochs", type=float)
    p.add_argument("--stage1-epochs", type=float)
    p.add_argument("--stage2-epochs", type=float)
    p.add_argument("--stage1-steps", type=int, help="stage-1 optimizer steps (override --stage1-epochs)")
    p.add_argument("--stage2-steps", type=int, help="stage-2 optimizer steps (override --stage2-epochs)")
    p.add_argument("--limit-train", type=int, help="train on the first N training examples only")
    p.add_argument("--extra-subnets", type=int)
    p.add_argument("--stage2-lr", type=float, help="stage-2 peak learning rate (default: the preset's lr)")
    p.add_argument("--select-best", choices=("off", "heldout", "dev"),
                   help="distillation stages end on their best-scoring weights (see train-stage1 --help)")
    p.add_argument("--augment", type=int, help="TinyBERT-style augmented copies per example (distillation stages)")
    p.add_argument("--mlm-checkpoint", help="masked-LM checkpoint dir used by --augment")
    p.add_argument("--scenario", help="latency scenario key, e.g. cpu-eager-t2-b1-s128")
    p.add_argument("--n-trials", type=int)
    p.add_argument("--n-workers", type=int)
    p.add_argument("--only", help="comma-separated stages to run (teacher,rewire,stage1,stage2,profile,search,"
                                  "baselines,export)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage from its checkpoint")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from app.pipeline import STAGES, load_config_file, resolve, run_pipeline
    cli = {k: getattr(args, k) for k in ("task", "teacher", "max_length", "seed", "teacher_epochs",
                                         "stage1_epochs", "stage2_epochs", "stage1_steps", "stage2_steps",
                                         "limit_train", "extra_subnets", "stage2_lr", "select_best",
                                         "augment", "mlm_checkpoint", "scenario", "n_trials", "n_workers")}
    opts = resolve(args.preset, load_config_file(args.config) if args.config else {}, cli)
    only = None
    if args.only:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in only if s not in STAGES]
        if bad:
            raise ValueError(f"--only: unknown stage(s) {bad}; stages are {', '.join(STAGES)}")
    record = run_pipeline(args.run_dir, opts, resume=args.resume, only=only)
    print(f"\npipeline done in {record['total_seconds']:.0f} s; stages: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in record["stage_seconds"].items()))
    return 0
