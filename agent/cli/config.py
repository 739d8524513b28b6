"""`modalgraph config show`: the settings in force and where each came from."""

from __future__ import annotations

import typer

config_app = typer.Typer(help="Show the settings in force.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("show")
def show() -> None:
    """Each setting, its value, and whether it came from the environment, the file or the default."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from agent.cli.mcp_status import print_mcp_servers
    from agent.core.settings import (
        config_file_path,
        describe_sources,
        load_settings,
    )  # deferred: imports pydantic-settings

    settings = load_settings()
    table = Table(title=f"config file: {config_file_path()}")
    for column in ("setting", "value", "from"):
        table.add_column(column, overflow="fold")
    for name, value, origin in describe_sources(settings):
        table.add_row(name, escape(value), origin)
    console = Console()
    console.print(table)
    print_mcp_servers(settings, console)
