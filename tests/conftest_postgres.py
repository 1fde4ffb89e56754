"""A real PostgreSQL database for the search tests (imported by tests/test_search_postgres.py etc.).

`make test` installs and starts Debian's server (`make postgres-deps`). The fixture creates its own role
and database through the local `postgres` superuser (`runuser -u postgres` as root, else `sudo -n -u
postgres`), connects over TCP on 127.0.0.1 with a password (Debian's default pg_hba), and drops both at the
end. `DYNABERT_TEST_POSTGRES_URL=postgresql://...` uses an existing database instead (left in place). It
skips, saying why, only where no server answers.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from typing import Iterator

import pytest


def _as_postgres() -> list[str] | None:
    """The command prefix that runs a program as the postgres OS user, or None."""
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    if shutil.which("sudo"):
        return ["sudo", "-n", "-u", "postgres"]
    return None


def _psql(prefix: list[str], sql: str) -> str:
    out = subprocess.run([*prefix, "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql],
                         capture_output=True, text=True, timeout=60, cwd="/")
    if out.returncode:
        raise RuntimeError(out.stderr.strip() or f"psql exited {out.returncode}")
    return out.stdout.strip()


def _answers(url: str) -> str | None:
    """None when `url` accepts a connection, else the reason."""
    from search.storage import StorageError, make_storage

    try:
        make_storage(url).engine.dispose()
    except StorageError as e:
        return str(e)
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database owned by a fresh role, dropped after the session."""
    given = os.environ.get("DYNABERT_TEST_POSTGRES_URL")
    if given:
        reason = _answers(given)
        if reason:
            pytest.skip(f"DYNABERT_TEST_POSTGRES_URL does not answer: {reason}")
        yield given
        return
    prefix = _as_postgres()
    if prefix is None or not shutil.which("psql"):
        pytest.skip("no PostgreSQL server answers: psql or a way to run it as the postgres user is missing "
                    "(`make postgres-deps` installs and starts Debian's server as root)")
    try:
        port = _psql(prefix, "SHOW port")
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        pytest.skip(f"no PostgreSQL server answers on this machine ({e}); `make postgres-deps` starts it")
    name, password = f"dynabert_test_{os.getpid()}_{secrets.token_hex(3)}", secrets.token_hex(12)
    _psql(prefix, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        _psql(prefix, f"CREATE DATABASE {name} OWNER {name}")
        url = f"postgresql://{name}:{password}@127.0.0.1:{port}/{name}"
        reason = _answers(url)
        if reason:
            pytest.skip(f"the PostgreSQL server does not accept a password login on 127.0.0.1: {reason}")
        yield url
    finally:
        _psql(prefix, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _psql(prefix, f"DROP ROLE IF EXISTS {name}")
