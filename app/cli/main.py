"""The `dynabert` command line: one subcommand per stage, user errors printed without a traceback."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

# Before torch is imported anywhere: with OpenMP's default busy-waiting, two processes sharing the cores
# (a search worker beside a training run, a latency measurement beside anything) slow each other
# several-fold. Passive waiting costs little alone and avoids that; users may override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# transformers imports torchao when it is installed; torchao then logs warnings about CUDA-only kernels
# and deprecated pytree registrations, and the ONNX exporter about torchvision ops we never use: none of
# it says anything about the user's run.
for _noisy in ("torchao", "torch.utils._pytree", "torch.onnx._internal.exporter._registration"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

# Each module defines `register(subparsers)`, adding its subcommands with `set_defaults(func=...)`.
COMMAND_MODULES = ("app.cli.train", "app.cli.profile", "app.cli.search", "app.cli.baselines", "app.cli.run",
                   "app.cli.dashboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynabert",
        description="DynaBERT Explorer: train a width- and depth-adaptive BERT, measure its sub-networks, "
                    "search the accuracy-vs-cost Pareto front, export the chosen ones.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; run the same command with --resume to continue",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
