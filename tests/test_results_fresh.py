"""results/: every file well formed, stamped by `make bench`, written by a registered bench and indexed; and
bench/freshness.py, which reports the files older than the code they measure.

Staleness is a report (`make bench-status`), never a failing test: a commit to elastic/ stales results until
`make bench ONLY=<bench>` rewrites them, and `make test` stays green meanwhile. The report itself is tested on
a throw-away git repository with known answers, including that it prints a stale result and exits 0.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import freshness
from bench.freshness import command_matches, has_history, report
from bench.registry import BENCHES, RETIRED, ROOT, TOOLS, TRAINING, Bench, owner_of
from tests.helpers_git import commit as _commit, git as _git

HAS_GIT = has_history(ROOT)  # False in a copied tree or a shallow clone: the recorded commits are not there
# What bench/run.py stamps into every result JSON (bench.run.stamp), besides what the bench writes itself.
STAMPED = ("commit", "dirty", "command", "fingerprint", "wall_seconds", "load_before", "load_after", "quick",
           "run_dirs")


def test_every_result_is_well_formed_stamped_and_indexed():
    index = (ROOT / "results" / "README.md").read_text()
    files = sorted((ROOT / "results").glob("*.json"))
    assert files
    for js in files:
        data = json.loads(js.read_text())  # valid JSON
        assert isinstance(data, dict), js.name
        missing = [k for k in STAMPED if k not in data]
        assert not missing, f"{js.name} lacks {missing}: written outside `make bench` (python -m bench.run)"
        assert re.fullmatch(r"[0-9a-f]{40}", str(data["commit"])), f"{js.name}: commit {data['commit']!r}"
        assert isinstance(data["dirty"], bool) and data["quick"] is False, js.name  # full size, dirty recorded
        assert data["command"] and isinstance(data["fingerprint"], dict), js.name
        assert owner_of(js.stem) is not None, f"{js.name}: no bench of bench/registry.py writes it"
        assert js.with_suffix(".md").is_file(), f"{js.name} without its .md"
        assert f"[{js.stem}.md]({js.stem}.md)" in index, f"{js.name} is not in results/README.md"
    for md in (ROOT / "results").glob("*.md"):
        assert md.name == "README.md" or md.with_suffix(".json").is_file(), f"{md.name} without its .json"


@pytest.mark.skipif(not HAS_GIT, reason="needs git and the whole history (a copied tree or a shallow clone lacks the recorded commits)")
def test_the_report_on_the_real_results_runs():
    """Whatever is stale today is reported, not failed: the report covers every result file."""
    stale = report(ROOT / "results")
    assert set(stale) <= set(freshness.result_stems(ROOT / "results")) | {s for b in BENCHES for s in b.outputs}


def test_training_sources_cover_what_training_imports():
    """TRAINING leaves elastic/export/ out (a model-card change must not stale, or retrain, a run): so no module
    it names may import the export package, and every other part of elastic/ is in it."""
    named = [p for p in TRAINING if p.startswith("elastic/")]
    parts = {p.name for p in (ROOT / "elastic").iterdir() if p.name != "__pycache__"}
    assert parts - {p.split("/")[1] for p in named} == {"export"}
    for src in named:
        for f in sorted((ROOT / src).rglob("*.py")) if src.endswith("/") else [ROOT / src]:
            assert "elastic.export" not in f.read_text(), f"{f}: imports elastic.export, which TRAINING leaves out"


def test_registry_is_consistent():
    names = [b.name for b in BENCHES]
    assert len(names) == len(set(names))
    stems = [s for b in BENCHES for s in b.outputs]
    assert len(stems) == len(set(stems)), "two benches write the same result file"
    for b in BENCHES:
        for p in b.all_sources:
            if p != b.script and not p.startswith("bench/"):
                assert (ROOT / p).exists(), f"{b.name}: source path {p} does not exist"
    listed = {b.script for b in BENCHES} | set(TOOLS)
    unlisted = [p.relative_to(ROOT).as_posix() for p in (ROOT / "bench").glob("*.py")
                if p.relative_to(ROOT).as_posix() not in listed and p.name not in (
                    "__init__.py", "common.py", "registry.py", "run.py", "rundirs.py", "freshness.py",
                    "results_index.py", "results_doc.py", "search_metrics.py")]
    assert not unlisted, f"bench scripts in no registry entry (add them to BENCHES or TOOLS): {unlisted}"


def test_retired_benches_are_out_of_the_registry_and_results():
    registered = {b.name for b in BENCHES} | {s for b in BENCHES for s in b.outputs}
    for names, commit, why in RETIRED:
        assert why and len(commit) >= 7
        for stem in (n.strip() for n in names.split(",")):
            assert stem not in registered, f"{stem} is retired but still registered"
            assert not (ROOT / "results" / f"{stem}.json").exists(), f"results/{stem}.json of a retired bench"
            assert not (ROOT / "results" / f"{stem}.md").exists(), f"results/{stem}.md of a retired bench"
            if HAS_GIT:  # the files are where the registry says a reader finds them
                found = subprocess.run(["git", "cat-file", "-e", f"{commit}:results/{stem}.md"], cwd=ROOT)
                assert found.returncode == 0, f"results/{stem}.md is not in commit {commit}"
    cited = (ROOT / "README.md").read_text()
    for names, _, _ in RETIRED:
        for stem in (n.strip() for n in names.split(",")):
            assert f"results/{stem}." not in cited, f"the README still cites retired results/{stem}"




def _write(results: Path, stem: str, **data) -> None:
    results.mkdir(exist_ok=True)
    data.setdefault("command", "x")  # the known-answer benches' command
    (results / f"{stem}.json").write_text(json.dumps(data))
    (results / f"{stem}.md").write_text("# r\n")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_staleness_known_answers(tmp_path):
    repo, results = tmp_path, tmp_path / "results"
    _git(repo, "init", "-q")
    bench = Bench(name="b", script="bench/b.py", outputs=("b", "c"), sources=("src/",), command=(("x",),),
                  quick_skip="-", measures="-")
    gone = Bench(name="g", script="bench/gone.py", outputs=("g",), sources=(), command=(("x",),),
                 quick_skip="-", measures="-")
    first = _commit(repo, "bench/b.py", "script")
    second = _commit(repo, "src/model.py", "v1")
    _write(results, "b", commit=second, dirty=False)
    _write(results, "c", commit=first, dirty=False)       # older than src/model.py v1
    _write(results, "g", commit=second, dirty=False)      # its bench's script is gone
    _write(results, "x", commit=second, dirty=False)      # no bench writes it
    (results / "d.json").write_text("{}")
    got = report(results, repo, (bench, gone))
    assert set(got) == {"c", "g", "x", "d"}
    assert "before" in got["c"] and "gone.py" in got["g"] and "no bench" in got["x"]
    third = _commit(repo, "README", "docs")                # not a source: b stays fresh
    assert "b" not in report(results, repo, (bench, gone))
    _commit(repo, "src/model.py", "v2")                    # a source changed: b is stale now
    assert "src/model.py" in report(results, repo, (bench, gone))["b"]
    _commit(repo, "src/model.py", "v1")                    # ... and reverted: b measured v1, fresh again
    assert "b" not in report(results, repo, (bench, gone))
    _commit(repo, "src/new.py", "n")                       # a new file under a source path stales it too
    assert "src/new.py" in report(results, repo, (bench, gone))["b"]
    _write(results, "b", commit=third, dirty=True)
    assert "uncommitted" in report(results, repo, (bench,))["b"]
    _write(results, "b", commit="0" * 40, dirty=False)
    assert "unknown" in report(results, repo, (bench,))["b"]
    (results / "b.json").unlink()
    (results / "b.md").unlink()
    assert report(results, repo, (bench,))["b"].startswith("not written yet")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_bench_status_prints_a_stale_result_and_exits_0(tmp_path, capsys):
    """`make bench-status` (`python -m bench.freshness`) is a report: a stale result is printed with the file
    that changed, fresh ones as fresh, and the exit status is 0 (1 only with --strict)."""
    repo, results = tmp_path, tmp_path / "results"
    _git(repo, "init", "-q")
    bench = Bench(name="b", script="bench/b.py", outputs=("b", "c"), sources=("src/",), command=(("x",),),
                  quick_skip="-", measures="-")
    _commit(repo, "bench/b.py", "script")
    measured = _commit(repo, "src/model.py", "v1")
    _write(results, "b", commit=measured, dirty=False)
    _write(results, "c", commit=measured, dirty=False)
    _commit(repo, "src/model.py", "v2")                    # the code changed since: both stale
    _write(results, "c", commit=_git(repo, "rev-parse", "HEAD"), dirty=False)  # c re-measured: fresh
    assert freshness.main([], results, repo, (bench,)) == 0
    out = capsys.readouterr().out
    assert re.search(r"results/b: STALE: .*src/model\.py", out), out
    assert "results/c: fresh" in out and "1 of 2 results stale" in out
    assert freshness.main(["--strict"], results, repo, (bench,)) == 1


def test_a_result_of_another_command_is_stale():
    """The recorded command must be the registry's (placeholders match any path): options changed in the
    registry, e.g. a recipe's flags, make the files they wrote stale."""
    b = Bench(name="b", script="bench/b.py", outputs=("b",), sources=(), quick_skip="-", measures="-",
              command=(("{py}", "-m", "bench.b", "--run-dir", "{runs}/x", "--extra=--lr 2e-4"),
                       ("{py}", "-m", "bench.c", "--out", "{results}")))
    ok = "/v/bin/python -m bench.b --run-dir /w/runs/x '--extra=--lr 2e-4' && /v/bin/python -m bench.c --out /w/results"
    assert command_matches(ok, b)
    assert not command_matches(ok.replace("2e-4", "2e-4 --hard-weight 1.0"), b)  # a flag added
    assert not command_matches(ok.replace("runs/x", "runs/y"), b)                  # another run directory
    assert not command_matches(ok.split(" && ")[0], b)                             # a step missing
    assert not command_matches(ok.replace(" --out /w/results", ""), b)             # an argument missing
    assert not command_matches("", b) and not command_matches("python 'unclosed", b)
