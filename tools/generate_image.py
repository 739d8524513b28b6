"""generate_image: text to image with a latent diffusion pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Tool, ToolArgs, ToolResult
from tools.generation_args import Sampler, SizedGenerationArgs
from tools.pending import require_models_then_refuse

if TYPE_CHECKING:
    from agent.context import RunContext


class GenerateImageArgs(SizedGenerationArgs):
    negative_prompt: str | None = Field(None, description="What the image should not show")
    guidance: float | None = Field(None, ge=0.0, le=30.0, description="Classifier-free guidance scale")
    num_images: int = Field(1, ge=1, le=8)
    sampler: Sampler | None = Field(None, description="ddim, euler, euler_a, dpm++, lcm or pndm")


class GenerateImageTool(Tool):
    name = "generate_image"
    description = "Create a NEW picture from a text description (drawing, photo, painting, logo...)."
    args_model = GenerateImageArgs
    models = ("image-gen",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        return require_models_then_refuse(self.name, self.models, ctx)
