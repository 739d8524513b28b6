"""The sessions backends the session tests run on: SQLite in the test's data dir, and the PostgreSQL
server CI starts (`.ci/postgres-server`), named by MODALGRAPH_TEST_POSTGRES_URL.

`sessions_backend` is parametrised over both; on Postgres every test starts with empty checkpoint
tables in a database of this run's own, dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_URL_VAR = "MODALGRAPH_TEST_POSTGRES_URL"
NO_SERVER = f"no PostgreSQL server for the tests: set {POSTGRES_URL_VAR} (`.ci/run` starts one)"
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations")


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test run's own on the test server."""
    base = os.environ.get(POSTGRES_URL_VAR)
    if not base:
        pytest.skip(NO_SERVER)
    import psycopg

    name = f"modalgraph_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """MODALGRAPH_SESSIONS_URL set (for this process and the CLI processes it starts), no sessions."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
    monkeypatch.setenv("MODALGRAPH_SESSIONS_URL", postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def sessions_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("empty_postgres")
    return str(request.param)


def row_counts(store: Any, name: str) -> dict[str, int]:
    """How many rows each checkpoint table holds for session `name`, read with the store's own SQL."""
    from memory.sessions_postgres import PostgresSessions

    conn = store.saver.conn
    if isinstance(store, PostgresSessions):
        sql = "SELECT COUNT(*) AS n FROM {} WHERE thread_id = %s"
        tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        return {t: conn.execute(sql.format(t), (name,)).fetchone()["n"] for t in tables}
    sql = "SELECT COUNT(*) FROM {} WHERE thread_id = ?"
    return {t: conn.execute(sql.format(t), (name,)).fetchone()[0] for t in ("checkpoints", "writes")}
