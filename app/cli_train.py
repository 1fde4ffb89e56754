"""`dynabert` training subcommands: train-teacher, rewire, train-stage1/2/3, evaluate."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from elastic.config import SubnetConfig


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _common(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    p.add_argument("--run-dir", required=True, type=Path, help="run directory, e.g. runs/sst2")
    p.add_argument("--task", help="task spec (a data dir/file, glue/<task>, bbc); default: the run's task")
    p.add_argument("--max-length", type=int, help="tokens per example (default: the run's, else 128)")
    p.add_argument("--seed", type=int, help="seed (default: the run's, else 42)")
    p.add_argument("--importance-split", choices=("train-heldout", "dev"),
                   help="where importance is computed (default train-heldout: the last 10%% of train, "
                        "at most 1000 examples, excluded from all training; dev reproduces the paper)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if not training:
        return
    p.add_argument("--teacher", help="teacher-stage: pretrained HF BERT dir to fine-tune (default: embedded "
                                     "all-MiniLM-L6-v2); distillation stages: a distillation teacher to use "
                                     "instead of the run's own")
    p.add_argument("--epochs", type=float, help="epochs (default 3)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=32, help="global batch size (default 32)")
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate, linear decay (default 2e-5)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps (default 0)")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint period in steps (default 100)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage from its checkpoint")
    p.add_argument("--extra-subnets", type=int, default=0,
                   help="stage 2: add the smallest grid sub-network and K random per-layer ones each step")
    p.add_argument("--teacher-width", choices=("full", "matched"), default="full",
                   help="stage 2 teacher width: full (released code, default) or matched (paper)")
    p.add_argument("--widths", type=_floats, default=(1.0, 0.75, 0.5, 0.25), help="width multipliers trained")
    p.add_argument("--depths", type=_floats, default=(1.0, 0.75, 0.5), help="stage 2/3 depth multipliers trained")
    p.add_argument("--augment", type=int, default=0, help="augmented copies per example (distillation stages)")
    p.add_argument("--mlm-checkpoint", help="masked-LM checkpoint dir for --augment")
    p.add_argument("--limit-train", type=int, help="train on the first N training examples only")
    p.add_argument("--select-best", choices=("off", "heldout", "dev"), default="off",
                   help="model selection: every --select-every steps (and at the end) score the sum of the "
                        "stage's grid sub-networks' metric on the held-out train slice or dev, and end the "
                        "stage on the best weights (the released code does this on dev); default off")
    p.add_argument("--select-every", type=int, default=50, help="steps between selection scores (default 50)")
    p.add_argument("--padding", choices=("longest", "max_length"), default="longest",
                   help="training batches padded to their longest example (default) or to --max-length, as "
                        "the released code (padded positions then count in the hidden-state MSE)")
    p.add_argument("--adam-eps", choices=("torch", "released"), default="torch",
                   help="AdamW eps after the bias correction (torch, default) or before it (released code)")


def _rewire_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--importance-grads", choices=("per-batch", "cumulative"), default="per-batch",
                   help="score each batch's gradients (default) or their running sum (the released code never "
                        "zeroes gradients between importance batches)")
    p.add_argument("--importance-order", choices=("by-length", "file"), default="by-length",
                   help="importance batches sorted by length (default) or in file order (released code)")
    p.add_argument("--importance-batch-size", type=int, default=32,
                   help="importance batch size (default 32; the released code uses 8)")


def _options(args: argparse.Namespace):
    from elastic.stages import StageOptions
    kw: dict[str, Any] = dict(task=args.task, max_length=args.max_length, seed=args.seed,
                              importance_split=args.importance_split, progress=not args.no_progress)
    if hasattr(args, "epochs"):
        kw.update(teacher=args.teacher, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                  lr=args.lr, warmup_steps=args.warmup_steps, save_every=args.save_every, resume=args.resume,
                  extra_subnets=args.extra_subnets, teacher_width=args.teacher_width, widths=args.widths,
                  depths=args.depths, augment=args.augment, mlm_checkpoint=args.mlm_checkpoint,
                  limit_train=args.limit_train, select_best=args.select_best, select_every=args.select_every,
                  padding=args.padding, adam_eps=args.adam_eps)
        if args.augment and not args.mlm_checkpoint:
            raise ValueError("--augment needs --mlm-checkpoint DIR (a masked-LM checkpoint, e.g. bert-base-uncased)")
    if hasattr(args, "importance_grads"):
        kw.update(importance_grads=args.importance_grads, importance_order=args.importance_order,
                  importance_batch_size=args.importance_batch_size)
    return StageOptions(**kw)


def cost_fn_for(run_dir: Path, max_length: int):
    """MACs/params from `profiling.flops` when it is installed, else None (grid.csv gets params only).

    Args:
        run_dir: the run directory (its checkpoints give the architecture, run.json the label count).
        max_length: sequence length the MACs are counted at.

    Returns:
        cfg -> {"macs": int (multiply-accumulates), "params": int}, or None.
    """
    try:
        from profiling.flops import analytic_macs, param_count
    except ImportError:
        return None
    from elastic.config import BertArch
    from elastic.stages import read_run

    arch_holder: dict[str, Any] = {}

    def cost(cfg: SubnetConfig) -> dict[str, Any]:
        # The architecture is read lazily: the teacher checkpoint exists only once its stage has run.
        if "arch" not in arch_holder:
            arch_holder["num_labels"] = int(read_run(run_dir).get("task", {}).get("num_labels", 2))
            for d in ("teacher", "rewired"):
                f = run_dir / d / "elastic_config.json"
                if f.exists():
                    arch_holder["arch"] = BertArch.from_dict(json.loads(f.read_text())["arch"])
                    break
        arch, num_labels = arch_holder["arch"], arch_holder["num_labels"]
        return {"macs": int(analytic_macs(arch, cfg, max_length, num_labels=num_labels)),
                "params": int(param_count(arch, cfg, num_labels))}
    return cost


def _train(stage_name: str):
    def run(args: argparse.Namespace) -> int:
        from elastic.stages import read_run, run_stage
        from elastic.train import Stage
        stage = Stage(stage_name)
        opts = _options(args)
        max_length = opts.max_length or int(read_run(args.run_dir).get("max_length", 128))
        info = run_stage(args.run_dir, stage, opts, cost_fn=cost_fn_for(args.run_dir, max_length))
        if info.get("skipped"):
            print(f"{stage.value} already finished in {args.run_dir} ({info.get('steps')} steps); nothing to do")
        else:
            print(f"{stage.value} done: {info['steps']} steps in {info['seconds']:.0f} s -> {args.run_dir / stage.value}")
        return 0
    return run


def _rewire(args: argparse.Namespace) -> int:
    from elastic.stages import run_rewire
    info = run_rewire(args.run_dir, _options(args))
    if info.get("skipped"):
        print(f"{args.run_dir} is already rewired (importance on {info['split']}); nothing to do")
    else:
        print(f"rewired on {info['n_examples']} {info['split']} examples in {info['seconds']:.0f} s; "
              f"full-model logits changed by at most {info['max_abs_logit_change']:.1e}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from elastic.stages import evaluate_run, read_run
    cfg: Optional[SubnetConfig] = None
    if args.config:
        text = Path(args.config).read_text() if Path(args.config).is_file() else args.config
        cfg = SubnetConfig.from_json(text)
    elif args.width is not None or args.depth is not None:
        from elastic.weights import load_checkpoint
        model, _ = load_checkpoint(args.run_dir / args.stage)
        cfg = SubnetConfig.uniform(model.arch, args.width or 1.0, args.depth or 1.0)
    res = evaluate_run(args.run_dir, args.stage, cfg, tuple(args.splits.split(",")), task=args.task)
    out = {"stage": args.stage, "config": None if cfg is None else cfg.to_dict(),
           "metric": read_run(args.run_dir).get("metric"), "results_pct": res}
    print(json.dumps(out, indent=2))
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the `dynabert` parser."""
    specs = [("train-teacher", "teacher", "fine-tune the teacher on the task with hard labels"),
             ("train-stage1", "stage1", "DynaBERT_W: width-adaptive distillation from the rewired teacher"),
             ("train-stage2", "stage2", "DynaBERT: width- and depth-adaptive distillation from DynaBERT_W"),
             ("train-stage3", "stage3", "optional hard-label fine-tuning of all grid sub-networks")]
    for name, stage, help_ in specs:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p)
        p.set_defaults(func=_train(stage))
    p = sub.add_parser("rewire", help="importance of heads/neurons and reordering of the teacher")
    _common(p, training=False)
    _rewire_options(p)
    p.set_defaults(func=_rewire)
    p = sub.add_parser("evaluate", help="dev/test metrics of any sub-network of a stage")
    _common(p, training=False)
    p.add_argument("--stage", default="stage2", help="stage checkpoint folder (teacher, rewired, stage1..3)")
    p.add_argument("--config", help="SubnetConfig JSON (text or file); default: full or --width/--depth")
    p.add_argument("--width", type=float, help="uniform width multiplier")
    p.add_argument("--depth", type=float, help="uniform depth multiplier")
    p.add_argument("--splits", default="dev,test", help="comma-separated splits (default dev,test)")
    p.set_defaults(func=_evaluate)
