"""`modalgraph sessions list|show|delete`: the saved conversations (SQLite in the data dir, or the
PostgreSQL server of `sessions_url`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from agent.core.errors import ConfigError

if TYPE_CHECKING:
    from memory.sessions import SessionStore

sessions_app = typer.Typer(help="List, show and delete saved conversations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")


def _store() -> SessionStore:
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings
    from memory.sessions import open_sessions

    return open_sessions(load_settings())


@sessions_app.command("list")
def list_sessions() -> None:
    """Every session, most recent first."""
    from rich.console import Console
    from rich.table import Table

    store = _store()
    table = Table()
    for column in ("session", "turns", "updated (UTC)", "last request"):
        table.add_column(column, overflow="fold")
    for name in store.names():
        info = store.info(name)
        if info is None:
            continue
        flag = " [yellow](interrupted)[/]" if info.interrupted else ""
        table.add_row(name + flag, str(info.turns), info.updated, info.last_request[:60])
    Console().print(table)


@sessions_app.command("show")
def show(name: str = typer.Argument(..., help="Session name.")) -> None:
    """Print a session's conversation, with the files each answer carried."""
    from rich.console import Console
    from rich.markup import escape

    snapshot = _store().snapshot(name)
    if snapshot is None:
        raise ConfigError(f"no session named {name!r}; see `modalgraph sessions list`")
    console = Console(highlight=False)
    for entry in snapshot.checkpoint["channel_values"].get("history") or []:
        who = "[bold green]you[/]" if entry["role"] == "user" else "[bold magenta]modalgraph[/]"
        console.print(f"{who} {escape(entry.get('text', ''))}")
        if entry.get("spoken"):  # the request was spoken: its text above is the transcript
            console.print(
                f"   [dim]spoken:[/] [blue]{entry['spoken']['mime']}[/] {escape(entry['spoken']['path'])}"
            )
        for item in entry.get("attachments", []) + entry.get("artifacts", []):
            console.print(f"   [blue]{item['mime']}[/] {escape(item['path'])}")


@sessions_app.command("delete")
def delete(name: str = typer.Argument(..., help="Session name.")) -> None:
    """Delete a session's history (generated files stay in the artifact store)."""
    if not _store().delete(name):
        raise ConfigError(f"no session named {name!r}; see `modalgraph sessions list`")
    typer.echo(f"deleted session {name}")
