"""transcribe: turn the speech in an audio file into text (Whisper, else PocketSphinx offline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from agent.asr import transcribe_file
from tools.base import Tool, ToolArgs, ToolResult

if TYPE_CHECKING:
    from tools.context import RunContext


class TranscribeArgs(ToolArgs):
    audio: str = Field(
        description="Path of the audio file (recording, voice memo), or <step-N> for audio an earlier step made"
    )
    language: str | None = Field(
        None, description="The spoken language as a code such as en or fr; omit to detect it"
    )


class TranscribeTool(Tool):
    name = "transcribe"
    action = "transcribe the recording"
    description = (
        "Turn the SPEECH in an audio file, recording or voice memo into text (speech-to-text). Use for an "
        "attached audio file; chain its text into other steps with <step-N>."
    )
    args_model = TranscribeArgs
    requires = ("soundfile", "soxr", "numpy")
    # Not in `models`: without Whisper weights PocketSphinx still transcribes (English), so they are
    # not fatal; the step says so.
    artifact_inputs = ("audio",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        assert isinstance(args, TranscribeArgs)

        path = ctx.resolve_path(args.audio)
        ctx.progress(f"listening to {path.name}", None)
        transcript = transcribe_file(
            ctx.app, path, args.language, progress=ctx.progress, cancelled=lambda: ctx.cancelled
        )
        text = transcript.text or (
            f"No speech found in the recording {path.name} ({transcript.audio_seconds:.1f} s): "
            "the transcript is empty."
        )
        data = {
            "engine": transcript.engine,
            "model": transcript.model,
            "language": transcript.language,
            "audio": str(path),
            "audio_seconds": transcript.audio_seconds,
            "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments],
        }
        note = f"(Transcribed by {transcript.engine}, model {transcript.model}.)"
        if transcript.note:
            note = f"({transcript.note})"
        return ToolResult(text=text, data=data, note=note)
