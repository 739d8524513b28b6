"""`modalgraph serve`: the web page (agent/web), on this machine only unless told otherwise."""

from __future__ import annotations

import typer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: str = typer.Option(
        DEFAULT_HOST, "--host", help="Address to listen on (default: this machine only)."
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a --host other machines can reach. The page has no login: anyone who reaches it "
        "can use the assistant and see your library.",
    ),
) -> None:
    """Open the web page: chat with inline images, audio and video, sessions, library, models."""
    from agent.context import AppContext  # deferred: imports pydantic-settings
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings
    from agent.turns import TurnRunner  # deferred: imports pydantic-settings
    from agent.web.serving import check_host, prepare_gradio_env  # deferred: imports pydantic-settings

    warning = check_host(host, allow_remote)  # before anything slow: a refusal is instant
    settings = load_settings()
    settings.ensure_data_dir()
    prepare_gradio_env(settings)  # before Gradio is imported
    app = AppContext(settings)
    runner = TurnRunner(app)
    runner.llm  # find the planner now, so that its errors surface here, not in the page  # noqa: B018
    runner.warm_up_in_background()  # while the page opens and the first message is typed
    if warning:
        typer.secho(warning, fg="yellow", err=True)

    from agent.web.app import launch  # deferred: imports gradio, pydantic-settings

    launch(app, runner, host, port)
