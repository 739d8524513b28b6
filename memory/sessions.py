"""Persistent sessions: LangGraph's SQLite checkpointer in the data dir, plus listing and deleting.

WAL journaling keeps the file consistent when a process is killed mid-write, and lets a second
process (the web page, `sessions list`) read while a chat is running.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.disk_full import disk_full_error, is_disk_full
from agent.core.errors import ConfigError, StorageError
from agent.core.file_lock import exclusive_lock

if TYPE_CHECKING:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from agent.core.settings import Settings

SESSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_SESSION = "default"


def check_session_name(name: str) -> str:
    if not SESSION_NAME.match(name):
        raise ConfigError(
            f"invalid session name {name!r}: use up to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def open_checkpointer(settings: Settings) -> SqliteSaver:
    from langgraph.checkpoint.sqlite import SqliteSaver

    settings.ensure_data_dir()
    try:
        conn = sqlite3.connect(settings.sessions_db, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        saver = SqliteSaver(conn)
        saver.setup()
    except sqlite3.DatabaseError as exc:
        raise sessions_storage_error(exc, settings.sessions_db) from None
    return saver


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


@dataclass
class SessionInfo:
    name: str
    turns: int
    updated: str
    last_request: str
    interrupted: bool


def thread_config(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": check_session_name(name)}}


def session_names(saver: SqliteSaver) -> list[str]:
    rows = saver.conn.execute(
        "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints WHERE checkpoint_ns = '' "
        "GROUP BY thread_id ORDER BY last DESC"
    ).fetchall()
    return [row[0] for row in rows]


def last_session(saver: SqliteSaver) -> str | None:
    """The session whose latest turn is the most recent: what `--continue` picks up."""
    names = session_names(saver)
    return names[0] if names else None


def new_session_name(saver: SqliteSaver, prefix: str, now: datetime | None = None) -> str:
    """A name no session has yet, readable and sortable (`ask-20261130-142501`; a second one in the
    same second gets `-2`, `-3`...). Nothing is stored: a command that fails before its turn's first
    checkpoint leaves no empty conversation behind."""
    stamp = f"{prefix}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    name, n = stamp, 1
    while saver.get_tuple(thread_config(name)) is not None:
        n += 1
        name = f"{stamp}-{n}"
    return name


def session_info(saver: SqliteSaver, name: str) -> SessionInfo | None:
    snapshot = saver.get_tuple(thread_config(name))
    if snapshot is None:
        return None
    values = snapshot.checkpoint.get("channel_values", {})
    history = values.get("history") or []
    users = [h for h in history if h.get("role") == "user"]
    pending = bool(values.get("request")) and not values.get("answer")
    return SessionInfo(
        name=name,
        turns=len(users),
        updated=str(snapshot.checkpoint.get("ts", ""))[:19].replace("T", " "),
        last_request=(users[-1]["text"] if users else ""),
        interrupted=pending,
    )


def delete_session(saver: SqliteSaver, name: str) -> bool:
    if saver.get_tuple(thread_config(name)) is None:
        return False
    saver.delete_thread(name)
    return True


def create_session(saver: SqliteSaver, name: str) -> bool:
    """Store an empty session, so that it is listed (here and by the CLI) before its first turn.

    False when a session of that name exists already; it is left as it is.
    """
    from langgraph.checkpoint.base import empty_checkpoint

    if saver.get_tuple(thread_config(name)) is not None:
        return False
    config = {"configurable": {"thread_id": name, "checkpoint_ns": ""}}
    saver.put(config, empty_checkpoint(), {"source": "input", "step": -1, "parents": {}}, {})  # type: ignore[arg-type]
    return True


def rename_session(saver: SqliteSaver, old: str, new: str) -> None:
    """Give a session a new name, keeping its history and any unfinished turn.

    Both tables move in one transaction: a crash leaves the session under one name, never split.
    """
    check_session_name(old)
    check_session_name(new)
    if saver.get_tuple(thread_config(old)) is None:
        raise ConfigError(f"no session named {old!r}; see `modalgraph sessions list`")
    if old == new:
        return
    if saver.get_tuple(thread_config(new)) is not None:
        raise ConfigError(f"a session named {new!r} exists already; pick another name or delete it first")
    conn = saver.conn
    with saver.lock, conn:
        conn.execute("UPDATE checkpoints SET thread_id = ? WHERE thread_id = ?", (new, old))
        conn.execute("UPDATE writes SET thread_id = ? WHERE thread_id = ?", (new, old))


def session_turn_lock(
    settings: Settings, name: str, on_wait: Callable[[], None] | None = None
) -> contextlib.AbstractContextManager[None]:
    """One turn at a time in a session, across processes (the CLI and the web page share sessions).

    Without it a second process took the first one's running turn for an interrupted one and
    finished it with its own LLM, losing a turn. The SQLite backend holds an advisory file lock
    beside the database for the length of the turn; the OS releases it if the holder is killed,
    so a crashed turn is still found and resumed. A server backend (Postgres) would hold
    `pg_advisory_lock` on the session's key for the same span: callers see only this function.
    """
    lock = settings.sessions_db.parent / "session-locks" / f"{check_session_name(name)}.lock"
    return exclusive_lock(lock, on_wait=on_wait)
