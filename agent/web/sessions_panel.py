"""The Sessions panel: pick, create, rename and delete conversations.

They are the CLI's sessions, in the same database (SQLite in the data dir, or the PostgreSQL server
of `sessions_url`), through the turn runner's own store (memory/sessions.py). Every action returns
a `SessionView`, everything the page needs to redraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.core.errors import ConfigError
from agent.web.chat_stream import Message, ShowsFn, ThumbFn, history_messages
from memory.sessions import DEFAULT_SESSION, SessionStore, check_session_name

if TYPE_CHECKING:
    from agent.turns import TurnRunner


@dataclass
class SessionView:
    choices: list[str]
    current: str
    messages: list[Message]
    info: str


class SessionsPanel:
    def __init__(self, runner: TurnRunner, shows: ShowsFn, thumbs: ThumbFn | None = None) -> None:
        self.runner = runner
        self.shows = shows
        self.thumbs = thumbs

    @property
    def store(self) -> SessionStore:
        return self.runner.sessions

    def names(self, current: str | None = None) -> list[str]:
        """Saved sessions, most recent first, plus the current one while it is still empty."""
        names = self.store.names()
        if current and current not in names:
            names.insert(0, current)
        return names or [DEFAULT_SESSION]

    def describe(self, name: str) -> str:
        info = self.store.info(name)
        if info is None or (info.turns == 0 and not info.interrupted):
            return f"**{name}**: new, nothing said yet"
        turns = f"{info.turns} turn{'s' if info.turns != 1 else ''}"
        text = (
            f"**{name}**: {turns}, last updated {info.updated} UTC"
            if info.updated
            else f"**{name}**: {turns}"
        )
        if info.interrupted:
            text += "; its last turn was interrupted and is finished with your next message"
        return text

    def open(self, name: str | None) -> SessionView:
        name = check_session_name((name or DEFAULT_SESSION).strip())
        messages = history_messages(self.runner.history(name), self.shows, self.thumbs)
        return SessionView(self.names(name), name, messages, self.describe(name))

    def create(self, name: str) -> SessionView:
        name = check_session_name(name.strip())
        if not self.store.create(name):
            raise ConfigError(f"a session named {name!r} exists already; pick it in the list")
        return self.open(name)

    def rename(self, old: str, new: str) -> SessionView:
        new = new.strip()
        if not new:
            raise ConfigError("type the new name in the name box first")
        if self.store.info(old) is None:
            # Never stored (nothing said yet): there is nothing to move, only a name to use.
            check_session_name(new)
            return self.open(new)
        self.store.rename(old, new)
        return self.open(new)

    def delete(self, name: str) -> SessionView:
        """Delete a session's history (its generated files stay in the artifact store)."""
        self.store.delete(check_session_name(name))
        remaining = self.store.names()
        view = self.open(remaining[0] if remaining else DEFAULT_SESSION)
        view.info = f"deleted **{name}** (its files stay in the artifact store). " + view.info
        return view
