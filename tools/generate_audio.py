"""generate_audio: text to a sound effect or music clip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Tool, ToolArgs, ToolResult
from tools.generation_args import GenerationArgs
from tools.pending import require_models_then_refuse

if TYPE_CHECKING:
    from agent.context import RunContext


class GenerateAudioArgs(GenerationArgs):
    duration: float = Field(5.0, gt=0.0, le=60.0, description="Seconds of audio")


class GenerateAudioTool(Tool):
    name = "generate_audio"
    description = "Create a NEW sound effect, ambience or music clip from a text description (not speech)."
    args_model = GenerateAudioArgs
    models = ("audio-gen",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        return require_models_then_refuse(self.name, self.models, ctx)
