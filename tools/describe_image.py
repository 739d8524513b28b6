"""describe_image: caption an image or answer a question about it (LLaVA), or, with no vlm weights,
guess a label with CLIP and say plainly that it is only a guess."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from agent.core.errors import ModelMissingError, ToolInputError
from agent.core.text import shorten
from agent.vision.clip_encoder import load_clip_encoder
from agent.vision.vlm import describe
from agent.vision.zero_shot import label_guess_text, rank_labels
from memory.artifacts import guess_mime
from memory.image_files import ImageDecodeError, decode_image
from tools.base import Tool, ToolArgs, ToolResult

if TYPE_CHECKING:
    from PIL import Image

    from tools.context import RunContext

# Bigger files are not photos anyone means to describe, and reading them would cost the memory.
MAX_IMAGE_BYTES = 256 * 2**20
# The decoded image is shrunk early to about this shorter side; VLM processors resize to 336-768.
DECODE_MIN_SIDE = 768
_NOT_IMAGE_KINDS = ("text", "audio", "video")


class DescribeImageArgs(ToolArgs):
    image: str = Field(
        description="Path of the image, or <step-N> for an image an earlier step found or made"
    )
    question: str | None = Field(None, description="A question about the image; omit for a caption")


def open_image(path: Path) -> Image.Image:
    """The image at `path` as upright RGB, or a ToolInputError saying why the file is not one."""

    mime = guess_mime(path)
    if mime.split("/", 1)[0] in _NOT_IMAGE_KINDS:
        raise ToolInputError(
            f"{path.name} is not an image ({mime}); describe_image reads photos and pictures"
        )
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ToolInputError(f"{path.name} is {size / 2**20:.0f} MB, too large to read as an image")
    try:
        return decode_image(path.read_bytes(), min_side=DECODE_MIN_SIDE).image
    except ImageDecodeError as exc:
        raise ToolInputError(f"{path.name} cannot be used as an image: {exc}") from None
    except OSError as exc:
        raise ToolInputError(f"cannot read {path}: {exc.strerror or exc}") from None


class DescribeImageTool(Tool):
    name = "describe_image"
    action = "look at the image"
    description = (
        "Look at ONE image and describe it or answer a question about it. Use for an attached image, or "
        'after search_images/generate_image with image="<step-N>".'
    )
    args_model = DescribeImageArgs
    requires = ("transformers", "torch", "PIL")
    models = ("vlm",)
    artifact_inputs = ("image",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        assert isinstance(args, DescribeImageArgs)

        path = ctx.resolve_path(args.image)
        image = open_image(path)
        ctx.progress(f"looking at {path.name}", None)
        try:
            answer = describe(ctx.app, image, args.question, cancelled=lambda: ctx.cancelled)
        except ModelMissingError as missing:
            return self._label_guess(ctx, path, image, args.question, missing)
        what = f"Answer to {shorten(args.question, 80)!r} about {path.name}" if args.question else path.name
        text = f"{what} ({answer.model}, {answer.backend}): {answer.text or '(the model gave no answer)'}"
        if answer.truncated:
            text += " (The question was longer than the model's context allows; only its start was used.)"
        data = {
            "backend": answer.backend,
            "model": answer.model,
            "image": str(path),
            "seconds": round(answer.seconds, 2),
            "question_truncated": answer.truncated,
        }
        note = (
            f"(The description of {path.name} is a CLIP label guess, not a description: no vlm is installed;"
            " `modalgraph models pull vlm` fixes that.)"
        )
        return ToolResult(text=text, data=data, note=note)

    def _label_guess(
        self,
        ctx: RunContext,
        path: Path,
        image: Image.Image,
        question: str | None,
        missing: ModelMissingError,
    ) -> ToolResult:
        try:
            encoder = load_clip_encoder(ctx.app)
        except ModelMissingError:
            raise ModelMissingError(
                f"{missing}; without it describe_image falls back to CLIP label guesses, but CLIP is not "
                "present either (run `modalgraph models pull clip`)"
            ) from None
        ctx.progress("no vlm present: guessing a label with CLIP", None)
        scores = rank_labels(encoder, [image])[0]
        text = f"{path.name}: " + label_guess_text(scores, question, ctx.app.catalogue.model_id("clip"))
        data = {
            "backend": "clip-zero-shot",
            "model": ctx.app.catalogue.model_id("clip"),
            "image": str(path),
            "labels": [{"label": s.label.text, "probability": round(s.probability, 4)} for s in scores],
        }
        note = (
            f"(The description of {path.name} is a CLIP label guess, not a description: no vlm is installed;"
            " `modalgraph models pull vlm` fixes that.)"
        )
        return ToolResult(text=text, data=data, note=note)
