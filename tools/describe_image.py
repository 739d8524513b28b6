"""describe_image: caption an image or answer a question about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Tool, ToolArgs, ToolResult
from tools.pending import require_models_then_refuse

if TYPE_CHECKING:
    from agent.context import RunContext


class DescribeImageArgs(ToolArgs):
    image: str = Field(
        description="Path of the image, or <step-N> for an image an earlier step found or made"
    )
    question: str | None = Field(None, description="A question about the image; omit for a caption")


class DescribeImageTool(Tool):
    name = "describe_image"
    description = (
        "Look at ONE image and describe it or answer a question about it. Use for an attached image, or "
        'after search_images/generate_image with image="<step-N>".'
    )
    args_model = DescribeImageArgs
    models = ("vlm",)
    artifact_inputs = ("image",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        return require_models_then_refuse(self.name, self.models, ctx)
