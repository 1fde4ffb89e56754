"""results/README.md is exactly what bench/results_index.py renders from the registry, the files and git."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bench.registry import BENCHES, ROOT
from bench.results_index import render

HAS_GIT = shutil.which("git") is not None and subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode == 0


@pytest.mark.skipif(not HAS_GIT, reason="the index states staleness, which needs the repository's history")
def test_results_index_in_sync():
    text = (ROOT / "results" / "README.md").read_text()
    assert text == render(), "results/README.md is stale: run `python -m bench.results_index > results/README.md`"


def test_index_names_every_result_file_and_bench():
    text = render()
    for p in (ROOT / "results").glob("*.json"):
        assert f"[{p.stem}.md]({p.stem}.md)" in text, p.name
    for b in BENCHES:
        assert f"| `{b.name}`" in text
