"""The CLI reference (docs/CLI.md), generated from the argparse parsers so it cannot drift.

Regenerate with `python -m app.cli.docs > docs/CLI.md`; tests/test_cli_docs.py fails when it is stale.
"""
from __future__ import annotations

import argparse
import os


def render() -> str:
    """Markdown with the `--help` text of `dynabert` and of every subcommand."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix the width so output is stable
    from app.cli.main import build_parser
    parser = build_parser()
    parser.prog = "dynabert"
    parts = ["# `dynabert` command reference", "",
             "Generated from the parsers by `python -m app.cli.docs > docs/CLI.md` (a test keeps it in sync).", "",
             "```text", parser.format_help().rstrip(), "```"]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        parts += ["", f"## `dynabert {name}`", "", "```text", p.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
