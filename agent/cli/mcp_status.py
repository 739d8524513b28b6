"""The configured MCP servers and whether each answers, for `models list` and `config show`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from agent.core.settings import Settings


def print_mcp_servers(settings: Settings, console: Console) -> None:
    """One row per server: reached with its tools, or unavailable with the reason (nothing when
    none is configured, so the commands cost nothing more for everyone else)."""
    if not settings.mcp_servers:
        return
    from rich.markup import escape
    from rich.table import Table

    from tools.remote.connections import RemoteServers  # deferred: imports the mcp SDK on use

    servers = RemoteServers(settings.mcp_servers, settings.data_dir / "mcp-logs")
    try:
        servers.connect()
        table = Table(title="MCP servers (mcp_servers)")
        for column in ("name", "where", "available", "tools or reason"):
            table.add_column(column, overflow="fold")
        for name, state in servers.states.items():
            if state.up:
                tools = ", ".join(f"{name}__{tool.name}" for tool in state.tools)
                table.add_row(name, escape(state.spec.where()), "[green]yes[/]", escape(tools))
            else:
                table.add_row(name, escape(state.spec.where()), "[red]no[/]", escape(state.problem or ""))
        console.print(table)
    finally:
        servers.close()
