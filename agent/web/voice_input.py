"""The page's microphone: a recording becomes text in the input box, for the user to read and edit
before sending, and the recording itself goes with the turn that text is sent in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ToolInputError
from agent.spoken_requests import ProgressFn, heard_request
from agent.web.uploads import UploadRejectedError, accept_upload, check_uploaded

if TYPE_CHECKING:
    from agent.context import AppContext
    from memory.artifacts import Artifact


def box_with_transcript(box: dict[str, Any] | None, text: str) -> dict[str, Any]:
    """The input box's value with `text` in it: after what was already typed, attachments kept."""
    typed = str((box or {}).get("text") or "").strip()
    return {"text": f"{typed} {text}" if typed else text, "files": list((box or {}).get("files") or [])}


def hear_recording(
    app: AppContext,
    recorded: str | None,
    box: dict[str, Any] | None,
    max_bytes: int,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, Any], Artifact]:
    """(the input box's new value, the stored recording) for a microphone recording at `recorded`,
    a file in the page's upload cache. Raises with one line when nothing can be heard in it."""
    if not recorded:
        raise ToolInputError("nothing was recorded: allow the microphone, then press record and speak")
    stored = accept_upload(check_uploaded(recorded, app.settings.web_cache_dir), app.artifacts, max_bytes)
    if stored.kind != "audio":
        raise UploadRejectedError(f"the recording {Path(recorded).name} is not audio")
    spoken = heard_request(app, Path(stored.path), progress, mime=stored.mime)
    return box_with_transcript(box, spoken.text), spoken.audio
