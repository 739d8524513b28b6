"""Sessions on a PostgreSQL server (`sessions_url`), through langgraph-checkpoint-postgres.

Many processes and machines share one database: listing, renaming and deleting are SQL on the
checkpointer's own tables, and one turn at a time per session is a server-side advisory lock, which
the server drops when the holder's connection closes (a killed process included).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from agent.core.errors import ConfigError, StorageError, one_line
from memory.session_store import SessionStore, check_session_name

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import Connection
    from psycopg.rows import DictRow

# The checkpointer's tables that carry a session's rows (see its migrations).
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
CONNECT_TIMEOUT_S = 10


def advisory_key(what: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, namespaced so it meets no other application's keys."""
    digest = hashlib.blake2b(f"modalgraph:{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def server_name(url: str) -> str:
    """host:port/database, as a message may show it: never the user or the password."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        return "the server in sessions_url"
    database = parts.path.lstrip("/")
    return f"{parts.hostname or 'localhost'}:{port}" + (f"/{database}" if database else "")


def _acquire(
    conn: Connection[DictRow],
    key: int,
    on_wait: Callable[[], None] | None = None,
    busy: Exception | None = None,
) -> None:
    """Take the session-level advisory lock `key` on `conn`: at once if free; else raise `busy`, or
    call `on_wait` and wait for it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (key,)).fetchone()
    if not (row and row["got"]):
        if busy is not None:
            raise busy
        if on_wait is not None:
            on_wait()
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))


class PostgresSessions(SessionStore):
    saver: PostgresSaver

    def __init__(self, url: str) -> None:
        try:
            # deferred: an optional extra, imported only when sessions_url is set
            import psycopg  # noqa: F401
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError:
            raise ConfigError(
                "sessions_url names a PostgreSQL server, which needs `pip install 'modalgraph[postgres]'`"
            ) from None
        self.url = url
        self.where = server_name(url)
        self._password = unquote(urlsplit(url).password or "")
        conn = self._connect()
        try:
            self.saver = PostgresSaver(conn)
            # Two processes starting at once on a fresh database would both run the migrations.
            setup = advisory_key("setup")
            with self._storage_errors():
                _acquire(conn, setup)
                try:
                    self.saver.setup()
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (setup,))
        except BaseException:
            conn.close()
            raise

    def _connect(self) -> Connection[DictRow]:
        import psycopg
        from psycopg.rows import dict_row

        # What PostgresSaver.from_conn_string opens: autocommit, rows as dicts, no prepared
        # statements (they break behind a transaction-mode pooler such as PgBouncer).
        with self._storage_errors():
            return psycopg.Connection.connect(
                self.url,
                autocommit=True,
                prepare_threshold=0,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_S,
            )

    def _move(self, old: str, new: str) -> None:
        conn = self.saver.conn
        with self.saver.lock, conn.transaction():
            for table in TABLES:
                conn.execute(f"UPDATE {table} SET thread_id = %s WHERE thread_id = %s", (new, old))

    @contextlib.contextmanager
    def turn_lock(
        self, name: str, on_wait: Callable[[], None] | None = None, busy: Exception | None = None
    ) -> Iterator[None]:
        # A connection of its own, held for the turn: the lock belongs to a server session, so two
        # threads sharing the checkpointer's connection would not exclude each other. Closing it
        # (or the process dying) releases the lock.
        key = advisory_key(f"session:{check_session_name(name)}")
        conn = self._connect()
        try:
            with self._storage_errors():
                _acquire(conn, key, on_wait=on_wait, busy=busy)
            yield
        finally:
            conn.close()

    def storage_error(self, exc: BaseException) -> StorageError | None:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return None
        # psycopg's messages begin with the same preamble ("connection failed: connection to server
        # at ... failed:"); the reason is what follows the last "failed:".
        reason = one_line(exc).rsplit("failed: ", 1)[-1].replace("FATAL:  ", "").strip()
        if self._password:
            reason = reason.replace(self._password, "***")
        return StorageError(f"cannot use the sessions database on {self.where}: {reason}")

    def close(self) -> None:
        self.saver.conn.close()
