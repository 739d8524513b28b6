"""What every sessions backend offers: the graph's checkpointer, plus listing, creating, renaming and
deleting sessions and holding one turn at a time per session.

A backend supplies only what its storage decides (the SQL that moves a session's rows, the
cross-process lock, and how its errors read); everything built on LangGraph's own checkpointer API
(`get_tuple`, `put`, `delete_thread`) and on its table layout is written once, here.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.core.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

SESSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_SESSION = "default"

# Every backend keeps LangGraph's checkpoint schema, so one query lists the sessions of any of them.
SESSIONS_NEWEST_FIRST = "SELECT thread_id FROM checkpoints WHERE checkpoint_ns = '' GROUP BY thread_id ORDER BY MAX(checkpoint_id) DESC"


def check_session_name(name: str) -> str:
    if not SESSION_NAME.match(name):
        raise ConfigError(
            f"invalid session name {name!r}: use up to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def thread_config(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": check_session_name(name)}}


@dataclass
class SessionInfo:
    name: str
    turns: int
    updated: str
    last_request: str
    interrupted: bool


class SessionStore(ABC):
    """The sessions of one backend. `saver` is the checkpointer the chat graph writes through."""

    saver: BaseCheckpointSaver

    # ---------------------------------------------------------------- what a backend decides

    def _names_newest_first(self) -> list[str]:
        """Every stored session, the one with the most recent checkpoint first."""
        # Both checkpointers expose `conn` and `lock`, which BaseCheckpointSaver does not declare.
        saver: Any = self.saver
        with saver.lock:
            rows = saver.conn.execute(SESSIONS_NEWEST_FIRST).fetchall()
        # psycopg hands back dict rows, sqlite3 tuples.
        return [row["thread_id"] if isinstance(row, dict) else row[0] for row in rows]

    @abstractmethod
    def _move(self, old: str, new: str) -> None:
        """Give all of `old`'s rows the name `new`, in one transaction: a crash leaves the session
        under one name, never split."""

    @abstractmethod
    def turn_lock(
        self, name: str, on_wait: Callable[[], None] | None = None, busy: Exception | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the session for one turn, across processes and threads; released when the holder
        dies, so a killed turn is still found and resumed. `on_wait` is called once before waiting;
        with `busy`, raise it instead of waiting."""

    @abstractmethod
    def storage_error(self, exc: BaseException) -> StorageError | None:
        """A failure of this backend's storage as one line naming the database; None for any other
        exception."""

    def close(self) -> None:  # noqa: B027 - a backend with nothing to release keeps this
        """Release the backend's connection."""

    # ---------------------------------------------------------------- built on the checkpointer

    @contextlib.contextmanager
    def _storage_errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            mapped = self.storage_error(exc)
            if mapped is None:
                raise
            raise mapped from None

    def snapshot(self, name: str) -> CheckpointTuple | None:
        config = thread_config(name)
        with self._storage_errors():
            return self.saver.get_tuple(config)  # type: ignore[arg-type]

    def names(self) -> list[str]:
        with self._storage_errors():
            return self._names_newest_first()

    def last(self) -> str | None:
        """The session whose latest turn is the most recent: what `--continue` picks up."""
        names = self.names()
        return names[0] if names else None

    def new_name(self, prefix: str, now: datetime | None = None) -> str:
        """A name no session has yet, readable and sortable (`ask-20261130-142501`; a second one in the
        same second gets `-2`, `-3`...). Nothing is stored: a command that fails before its turn's first
        checkpoint leaves no empty conversation behind."""
        stamp = f"{prefix}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
        name, n = stamp, 1
        while self.snapshot(name) is not None:
            n += 1
            name = f"{stamp}-{n}"
        return name

    def info(self, name: str) -> SessionInfo | None:
        snapshot = self.snapshot(name)
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

    def _busy(self, name: str, doing: str) -> ConfigError:
        return ConfigError(f"session {name!r} is taking a turn elsewhere; {doing} it when that turn ends")

    def delete(self, name: str) -> bool:
        if self.snapshot(name) is None:
            return False
        with self.turn_lock(name, busy=self._busy(name, "delete")), self._storage_errors():
            self.saver.delete_thread(name)
        return True

    def create(self, name: str) -> bool:
        """Store an empty session, so that it is listed (here and by the CLI) before its first turn.

        False when a session of that name exists already; it is left as it is.
        """
        from langgraph.checkpoint.base import empty_checkpoint  # deferred: imports langgraph

        if self.snapshot(name) is not None:
            return False
        config = {"configurable": {"thread_id": name, "checkpoint_ns": ""}}
        with self._storage_errors():
            self.saver.put(config, empty_checkpoint(), {"source": "input", "step": -1, "parents": {}}, {})  # type: ignore[arg-type]
        return True

    def rename(self, old: str, new: str) -> None:
        """Give a session a new name, keeping its history and any unfinished turn."""
        check_session_name(old)
        check_session_name(new)
        if self.snapshot(old) is None:
            raise ConfigError(f"no session named {old!r}; see `modalgraph sessions list`")
        if old == new:
            return
        taken = ConfigError(f"a session named {new!r} exists already; pick another name or delete it first")
        if self.snapshot(new) is not None:
            raise taken
        # Both names are held: no turn writes to `old` halfway through the move, nor starts on `new`.
        with (
            self.turn_lock(old, busy=self._busy(old, "rename")),
            self.turn_lock(new, busy=self._busy(new, "rename to")),
        ):
            if self.snapshot(new) is not None:  # created meanwhile by another process
                raise taken
            with self._storage_errors():
                self._move(old, new)
