"""speak: read text aloud into an audio file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Tool, ToolArgs, ToolResult
from tools.pending import require_models_then_refuse

if TYPE_CHECKING:
    from agent.context import RunContext


class SpeakArgs(ToolArgs):
    text: str = Field(
        min_length=1, description="The words to say, or <step-N> to read an earlier step's text"
    )
    voice: str | None = Field(None, description="Voice name; omit for the default")
    rate: float = Field(1.0, ge=0.25, le=4.0, description="Speed: 1.0 normal, 0.8 slower, 1.3 faster")


class SpeakTool(Tool):
    name = "speak"
    description = "Read text ALOUD as speech (text-to-speech). Use when the user wants to hear words spoken."
    args_model = SpeakArgs
    models = ("tts",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        return require_models_then_refuse(self.name, self.models, ctx)
