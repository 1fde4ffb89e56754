"""Optuna storages of the search: SQLite in the run dir by default, any database server for several machines.

`make_storage` is the one place that turns a `--storage` URL into an `optuna.storages.RDBStorage`: SQLite
gets WAL and a long busy timeout (several local workers share the file); a server URL (PostgreSQL: install
the `postgres` extra) gets a connect timeout; both get Optuna's heartbeat when asked for it, so that the
trial of a worker that died (SIGKILL, lost machine) is failed by whichever worker looks next and its
parameters re-run (`RetryHeartbeatStaleTrialCallback`). A missing driver or an unreachable server is one
`StorageError` line that says what to do.
"""
from __future__ import annotations

import sqlite3
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import optuna
from filelock import FileLock
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

# The extra of pyproject.toml that installs each server's default SQLAlchemy driver.
DRIVER_EXTRAS = {"postgresql": "postgres"}  # SQLAlchemy 2.1's default PostgreSQL driver is psycopg (3)


class StorageError(ValueError):
    """A `--storage` URL the search cannot use: no driver installed, server unreachable, bad URL."""


@contextmanager
def queue_lock(url: str) -> Iterator[None]:
    """Makes popping a queued (WAITING) trial atomic where the database does not.

    PostgreSQL and MySQL pop with SELECT ... FOR UPDATE: nothing to do. pysqlite reads outside any
    transaction, so two processes could both move the same WAITING trial to RUNNING; SQLite lives on one
    host, so a lock file beside the database serializes them (any process on that host, any run dir).
    `make_storage` takes it too, so that workers starting together do not race to create the tables.
    """
    path = Path(url[len("sqlite:///"):]).with_suffix(".queue.lock") if url.startswith("sqlite:///") else None
    if path is None or not path.parent.is_dir():  # a server, or a folder SQLite itself will refuse
        yield
        return
    with FileLock(path):  # flock on POSIX, msvcrt.locking on Windows
        yield


def _sqlite_pragmas(dbapi_conn: Any) -> None:
    # Optuna commits many times per trial; with the default rollback journal every commit is an fsync.
    # WAL keeps every committed trial across a killed process (only a power
    # loss can lose the last commits) and lets readers (dashboard, other workers) run beside a writer.
    # WAL is a property of the file: set once, by the first connection. Switching needs the file to itself,
    # and SQLite answers "database is locked" at once (no busy wait) when another connection that starts at
    # the same moment holds a lock, so a worker tries again for a while instead of failing.
    cur = dbapi_conn.cursor()
    for attempt in range(50):
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if attempt == 49 or "locked" not in str(e).lower():
                raise
            time.sleep(0.05 + 0.01 * attempt)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class _StudyConnection(sqlite3.Connection):
    """The connections of a study's own SQLite engine (`connect_args={"factory": ...}`): WAL and
    synchronous=NORMAL on every new connection of that engine, and of no other engine in the process (a
    listener on SQLAlchemy's `Engine` class would switch every SQLite file the process opens). Being in the
    engine's arguments, it also holds for the engine Optuna re-creates when the storage is unpickled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _sqlite_pragmas(self)


def redact(url: str) -> str:
    """The URL with its password hidden (for messages and logs)."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing of what it holds
        return url.split("://", 1)[0] + "://..."


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a failed trial (a new WAITING trial with the same parameters), said out loud.

    The heartbeat fails a trial whose worker stopped beating for the grace period; the worker that noticed
    runs this callback once for it (the database lets exactly one worker move it to FAIL). `failed` keeps
    the numbers this process failed, for `WorkerStats`.
    """

    def __init__(self, max_retry: int | None) -> None:
        super().__init__(max_retry=max_retry)
        self.failed: list[int] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.failed.append(trial.number)
        retries = len(trial.system_attrs.get("retry_history", []))
        again = self._max_retry is None or retries < self._max_retry
        print(f"search: trial {trial.number} of worker {trial.user_attrs.get('worker', '?')} stopped beating; "
              + ("failed, its parameters are queued again" if again else
                 f"failed, not retried ({retries} retries already)"), file=sys.stderr, flush=True)
        super().__call__(study, trial)


def make_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage for `url`, with a heartbeat when `heartbeat_interval` is given.

    Args:
        url: SQLAlchemy URL (`sqlite:///...`, `postgresql://user:pw@host/db`, ...).
        heartbeat_interval: seconds between heartbeats of a running trial (None: no heartbeat; for readers).
        grace_period: seconds without a heartbeat after which a running trial is failed (default 2 intervals).
        max_retry: how often a failed trial's parameters are re-run (None: without limit).

    Raises:
        StorageError: the URL's driver is not installed, or the database does not answer.
    """
    import sqlalchemy

    beat: dict[str, Any] = {}
    if heartbeat_interval is not None:
        with warnings.catch_warnings():  # "experimental" since Optuna 2.8 and still how Optuna retries
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            beat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                    "heartbeat_stale_trial_callback": RetryStaleTrial(max_retry)}
    backend = url.split("://", 1)[0].split("+", 1)[0]
    if backend == "sqlite":
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}}
        if url.split("://", 1)[0] in ("sqlite", "sqlite+pysqlite"):  # the stdlib driver: WAL on this engine only
            engine_kwargs["connect_args"]["factory"] = _StudyConnection
    elif backend == "postgresql":
        # Fail in seconds on a wrong host instead of the OS's TCP timeout; pre-ping survives server restarts.
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        with queue_lock(url):  # SQLite: one worker of this host at a time creates the tables
            return _rdb_storage(url, engine_kwargs, beat)
    except ImportError as e:  # Optuna re-raises the driver's ModuleNotFoundError without its name
        missing = getattr(e.__cause__, "name", None) or e.name or "?"
        extra = DRIVER_EXTRAS.get(backend)
        if extra and "+" not in url.split("://", 1)[0]:  # the default driver: the extra installs it
            hint = f"install it with: pip install 'dynabert-explorer[{extra}]'"
        else:
            hint = f"install the package that provides '{missing}'" + (
                f", or drop '+{url.split('://', 1)[0].split('+', 1)[-1]}' from the URL and pip install "
                f"'dynabert-explorer[{extra}]'" if extra else "")
        raise StorageError(f"--storage {redact(url)}: the database driver '{missing}' is not installed; "
                           f"{hint}") from None
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(f"--storage {redact(url)} is not a database URL ({e}); e.g. "
                           "postgresql://user:password@host:5432/dbname or sqlite:///path/study.db") from None
    except sqlalchemy.exc.OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e).splitlines()[0]
        raise StorageError(f"--storage {redact(url)}: cannot connect ({reason}); check the host, port, "
                           "user, password and database name, and that the server runs") from None


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], beat: dict[str, Any]) -> optuna.storages.RDBStorage:
    """`RDBStorage(...)`, tried again when workers that start together race to create the tables (or, on
    SQLite, to lock the new file)."""
    import sqlalchemy

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beat)
        except sqlalchemy.exc.DatabaseError as e:  # "table ... already exists", "duplicate key" (pg_type)
            text = str(e).lower()
            if attempt == 4 or not ("already exists" in text or "duplicate key" in text
                                    or "unique constraint" in text or "database is locked" in text):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
