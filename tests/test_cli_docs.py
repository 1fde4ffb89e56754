"""docs/CLI.md is exactly what the parsers print, and every subcommand's --help works."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import build_parser, main
from app.cli.docs import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "CLI.md"


def test_cli_reference_in_sync():
    assert DOC.read_text() == render(), "docs/CLI.md is stale: run `python -m app.cli.docs > docs/CLI.md`"


def test_help_lists_every_stage_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train-teacher", "rewire", "train-stage1", "train-stage2", "evaluate", "profile", "search",
                "export", "baselines", "run"):
        assert cmd in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: dynabert" in capsys.readouterr().out


def test_cli_parser_does_not_import_torch():
    """`dynabert --help` builds every subcommand's parser; none of them may pull in torch (start-up time)."""
    import subprocess
    import sys
    code = "import sys; from app.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
