"""`modalgraph serve`: the web page (agent/web), on this machine only unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from agent.core.text import shown_path

if TYPE_CHECKING:
    from agent.context import AppContext
    from memory.image_index import IndexReport
    from memory.library_watch import LibraryWatcher

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
    runner.warm_up_in_background(places=True)  # while the page opens and the first message is typed
    if warning:
        typer.secho(warning, fg="yellow", err=True)
    watcher = start_library_watch(app, lambda line: typer.secho(line, fg="yellow", err=True))

    from agent.web.app import launch  # deferred: imports gradio, pydantic-settings

    try:
        launch(app, runner, host, port)
    finally:
        if watcher is not None:
            watcher.stop()
            watcher.index.close()


def start_library_watch(app: AppContext, say: Callable[[str], None]) -> LibraryWatcher | None:
    """With the `watch_library` setting, a background thread that keeps the index of every indexed
    folder current while the page is served (one catch-up pass first); else, or with no folder
    indexed yet, None. It has its own connection to the manifest: the page's searches keep theirs."""
    if not app.settings.watch_library:
        return None
    from memory.image_index import ImageIndex
    from memory.library_watch import LibraryWatcher

    index = ImageIndex(app.settings, app.image_index.encoders)
    if not index.manifest.roots():
        say("watch_library is on, but no folder is indexed yet: run `modalgraph index FOLDER`")
        index.close()
        return None

    def on_report(report: IndexReport) -> None:
        changed = report.embedded + report.reused + report.removed
        if changed:
            say(
                f"library: {report.embedded} embedded, {report.reused} moved or renamed, {report.removed} removed"
            )
        for folder in report.missing_roots:
            say(f"library: folder missing or empty, records kept: {shown_path(folder)}")
        for folder, reason in report.unreadable_dirs:
            say(f"library: cannot read folder {shown_path(folder)}: {reason}")
        if report.vanished:
            say(f"library: {len(report.vanished)} file(s) gone before they could be read")

    watcher = LibraryWatcher(index, on_report=on_report, on_message=lambda line: say(f"library: {line}"))
    say("watching the library: " + ", ".join(shown_path(f) for f in watcher.folders))
    watcher.start()
    return watcher
