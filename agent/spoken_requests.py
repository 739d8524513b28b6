"""Requests spoken rather than typed, shared by the CLI (`ask --audio`, `/voice`) and the page's
microphone: the recording is transcribed, the transcript becomes the request's text, and the
recording stays with the turn as a reference (graphs.state's `spoken`), never as bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ToolInputError
from memory.artifacts import Artifact, guess_mime

if TYPE_CHECKING:
    from agent.asr import Transcript
    from agent.context import AppContext

ProgressFn = Callable[[str, float | None], None]


@dataclass
class SpokenRequest:
    text: str
    audio: Artifact  # the recording; its meta names the engine that heard it
    transcript: Transcript

    def heard_line(self) -> str:
        """What the user sees before planning: `heard (pocketsphinx): "draw a cat"`."""
        return f'heard ({self.transcript.engine}): "{self.text}"'

    def json(self) -> dict[str, object]:
        """The `ask --json` "spoken" entry."""
        return {
            "path": self.audio.path,
            "mime": self.audio.mime,
            "transcript": self.text,
            "engine": self.transcript.engine,
            "model": self.transcript.model,
        }


def recording_artifact(path: Path, transcript: Transcript, mime: str | None = None) -> Artifact:
    """The reference a turn keeps to the recording its request was spoken in."""
    return Artifact(
        path=str(path),
        mime=mime or guess_mime(path),
        meta={"transcript_engine": transcript.engine, "transcript_model": transcript.model},
    )


def heard_request(
    app: AppContext,
    path: Path,
    progress: ProgressFn | None = None,
    language: str | None = None,
    mime: str | None = None,
) -> SpokenRequest:
    """The request spoken in the recording at `path`. A recording with no words in it is a clear
    error: an empty request has nothing to plan."""
    from agent.asr import transcribe_file  # deferred: imports numpy and the speech engines

    transcript = transcribe_file(app, path, language, progress=progress, cancelled=app.cancel.is_set)
    text = " ".join(transcript.text.split())
    if not text:
        raise ToolInputError(
            f"no words were heard in {path.name} ({transcript.engine}); record the request again, "
            "closer to the microphone, or type it"
        )
    return SpokenRequest(text, recording_artifact(path, transcript, mime), transcript)
