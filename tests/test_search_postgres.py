"""`dynabert search` on a real PostgreSQL server: worker processes share one study with nothing lost or
evaluated twice; a worker killed with SIGKILL mid-trial is failed by heartbeat, its trial retried, and the
study reaches exactly its budget. Plus the one-line errors of a wrong `--storage`."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from search.budget import BEATING_ATTR
from search.storage import StorageError, make_storage
from tests.conftest_postgres import pg_url  # noqa: F401  (fixture)
from tests.helpers_search import SCENARIO, make_tiny_run

ROOT = Path(__file__).resolve().parents[1]
# Optuna marks its retry helpers experimental (since 2.8); they are what it documents for this.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _worker(run: Path, url: str, name: str, n_trials: int, seed: int, log: Path, *, n_workers: int = 1
            ) -> subprocess.Popen:
    """`dynabert search` as another machine would start it (heartbeat 1 s, grace 3 s for the test)."""
    cmd = [sys.executable, "-m", "app.cli", "search", "--run-dir", str(run), "--scenario", SCENARIO,
           "--objectives", "metric,macs", "--n-trials", str(n_trials), "--study-name", name, "--storage", url,
           "--sampler", "random", "--seed", str(seed), "--n-workers", str(n_workers), "--threads", "1",
           "--heartbeat-interval", "1", "--grace-period", "3", "--no-finalize", "--no-progress"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"))


@functools.lru_cache(maxsize=None)
def _reader(url: str) -> Any:
    return make_storage(url)  # one connection pool for the test's reads (the fixture's DROP ... FORCE ends it)


def _trials(url: str, name: str) -> list[FrozenTrial]:
    """Every trial of the study, read from the database now."""
    storage = _reader(url)
    return storage.get_all_trials(storage.get_study_id_from_name(name))


def _evaluated_once(run: Path, complete: list[FrozenTrial]) -> int:
    """Asserts no (config, split, fidelity) was evaluated twice; returns the number of evaluations."""
    keys = [json.loads(line)["key"] for line in (run / "eval_cache.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)), Counter(keys).most_common(3)
    computed = Counter(t.user_attrs["config_hash"] for t in complete if not t.user_attrs["cache_hit"])
    assert all(n == 1 for n in computed.values()), computed.most_common(3)
    assert {t.user_attrs["config_hash"] for t in complete} <= {k.rsplit(":", 1)[1] for k in keys}
    return len(keys)


def _wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 240) -> None:
    for p, log in zip(procs, logs):
        try:
            p.wait(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 0, f"worker exited {p.returncode}: {log.read_text()[-2000:]}"


@pytest.mark.postgres
def test_workers_on_postgres_lose_nothing_and_survive_sigkill(tmp_path, pg_url):  # noqa: F811
    t0 = time.perf_counter()
    run, name = make_tiny_run(tmp_path, n_dev=2000), "pg-workers"  # ~0.05-0.3 s per trial: kills land mid-trial
    # 1. two worker processes (`--n-workers 2`) on one study
    log = tmp_path / "phase1.log"
    _wait([_worker(run, pg_url, name, 14, 0, log, n_workers=2)], [log])
    trials = _trials(pg_url, name)
    states = Counter(t.state for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 14 and states[TrialState.RUNNING] == 0 and states[TrialState.FAIL] == 0
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both processes ran trials
    n_evals = _evaluated_once(run, complete)
    print(f"\nphase 1 (PostgreSQL, 2 worker processes): {len(complete)} COMPLETE of budget 14, "
          f"{states[TrialState.FAIL]} FAIL, {states[TrialState.RUNNING]} RUNNING (0 lost); "
          f"{len({t.user_attrs['config_hash'] for t in complete})} distinct configs, {n_evals} evaluations, "
          "0 evaluated twice")

    # 2. the budget raised to 30; worker A killed with SIGKILL mid-trial; new workers B and C started
    logs = {k: tmp_path / f"{k}.log" for k in ("A", "B", "C")}
    dead: list[FrozenTrial] = []
    for attempt in range(3):  # a kill that lands between two trials leaves nothing to recover: again
        a = _worker(run, pg_url, name, 30, 1 + 10 * attempt, logs["A"])
        me = f":{a.pid}"
        deadline = time.time() + 120
        while time.time() < deadline and a.poll() is None:
            ts = _trials(pg_url, name)
            beating = [t for t in ts if t.state == TrialState.RUNNING and t.user_attrs.get(BEATING_ATTR) == t.number
                       and str(t.user_attrs.get("worker", "")).endswith(me)]
            if beating and sum(t.state == TrialState.COMPLETE for t in ts) >= 16:
                os.kill(a.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        a.wait(timeout=30)
        assert a.returncode == -signal.SIGKILL, f"worker A was not killed: {logs['A'].read_text()[-2000:]}"
        dead = [t for t in _trials(pg_url, name) if t.state == TrialState.RUNNING
                and str(t.user_attrs.get("worker", "")).endswith(me)]
        if dead:
            break
    assert dead, "no kill landed mid-trial in 3 attempts"
    b, c = _worker(run, pg_url, name, 30, 2, logs["B"]), _worker(run, pg_url, name, 30, 3, logs["C"])
    _wait([b, c], [logs["B"], logs["C"]])

    trials = _trials(pg_url, name)
    by_number = {t.number: t for t in trials}
    states = Counter(t.state for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 30 and states[TrialState.RUNNING] == 0  # exactly the budget, nothing left running
    assert sorted(t.number for t in trials if t.state == TrialState.FAIL) == sorted(t.number for t in dead)
    for d in dead:
        assert by_number[d.number].state == TrialState.FAIL  # failed by the heartbeat ...
        retries = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == d.number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE  # ... retried once, completed
        # the same sub-network, as far as the dead trial had chosen it (a kill can land between two suggestions)
        assert by_number[d.number].params.items() <= retries[0].params.items()
        assert retries[0].user_attrs["worker"].rsplit(":", 1)[1] in (str(b.pid), str(c.pid))  # ... by a new worker
    assert "stopped beating" in logs["B"].read_text() + logs["C"].read_text()
    n_evals = _evaluated_once(run, complete)
    pid_of = {t.number: str(t.user_attrs["worker"]).rsplit(":", 1)[1] for t in complete}
    new = {k: sum(pid == str(p.pid) for pid in pid_of.values()) for k, p in (("B", b), ("C", c))}
    retried = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    by = ["B" if pid_of[t.number] == str(b.pid) else "C" for t in retried]
    print(f"phase 2 (SIGKILL): killed trial(s) {[t.number for t in dead]} -> FAIL, retried as "
          f"{[t.number for t in retried]} "
          f"(COMPLETE, by new worker {by}); {len(complete)} COMPLETE of budget 30, "
          f"{states[TrialState.RUNNING]} RUNNING, "
          f"{states[TrialState.FAIL]} FAIL; {n_evals} evaluations, 0 evaluated twice; trials COMPLETE by "
          f"{new} "
          f"for the new workers; {time.perf_counter() - t0:.0f} s")


def test_an_unreachable_database_is_one_line(tmp_path, capsys):
    from app.cli.main import main

    run = make_tiny_run(tmp_path)
    code = main(["search", "--run-dir", str(run), "--scenario", SCENARIO, "--objectives", "metric,macs",
                 "--storage", "postgresql://nobody:s3cret@127.0.0.1:1/none", "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --storage postgresql://nobody:***@127.0.0.1:1/none: cannot connect")
    assert "s3cret" not in err


def test_a_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(StorageError, match=r"driver 'psycopg' is not installed; install it with: "
                                           r"pip install 'dynabert-explorer\[postgres\]'"):
        make_storage("postgresql://user:pw@127.0.0.1:1/db")
