"""generate_video: text to a short clip (Zeroscope), with an optional XL upscale pass."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from agent.generation.pipelines import (
    DevicePolicy,
    choose_placement,
    denoise,
    load_pipeline,
    seeded_generator,
)
from agent.generation.samplers import sampler_name
from tools.base import Tool, ToolArgs, ToolResult
from tools.generation_args import (
    SizedGenerationArgs,
    conditioning_meta,
    pick_seed,
    prompt_kwargs,
    reproduction_meta,
)

if TYPE_CHECKING:
    from tools.context import RunContext

DEFAULT_STEPS = 25
# zeroscope_v2_XL's recipe: resize the 576x320 draft to 1024x576, then denoise it part of the way.
UPSCALE_FACTOR = 16 / 9
UPSCALE_STRENGTH = 0.6


class GenerateVideoArgs(SizedGenerationArgs):
    frames: int = Field(16, ge=1, le=128, description="Number of frames")
    fps: int = Field(8, ge=1, le=60, description="Frames per second")
    upscale: bool = Field(False, description="Run the XL upscale pass")


def upscaled_size(width: int, height: int) -> tuple[int, int]:
    """576x320 -> 1024x576, rounded up to multiples of 8 as the VAE needs."""
    return tuple(math.ceil(side * UPSCALE_FACTOR / 8) * 8 for side in (width, height))  # type: ignore[return-value]


class GenerateVideoTool(Tool):
    name = "generate_video"
    action = "make the video"
    description = "Create a NEW short video clip (animation, moving scene) from a text description."
    args_model = GenerateVideoArgs
    models = ("video-gen",)
    policy: ClassVar[DevicePolicy] = DevicePolicy()

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        from tools.media_encoding import video_bytes  # deferred: imports numpy

        assert isinstance(args, GenerateVideoArgs)
        # Resolve both models first: a missing upscaler is reported before minutes of drafting.
        if args.upscale:
            ctx.app.catalogue.resolve("video-upscale")
        prompt = prompt_kwargs(args, ctx, "video", choose_placement(ctx.settings, self.policy))
        loaded = load_pipeline(ctx.app, "video-gen", self.policy)
        steps = args.steps or DEFAULT_STEPS
        seed = pick_seed(args.seed)
        frames: Any = denoise(
            loaded,
            ctx,
            steps,
            **prompt,
            width=args.width,
            height=args.height,
            num_frames=args.frames,
            generator=seeded_generator(seed),
            output_type="np",
        ).frames[0]
        meta: dict[str, object] = reproduction_meta(
            "video-gen",
            loaded.model_id,
            seed,
            steps,
            sampler=sampler_name(loaded.pipe.scheduler),
            **conditioning_meta(args, ctx, "video"),
        )
        if args.upscale:
            frames = self._upscale(frames, args, seed, steps, ctx)
            meta.update(
                upscale_model_id=ctx.app.catalogue.model_id("video-upscale"),
                upscale_strength=UPSCALE_STRENGTH,
            )
        count, height, width = frames.shape[:3]
        data, suffix, mime = video_bytes(frames, args.fps)
        meta.update(
            width=int(width),
            height=int(height),
            frames=int(count),
            fps=args.fps,
            upscale=args.upscale,
            prompt=args.prompt,
        )
        artifact = ctx.app.artifacts.put_bytes(data, suffix, mime, **meta)
        text = (
            f"made a {count}-frame {width}x{height} clip at {args.fps} fps ({suffix[1:]}) with "
            f"{loaded.model_id} ({steps} steps, seed {seed}{', upscaled' if args.upscale else ''})"
        )
        return ToolResult(text=text, artifacts=[artifact], data=meta)

    def _upscale(self, frames: Any, args: GenerateVideoArgs, seed: int, steps: int, ctx: RunContext) -> Any:
        from PIL import Image

        from tools.media_encoding import to_uint8  # deferred: imports numpy

        # The draft model can be evicted here if the budget cannot hold both. The upscaler reads the
        # prompt as text even under conditioning=projector: its text encoder is not the one trained for.
        loaded = load_pipeline(ctx.app, "video-upscale", self.policy)
        height, width = frames.shape[1:3]
        size = upscaled_size(width, height)
        video = [Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS) for frame in to_uint8(frames)]
        ctx.progress("upscaling", None)
        return denoise(
            loaded,
            ctx,
            steps,
            progress_total=max(1, int(steps * UPSCALE_STRENGTH)),
            prompt=args.prompt,
            video=video,
            strength=UPSCALE_STRENGTH,
            generator=seeded_generator(seed),
            output_type="np",
        ).frames[0]
