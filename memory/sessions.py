"""Persistent sessions: SQLite in the data dir by default, a PostgreSQL server when `sessions_url`
is set. Both stand behind `SessionStore` (memory/session_store.py), so the CLI, the web page and
the turn runner never ask which one they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memory.session_store import (
    DEFAULT_SESSION,
    SessionInfo,
    SessionStore,
    check_session_name,
    thread_config,
)
from memory.sessions_postgres import PostgresSessions
from memory.sessions_sqlite import SqliteSessions

if TYPE_CHECKING:
    from agent.core.settings import Settings

__all__ = [
    "DEFAULT_SESSION",
    "SessionInfo",
    "SessionStore",
    "check_session_name",
    "open_sessions",
    "thread_config",
]


def open_sessions(settings: Settings) -> SessionStore:
    if settings.sessions_url:
        return PostgresSessions(settings.sessions_url)
    settings.ensure_data_dir()
    return SqliteSessions(settings.sessions_db)
