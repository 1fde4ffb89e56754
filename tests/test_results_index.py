"""results/README.md and docs/RESULTS.md are what bench/results_index.py renders from the registry and the result
files, up to the status spans (fresh/stale as of their generation; bench/results_index.py says why), and a
stale result is marked on both pages."""
from __future__ import annotations

import json
import shutil

import pytest

from bench.registry import BENCHES, ROOT, Bench
from bench.results_doc import RENDERERS, figures
from bench.results_index import CLOSE, COMMAND, DOC, INDEX, OPEN, render, render_doc, strip_status
from tests.helpers_git import commit as _commit, git as _git

STALE_HINT = f"run `{COMMAND}` (rewrites results/README.md and docs/RESULTS.md)"


def test_results_index_in_sync():
    """Every file, figure, commit and bench as rendered now; the status cells may date from the generation."""
    assert strip_status(INDEX.read_text()) == strip_status(render()), f"results/README.md is out of date: {STALE_HINT}"


def test_results_doc_in_sync():
    assert strip_status(DOC.read_text()) == strip_status(render_doc()), f"docs/RESULTS.md is out of date: {STALE_HINT}"


def test_index_names_every_result_file_bench_and_the_figures_page():
    text = render()
    assert "[docs/RESULTS.md](../docs/RESULTS.md)" in text
    for p in (ROOT / "results").glob("*.json"):
        assert f"[{p.stem}.md]({p.stem}.md)" in text, p.name
    for b in BENCHES:
        assert f"| `{b.name}`" in text


def test_figures_page_has_a_section_per_result_with_its_commit():
    doc = render_doc()
    for p in (ROOT / "results").glob("*.json"):
        data = json.loads(p.read_text())
        head = f"## {p.stem}\n\n[{p.stem}.md](../results/{p.stem}.md)"
        assert head in doc, p.name
        section = doc.split(head, 1)[1].split("\n## ", 1)[0]
        assert f"measured at commit `{data['commit'][:7]}`" in section, p.name
        assert "figures not found where expected" not in section, f"{p.stem}: its renderer misses keys of the file"
    assert set(RENDERERS) >= {s for b in BENCHES for s in b.outputs}, "a registered result without a renderer"


def test_a_renderer_missing_its_keys_shows_the_scalar_fields():
    lines = figures("search", {"hv": 1.5, "sampler": "tpe", "nested": {"x": 1}, "commit": "abc"})
    assert lines[0].startswith("(figures not found where expected: KeyError")
    assert "- `hv`: 1.500" in lines and "- `sampler`: tpe" in lines
    assert not any("nested" in x or "commit" in x for x in lines)  # nested and stamped fields left out
    assert figures("unknown_stem", {"n": 3}) == ["- `n`: 3"]




@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_stale_result_is_marked_on_both_pages_without_breaking_the_sync(tmp_path):
    """A commit to a source stales the result: both pages mark it (with the file that changed), and the pages
    generated before that commit still pass the sync check (only their status spans differ)."""
    repo, results = tmp_path, tmp_path / "results"
    bench = Bench(name="b", script="bench/b.py", outputs=("b",), sources=("src/",), command=(("x",),),
                  quick_skip="-", measures="what b measures")
    _git(repo, "init", "-q")
    _commit(repo, "bench/b.py", "script")
    measured = _commit(repo, "src/model.py", "v1")
    results.mkdir()
    (results / "b.json").write_text(json.dumps({"commit": measured, "dirty": False, "command": "x", "acc": 91.25}))
    (results / "b.md").write_text("# b\n")
    index, doc = render(results, repo, (bench,)), render_doc(results, repo, (bench,))
    assert f"{OPEN}fresh{CLOSE}" in index and "**STALE**:" not in doc and "- `acc`: 91.250" in doc
    _commit(repo, "src/model.py", "v2")
    index2, doc2 = render(results, repo, (bench,)), render_doc(results, repo, (bench,))
    assert "stale: measured at" in index2 and "src/model.py" in index2
    assert "**STALE**:" in doc2 and "src/model.py" in doc2 and "- `acc`: 91.250" in doc2  # marked, not hidden
    assert strip_status(index2) == strip_status(index) and strip_status(doc2) == strip_status(doc)
    (results / "b.json").write_text(json.dumps({"commit": measured, "dirty": False, "command": "x", "acc": 90.0}))
    assert strip_status(render_doc(results, repo, (bench,))) != strip_status(doc)  # a figure changed: out of sync
