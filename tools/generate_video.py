"""generate_video: text to a short video clip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Tool, ToolArgs, ToolResult
from tools.generation_args import SizedGenerationArgs
from tools.pending import require_models_then_refuse

if TYPE_CHECKING:
    from agent.context import RunContext


class GenerateVideoArgs(SizedGenerationArgs):
    frames: int = Field(16, ge=1, le=128, description="Number of frames")
    fps: int = Field(8, ge=1, le=60, description="Frames per second")
    upscale: bool = Field(False, description="Run the XL upscale pass")


class GenerateVideoTool(Tool):
    name = "generate_video"
    description = "Create a NEW short video clip (animation, moving scene) from a text description."
    args_model = GenerateVideoArgs
    models = ("video-gen",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        return require_models_then_refuse(self.name, self.models, ctx)
