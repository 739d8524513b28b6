"""The `modalgraph` command. Each command group lives in its own module beside this one; all import lazily."""

from __future__ import annotations

import sys

import typer

from agent.cli import chat, config, library, mcp_server, models, projector, serve, sessions
from agent.core.errors import ModalgraphError, one_line

app = typer.Typer(
    name="modalgraph",
    help="A local multimodal assistant: chat, search your own photos, generate images, video and sound.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (chat, sessions, models, library, projector, config, serve, mcp_server):
    module.register(app)


def _usage_line(exc: typer.TyperException) -> str:
    """A usage error as one line, naming the command whose --help explains it."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {exc.format_message()}{hint}"


def main() -> None:
    """Entry point: user-fixable errors print one line and exit non-zero, never a traceback.

    typer (0.29 and later) bundles its own click, so its usage errors are `typer.TyperException`
    subclasses, not the `click` package's: catching click's classes would miss every one of them.
    """
    try:
        # Without standalone mode typer returns (rather than raises) the code of a typer.Exit.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except ModalgraphError as exc:
        typer.secho(f"error: {one_line(exc)}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("cancelled", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        if "\n" in exc.format_message():  # `modalgraph GROUP` with no command: its help, as asked
            typer.echo(exc.format_message(), err=True)
        else:
            typer.secho(_usage_line(exc), fg="red", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
