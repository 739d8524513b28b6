"""speak: read text aloud into an audio file (edge-tts, else Piper, else espeak-ng)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from agent.tts import speak_text
from tools.base import Tool, ToolArgs, ToolResult

if TYPE_CHECKING:
    from tools.context import RunContext


class SpeakArgs(ToolArgs):
    text: str = Field(
        min_length=1, description="The words to say, or <step-N> to read an earlier step's text"
    )
    voice: str | None = Field(None, description="Voice name; omit for the default")
    rate: float = Field(1.0, ge=0.25, le=4.0, description="Speed: 1.0 normal, 0.8 slower, 1.3 faster")


class SpeakTool(Tool):
    name = "speak"
    action = "read it aloud"
    description = "Read text ALOUD as speech (text-to-speech). Use when the user wants to hear words spoken."
    args_model = SpeakArgs
    # Not in `models`: edge-tts and espeak-ng need no weights, so a missing Piper voice is not fatal.

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        assert isinstance(args, SpeakArgs)

        ctx.progress(f"speaking {len(args.text):,} characters", None)
        spoken = speak_text(
            ctx.app, args.text, args.voice, args.rate, progress=ctx.progress, cancelled=lambda: ctx.cancelled
        )
        data = {
            "engine": spoken.output.engine,
            "voice": spoken.output.voice,
            "audio_seconds": round(spoken.output.seconds, 2),
            "sample_rate": spoken.output.sample_rate,
            "chunks": spoken.chunks,
            "skipped": spoken.skipped,
        }
        note = f"(Spoken by {spoken.output.engine}, voice {spoken.output.voice}.)"
        return ToolResult(text=spoken.summary(), artifacts=[spoken.artifact], data=data, note=note)
