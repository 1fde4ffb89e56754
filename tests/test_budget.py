"""The trial budget counted in the database: exact under races, dead workers failed by heartbeat and
retried once, on SQLite and on a real PostgreSQL server (cheap objective through the real worker loop)."""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from search import budget as budget_mod
from search.budget import BEATING_ATTR, StudyBudget
from search.space import suggest_subnet
from search.options import SearchOptions
from search.study import open_study, run_worker
from tests.conftest_postgres import pg_url  # noqa: F401  (fixture)
from tests.conftest import TINY
from tests.helpers_search import SCENARIO

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Optuna marks its retry helpers experimental (since 2.8); they are what it documents for this.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("pg_url")


def _opts(tmp_path: Path, url: str, **kw) -> SearchOptions:
    base = dict(run_dir=tmp_path, scenario=SCENARIO, objectives=("metric", "macs"), storage=url, threads=1,
                study_name=f"budget-{random.randrange(10**9)}", heartbeat_interval=1, grace_period=2,
                progress=False)
    return SearchOptions(**{**base, **kw})


def _budget(opts: SearchOptions, n: int) -> StudyBudget:
    storage = opts.make_storage()
    return StudyBudget(storage, open_study(opts, storage=storage), n)


@dataclass
class CheapObjective:
    """The worker loop's objective without a model: a sub-network's depth and FFN size, a few ms of work."""

    arch: Any = TINY
    checkpoint: str | None = None
    eval_seconds: float = 0.0
    seen: list[int] = field(default_factory=list)

    def __call__(self, trial: optuna.Trial) -> list[float]:
        cfg = suggest_subnet(trial, self.arch)
        self.seen.append(trial.number)
        time.sleep(random.uniform(0.0, 0.02))
        return [float(len(cfg.layers)), float(sum(cfg.ffn))]


def test_a_lost_race_for_the_last_slot_gives_the_trial_back(tmp_path, storage_url):
    opts = _opts(tmp_path, storage_url, n_trials=3)
    a, b = _budget(opts, 3), _budget(opts, 3)
    for _ in range(2):
        a.study.tell(a.claim(), [1.0, 1.0])
    ta, tb = a.study.ask(), b.study.ask()  # both workers asked for the last slot before either counted
    assert a.count() == 4
    assert not a.admit(ta)  # counted after its commit: over budget, back to the queue
    assert b.admit(tb)
    assert a.claim() is None and not a.done()  # b's trial fills the budget; a waits, it does not stop
    b.study.tell(tb, [2.0, 1.0])
    assert a.done() and b.done() and a.claim() is None
    assert Counter(t.state for t in a.study.get_trials()) == {TrialState.COMPLETE: 3, TrialState.WAITING: 1}
    more = StudyBudget(a.storage, a.study, 4)  # a larger budget later runs the queued trial first
    assert more.claim().number == ta.number


def test_racing_workers_reach_the_budget_exactly(tmp_path, storage_url):
    opts = _opts(tmp_path, storage_url, n_trials=30)
    objectives = [CheapObjective() for _ in range(4)]
    stats: list[Any] = [None] * 4

    def work(k: int) -> None:
        stats[k] = run_worker(opts, worker=k, objective=objectives[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(s is not None for s in stats), "a worker raised"
    study = open_study(opts)
    states = Counter(t.state for t in study.get_trials())
    assert states[TrialState.COMPLETE] == 30 and states[TrialState.RUNNING] == 0 and states[TrialState.FAIL] == 0
    assert sum(s.trials for s in stats) == 30
    run = [n for o in objectives for n in o.seen]
    assert len(run) == len(set(run)) == 30  # every admitted trial ran once, by one worker
    assert sum(1 for s in stats if s.trials) >= 2


def test_a_trial_that_stops_beating_is_failed_once_and_retried(tmp_path, storage_url):
    opts = _opts(tmp_path, storage_url, n_trials=2)
    dead, alive = _budget(opts, 2), _budget(opts, 2)
    trial = dead.claim()
    cfg = suggest_subnet(trial, TINY)
    assert alive.fail_stale() == []  # it beat at admission, within the grace period
    time.sleep(3.2)  # no beat for longer than the grace period (2 s): the worker is dead
    assert alive.fail_stale() == [trial.number]
    assert dead.fail_stale() == []  # the database lets one worker fail it, once
    retry = alive.claim()
    retried = alive.storage.get_trial(retry._trial_id)
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retried) == trial.number
    assert suggest_subnet(retry, TINY) == cfg  # the same sub-network runs again
    assert alive.count() == 1  # the failed trial does not count; its retry counts once
    late = dead.study.tell(trial, [1.0, 2.0], skip_if_finished=True)  # the "dead" worker was only stalled
    assert late.state == TrialState.FAIL


def test_a_trial_killed_before_its_first_beat_is_retried(tmp_path, storage_url, monkeypatch):
    opts = _opts(tmp_path, storage_url, n_trials=2)
    b = _budget(opts, 2)
    orphan = b.study.ask()  # asked, never admitted: no heartbeat, no marker
    orphan.suggest_int("probe", 0, 3)
    assert b.fail_stale() == []
    monkeypatch.setattr(budget_mod, "ORPHAN_SECONDS", 0.0)
    assert b.fail_stale() == [orphan.number]
    queued = b.study.get_trials(states=(TrialState.WAITING,))
    assert len(queued) == 1 and queued[0].params == {"probe": orphan.params["probe"]}
    assert queued[0].user_attrs.get(BEATING_ATTR) is None


def test_options_of_the_heartbeat_are_checked(tmp_path):
    with pytest.raises(ValueError, match="grace_period"):
        SearchOptions(run_dir=tmp_path, heartbeat_interval=10, grace_period=10)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        SearchOptions(run_dir=tmp_path, heartbeat_interval=0)
    with pytest.raises(ValueError, match="max_retry"):
        SearchOptions(run_dir=tmp_path, max_retry=-1)


def test_workers_that_open_a_new_sqlite_file_together_all_connect(tmp_path):
    """Eight workers starting at the same instant on a file that does not exist yet: no 'database is
    locked' (switching to WAL) and no duplicate table creation reaches the user (failed in CI before)."""
    from search.storage import make_storage

    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def connect() -> None:
            start.wait()
            try:
                optuna.create_study(storage=make_storage(url, heartbeat_interval=1), study_name="s",
                                    load_if_exists=True, directions=["minimize", "minimize"])
            except BaseException as e:  # noqa: BLE001  (collected and asserted below)
                errors.append(e)

        threads = [threading.Thread(target=connect) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors


def test_wal_is_set_on_the_study_engine_only(tmp_path):
    """The SQLite pragmas go on the study's own engine: another SQLite engine of the same process (the
    user's, a library's) keeps its journal mode, before and after the study's engine is made and used."""
    import pickle

    import sqlalchemy

    from search.storage import make_storage

    def mode(engine: sqlalchemy.engine.Engine) -> str:
        with engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower()

    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    assert mode(other) == "delete"
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.create_study(storage=storage, study_name="s")
    later = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'later.db'}")
    assert mode(storage.engine) == "wal"
    assert mode(other) == "delete" and mode(later) == "delete"
    other.dispose()  # a new connection of the old engine: still not switched
    assert mode(other) == "delete"
    again = pickle.loads(pickle.dumps(storage))  # Optuna re-creates the engine from its arguments
    assert mode(again.engine) == "wal"
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    for e in (other, later, storage.engine, again.engine):
        e.dispose()
