"""bench/run.py and bench/rundirs.py: the load check, --only with the benches it needs, run directories reused
only while their training code is unchanged (set aside, never deleted, otherwise), seeding a students' run."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from bench import run as bench_run
from bench import rundirs
from bench.registry import BY_NAME, ROOT, select
from tests.helpers_git import commit as _commit, git as _git

HAS_GIT = shutil.which("git") is not None




@pytest.mark.skipif(not HAS_GIT, reason="needs git")
def test_run_dir_reused_only_while_training_code_is_unchanged(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _commit(repo, "src/train.py", "v1")
    run = tmp_path / "runs" / "r"
    assert rundirs.prepare(run, ["src/"], repo)["reused"] is False
    (run / "teacher").mkdir()
    assert rundirs.prepare(run, ["src/"], repo)["reused"] is True and (run / "teacher").is_dir()
    _commit(repo, "README", "docs")  # not training code
    assert rundirs.prepare(run, ["src/"], repo)["reused"] is True
    fresh = rundirs.prepare(run, ["src/"], repo, reuse=False)  # a bench that times its own training
    assert fresh["reused"] is False and fresh["set_aside"] and not (run / "teacher").exists()
    (run / "teacher").mkdir()
    _commit(repo, "src/train.py", "v2")
    info = rundirs.prepare(run, ["src/"], repo)
    assert info["reused"] is False and not (run / "teacher").exists()
    assert (tmp_path / "runs" / info["set_aside"].rsplit("/", 1)[-1] / "teacher").is_dir()  # kept aside
    (repo / "src" / "train.py").write_text("v3, uncommitted")
    shutil.rmtree(run)
    rundirs.prepare(run, ["src/"], repo)
    assert json.loads((run / rundirs.STAMP).read_text())["dirty"]
    assert not rundirs.reusable(run, ["src/"], repo)  # trained on uncommitted code: never reused


def test_seed_copies_the_teacher_not_the_students(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    for d in ("teacher", "rewired", "stage2", "baselines"):
        (src / d).mkdir(parents=True)
    (src / "run.json").write_text("{}")
    assert rundirs.seed(src, dst) == ["rewired", "run.json", "teacher"]
    assert rundirs.seed(src, dst) == []
    with pytest.raises(SystemExit, match="no rewired"):
        rundirs.seed(tmp_path / "empty", dst)


def test_only_adds_the_benches_whose_run_directories_it_needs(tmp_path):
    assert [b.name for b in bench_run.with_requirements(select("search"), tmp_path)] == ["sst2_dynabert", "search"]
    if HAS_GIT and not rundirs.paths_dirty(BY_NAME["sst2_dynabert"].train_sources):
        stamp = {"train_sources_commit": rundirs.last_commit(BY_NAME["sst2_dynabert"].train_sources), "dirty": False}
        (tmp_path / "sst2_dynabert").mkdir()
        (tmp_path / "sst2_dynabert" / rundirs.STAMP).write_text(json.dumps(stamp))
        assert [b.name for b in bench_run.with_requirements(select("search"), tmp_path)] == ["search"]
    with pytest.raises(ValueError, match="unknown bench"):
        select("search,nope")


def test_refuses_a_busy_machine_unless_forced(monkeypatch, capsys):
    monkeypatch.setattr(bench_run, "load_1min", lambda: 100.0)
    assert bench_run.main(["--only", "model_parity_speed", "--results-dir", str(ROOT / "no-such-dir")]) == 3
    assert "--force" in capsys.readouterr().err
    assert not (ROOT / "no-such-dir").exists()


def test_a_result_the_bench_did_not_rewrite_gets_no_provenance(tmp_path):
    from bench.registry import Bench
    out = tmp_path / "results"
    out.mkdir()
    (out / "old.json").write_text("{}")
    places = {"py": "python", "results": str(out), "runs": str(tmp_path / "runs"), "shared": str(tmp_path)}
    b = Bench(name="b", script="bench/run.py", outputs=("old",), sources=(), command=(("true",),), quick=(("true",),),
              measures="-")
    assert bench_run.run_bench(b, quick=True, places=places, env={}).startswith("failed: did not (re)write old.json")
    assert (out / "old.json").read_text() == "{}"
    w = Bench(name="w", script="bench/run.py", outputs=("new",), sources=(), measures="-", command=(("true",),),
              quick=(("cp", str(tmp_path / "src.json"), str(out / "new.json")), ("cp", str(tmp_path / "src.md"),
                                                                                  str(out / "new.md"))))
    (tmp_path / "src.json").write_text("{}")
    (tmp_path / "src.md").write_text("# r\n")
    assert bench_run.run_bench(w, quick=True, places=places, env={"PATH": "/usr/bin:/bin"}) == "ok"
    data = json.loads((out / "new.json").read_text())
    assert data["quick"] is True and data["commit"] and "load_before" in data and "fingerprint" in data
    assert "Provenance" in (out / "new.md").read_text()


def test_a_chain_waits_for_the_previous_benchs_load_to_settle(monkeypatch):
    loads = iter([1.9, 1.4, 1.1, 0.9, 0.5])
    monkeypatch.setattr(bench_run, "load_1min", lambda: next(loads))
    slept: list[float] = []
    assert bench_run.wait_for_quiet(1.0, poll_s=10, sleep=slept.append) == (30.0, 0.9)
    assert slept == [10, 10, 10]
    monkeypatch.setattr(bench_run, "load_1min", lambda: 5.0)  # never settles: gives up after max_wait_s
    slept.clear()
    assert bench_run.wait_for_quiet(1.0, max_wait_s=25, poll_s=10, sleep=slept.append) == (30.0, 5.0)
    assert len(slept) == 3


def test_dirty_ignores_rewritten_results_but_not_code(tmp_path):
    """Uncommitted result files (a chain rewrites results/ bench by bench) do not make the tree dirty; code does."""
    import subprocess

    from bench import rundirs

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "results" / "a.json").write_text('{"new": 1}')
    assert not rundirs.tree_dirty(tmp_path)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert rundirs.tree_dirty(tmp_path)
