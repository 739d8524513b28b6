"""Sessions in SQLite (the default): LangGraph's SQLite checkpointer in one file in the data dir.

WAL journaling keeps the file consistent when a process is killed mid-write, and lets a second
process (the web page, `sessions list`) read while a chat is running.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.disk_full import disk_full_error, is_disk_full
from agent.core.errors import StorageError
from agent.core.file_lock import exclusive_lock
from memory.session_store import SessionStore, check_session_name

if TYPE_CHECKING:
    from langgraph.checkpoint.sqlite import SqliteSaver


class SqliteSessions(SessionStore):
    saver: SqliteSaver

    def __init__(self, db: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver  # deferred: imports langgraph

        self.db = db
        try:
            conn = sqlite3.connect(db, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self.saver = SqliteSaver(conn)
            self.saver.setup()
        except sqlite3.DatabaseError as exc:
            raise sessions_storage_error(exc, db) from None

    def _move(self, old: str, new: str) -> None:
        conn = self.saver.conn
        with self.saver.lock, conn:
            conn.execute("UPDATE checkpoints SET thread_id = ? WHERE thread_id = ?", (new, old))
            conn.execute("UPDATE writes SET thread_id = ? WHERE thread_id = ?", (new, old))

    def turn_lock(
        self, name: str, on_wait: Callable[[], None] | None = None, busy: Exception | None = None
    ) -> contextlib.AbstractContextManager[None]:
        # An advisory file lock beside the database, per session; the OS drops it when its holder dies.
        lock = self.db.parent / "session-locks" / f"{check_session_name(name)}.lock"
        return exclusive_lock(lock, busy=busy, on_wait=on_wait)

    def storage_error(self, exc: BaseException) -> StorageError | None:
        if isinstance(exc, sqlite3.Error):
            return sessions_storage_error(exc, self.db)
        return None

    def close(self) -> None:
        self.saver.conn.close()


def sessions_storage_error(exc: sqlite3.Error, db: Path) -> StorageError:
    """One line for a failure of the sessions database, with advice that loses nothing.

    Only a file that is not a database (or is malformed) is worth moving aside; a full disk or an
    I/O error says so, since moving a healthy database aside would hide every session in it.
    """
    if is_disk_full(exc, db):
        return disk_full_error(db.parent)
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StorageError(f"the sessions database {db} is damaged ({text}); move it aside to start afresh")
    return StorageError(f"cannot use the sessions database {db}: {text}")
