"""results/README.md is exactly what bench/results_index.py renders from the registry, the files and git."""
from __future__ import annotations


import pytest

from bench.freshness import has_history
from bench.registry import BENCHES, ROOT
from bench.results_index import render

HAS_GIT = has_history(ROOT)  # False in a copied tree or a shallow clone: the recorded commits are not there


@pytest.mark.skipif(not HAS_GIT, reason="the index states staleness, which needs git and the whole history (not a shallow clone)")
def test_results_index_in_sync():
    text = (ROOT / "results" / "README.md").read_text()
    assert text == render(), "results/README.md is stale: run `python -m bench.results_index > results/README.md`"


def test_index_names_every_result_file_and_bench():
    text = render()
    for p in (ROOT / "results").glob("*.json"):
        assert f"[{p.stem}.md]({p.stem}.md)" in text, p.name
    for b in BENCHES:
        assert f"| `{b.name}`" in text
