"""Argument groups shared by several `dynabert` subcommands (one definition per idea, one name per flag)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TASK_HELP = ("task: a data dir/file (train/dev/test .tsv/.csv/.jsonl), glue/<task>, hf:<dataset id>[:<config>], "
             "a datasets.save_to_disk directory, or bbc (embedded default)")


def text_columns(text: str) -> tuple[str, ...]:
    """`--text-columns` value: one column, or two comma-separated columns of a sentence pair."""
    cols = tuple(c.strip() for c in text.split(",") if c.strip())
    if not 1 <= len(cols) <= 2:
        raise argparse.ArgumentTypeError(f"expected 1 column or 2 comma-separated columns, got '{text}'")
    return cols


def add_task_args(p: argparse.ArgumentParser, *, default_note: str = "default: the run's task") -> None:
    """`--task`, `--text-columns`, `--label-column` (None = the run's, recorded in run.json)."""
    p.add_argument("--task", help=f"{TASK_HELP}; {default_note}")
    p.add_argument("--text-columns", type=text_columns, metavar="COL[,COL2]",
                   help="text column, or two for sentence pairs (default: detected, or the run's)")
    p.add_argument("--label-column", metavar="COL", help="label column (default: detected, or the run's)")


def task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The task arguments of a parsed command line, as `StageOptions`/`resolve` keys."""
    return {"task": args.task, "text_columns": args.text_columns, "label_column": args.label_column}


def add_run_dir(p: argparse.ArgumentParser, help_: str = "run directory, e.g. runs/sst2") -> None:
    """`--run-dir`, required by every command that works on a run."""
    p.add_argument("--run-dir", required=True, type=Path, help=help_)
