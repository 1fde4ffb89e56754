"""`dynabert` training subcommands: train-teacher, rewire, train-stage1/2/3, evaluate."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal, Optional

from app.cli_common import add_run_dir, add_task_args, task_kwargs
from app.cli_runtime import add_runtime_args, runtime_from_args
from elastic.config import IMPORTANCE_SPLITS, SELECT_SPLITS, SubnetConfig
from elastic.options import (ADAM_EPS_MODES, BATCHINGS, IMPORTANCE_GRADS, IMPORTANCE_ORDERS, PADDINGS,
                             SUBNET_FORWARDS, TEACHER_WIDTHS)
from elastic.stage_options import stage_defaults

D = stage_defaults()  # every flag's default is StageOptions' own


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


StageName = Literal["teacher", "stage1", "stage2", "stage3"]
# The flags of each training subcommand beyond the shared ones: train-teacher lists none of stage 2's.
_DISTILL = ("teacher", "widths", "augment", "select")
STAGE_FLAGS: dict[str, tuple[str, ...]] = {
    "teacher": ("pretrained", "importance_split"),
    "stage1": _DISTILL,
    "stage2": (*_DISTILL, "depths", "stage2"),
    "stage3": ("widths", "depths", "select"),
}


def _base(p: argparse.ArgumentParser) -> None:
    """Flags of every command that loads the run's task and tokenizes it."""
    add_run_dir(p)
    add_task_args(p)
    p.add_argument("--max-length", type=int, help="tokens per example (default: the run's, else 128)")
    p.add_argument("--seed", type=int, help="seed (default: the run's, else 42)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_args(p)


def _importance_split(p: argparse.ArgumentParser) -> None:
    p.add_argument("--importance-split", choices=IMPORTANCE_SPLITS,
                   help="where importance is computed (default train-heldout: the last 10%% of train, "
                        "at most 1000 examples, excluded from all training; dev reproduces the paper)")


def _training(p: argparse.ArgumentParser, stage: StageName) -> None:
    """The flags of `train-<stage>`: the shared loop options plus the stage's own (STAGE_FLAGS)."""
    _base(p)
    p.add_argument("--epochs", type=float, help="epochs (default 3)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=D["batch_size"], help=f"global batch size (default {D['batch_size']})")
    p.add_argument("--lr", type=float, default=D["lr"], help=f"peak learning rate, linear decay (default {D['lr']:g})")
    p.add_argument("--warmup-steps", type=int, default=D["warmup_steps"],
                   help=f"linear warm-up steps (default {D['warmup_steps']})")
    p.add_argument("--save-every", type=int, default=D["save_every"],
                   help=f"checkpoint period in steps (default {D['save_every']})")
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage from its checkpoint")
    p.add_argument("--limit-train", type=int, help="train on the first N training examples only")
    flags = STAGE_FLAGS[stage]
    if "pretrained" in flags:
        p.add_argument("--teacher", help="pretrained HF BERT dir or hub id to fine-tune (default: embedded "
                                         "all-MiniLM-L6-v2)")
    if "importance_split" in flags:
        _importance_split(p)
    if "teacher" in flags:
        p.add_argument("--teacher", help="a distillation teacher checkpoint to use instead of the run's own")
    if "widths" in flags:
        p.add_argument("--widths", type=_floats, default=D["widths"], help="width multipliers trained")
    if "depths" in flags:
        p.add_argument("--depths", type=_floats, default=D["depths"], help="depth multipliers trained")
    if "stage2" in flags:
        p.add_argument("--extra-subnets", type=int, default=D["extra_subnets"],
                       help="also train the smallest grid sub-network and K random per-layer ones each step")
        p.add_argument("--teacher-width", choices=TEACHER_WIDTHS, default=D["teacher_width"],
                       help="teacher width: full (released code, default) or matched (paper)")
    if "augment" in flags:
        p.add_argument("--augment", type=int, default=D["augment"], help="TinyBERT-style augmented copies per example")
        p.add_argument("--mlm-checkpoint", help="masked-LM checkpoint dir for --augment")
    p.add_argument("--padding", choices=PADDINGS, default=D["padding"],
                   help="training batches padded to their longest example (default) or to --max-length, as "
                        "the released code (padded positions then count in the hidden-state MSE)")
    p.add_argument("--adam-eps", choices=ADAM_EPS_MODES, default=D["adam_eps"],
                   help="AdamW eps after the bias correction (torch, default) or before it (released code)")
    p.add_argument("--batching", choices=BATCHINGS, default=D["batching"],
                   help="random batches (the released code's) or length-grouped: batches of similar lengths drawn "
                        "from random windows of 50 batches, far fewer padding tokens (default random)")
    if "teacher" in flags:  # the distillation stages
        p.add_argument("--hidden-weight", type=float,
                       help="weight of the hidden-state MSE (default: 0.1 in stage 1, 1.0 in stage 2, as the "
                            "released code)")
        p.add_argument("--hard-weight", type=float, default=D["hard_weight"],
                       help="weight of a hard-label cross-entropy added to the distillation loss (default 0)")
        p.add_argument("--subnet-forward", choices=SUBNET_FORWARDS, default=D["subnet_forward"],
                       help="shared-prefix (default): the embedding output and each layer prefix once per group "
                            "of sub-networks with the same first layer (stage 2: the depths of one width; fewer "
                            "layer passes, and the sharing sub-networks share those layers' dropout masks); "
                            "separate: each sub-network on its own, as the released code")
    if "select" in flags:
        p.add_argument("--select-best", choices=SELECT_SPLITS, default=D["select_best"],
                       help="model selection: every --select-every steps (and at the end) score the sum of the "
                            "stage's grid sub-networks' metric on the held-out train slice or dev, and end the "
                            "stage on the best weights (the released code does this on dev); default off")
        p.add_argument("--select-every", type=int, default=D["select_every"],
                       help=f"steps between selection scores (default {D['select_every']})")


_OPTION_FLAGS = ("teacher", "epochs", "max_steps", "batch_size", "lr", "warmup_steps", "save_every", "resume",
                 "extra_subnets", "teacher_width", "widths", "depths", "augment", "mlm_checkpoint", "limit_train",
                 "select_best", "select_every", "importance_split", "max_length", "seed", "batching",
                 "hidden_weight", "hard_weight", "padding", "adam_eps", "subnet_forward", "importance_grads",
                 "importance_order", "importance_batch_size")


def _rewire_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--importance-grads", choices=IMPORTANCE_GRADS, default=D["importance_grads"],
                   help="score each batch's gradients (default) or their running sum (the released code never "
                        "zeroes gradients between importance batches)")
    p.add_argument("--importance-order", choices=IMPORTANCE_ORDERS, default=D["importance_order"],
                   help="importance batches sorted by length (default) or in file order (released code)")
    p.add_argument("--importance-batch-size", type=int, default=D["importance_batch_size"],
                   help="importance batch size (default 32; the released code uses 8)")


def _options(args: argparse.Namespace):
    """`StageOptions` from the flags this subcommand has (the others keep StageOptions' defaults)."""
    from elastic.stage_options import StageOptions
    kw: dict[str, Any] = {**task_kwargs(args), "progress": not args.no_progress,
                          "runtime": runtime_from_args(args)}
    kw.update({k: getattr(args, k) for k in _OPTION_FLAGS if hasattr(args, k)})
    if kw.get("augment") and not kw.get("mlm_checkpoint"):
        raise ValueError("--augment needs --mlm-checkpoint DIR (a masked-LM checkpoint, e.g. bert-base-uncased)")
    return StageOptions(**kw)


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
        p = sub.add_parser(name, help=help_, description=help_)
        _training(p, stage)
        p.set_defaults(func=_train(stage))
    p = sub.add_parser("rewire", help="importance of heads/neurons and reordering of the teacher")
    _base(p)
    _importance_split(p)
    _rewire_options(p)
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
