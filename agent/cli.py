"""The `modalgraph` command. Each command group lives in its own `cli_*` module; all import lazily."""

from __future__ import annotations

import sys

import typer

from agent import cli_chat, cli_config, cli_library, cli_models, cli_projector, cli_serve, cli_sessions

app = typer.Typer(
    name="modalgraph",
    help="A local multimodal assistant: chat, search your own photos, generate images, video and sound.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (cli_chat, cli_sessions, cli_models, cli_library, cli_projector, cli_config, cli_serve):
    module.register(app)


def main() -> None:
    """Entry point: user-fixable errors print one line and exit non-zero, never a traceback."""
    import click

    from agent.errors import ModalgraphError

    try:
        # Without standalone mode click returns (rather than raises) the code of a typer.Exit.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except ModalgraphError as exc:
        from agent.errors import one_line

        typer.secho(f"error: {one_line(exc)}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("cancelled", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("cancelled", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
