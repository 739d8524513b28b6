"""`ask --audio FILE` and `/voice FILE`: the request is transcribed first and the transcript shown,
with the engine that heard it, so a misheard request is visible before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.spoken_requests import SpokenRequest, heard_request

if TYPE_CHECKING:
    from agent.context import AppContext


def spoken_from_file(app: AppContext, path: Path, console: object | None) -> SpokenRequest:
    """The request spoken in `path` (a checked attachment), transcribed with progress on `console`
    (None: quietly), and the transcript shown there before anything is planned."""
    if console is None:
        return heard_request(app, path)
    from rich.markup import escape

    with console.status(f"listening to {escape(path.name)}…") as status:  # type: ignore[attr-defined]

        def progress(message: str, fraction: float | None = None) -> None:
            done = f" {fraction:.0%}" if fraction is not None else ""
            status.update(f"listening to {escape(path.name)}: {escape(message)}{done}")

        spoken = heard_request(app, path, progress)
    console.print(f"[cyan]{escape(spoken.heard_line())}[/]", soft_wrap=True)  # type: ignore[attr-defined]
    if spoken.transcript.note:
        console.print(f"[dim]{escape(spoken.transcript.note)}[/]")  # type: ignore[attr-defined]
    return spoken
