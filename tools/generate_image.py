"""generate_image: text to image with a latent diffusion pipeline (Stable Diffusion, SD-Turbo, SDXL...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

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
    Sampler,
    SizedGenerationArgs,
    check_sampler_steps,
    conditioning_meta,
    pick_seed,
    prompt_kwargs,
    reproduction_meta,
)

if TYPE_CHECKING:
    from tools.context import RunContext

# Distilled (turbo) models are trained for a few steps without classifier-free guidance.
TURBO_STEPS, TURBO_GUIDANCE = 4, 0.0
DEFAULT_STEPS = 25


class GenerateImageArgs(SizedGenerationArgs):
    negative_prompt: str | None = Field(None, description="What the image should not show")
    guidance: float | None = Field(None, ge=0.0, le=30.0, description="Classifier-free guidance scale")
    num_images: int = Field(1, ge=1, le=8)
    sampler: Sampler | None = Field(None, description="ddim, euler, euler_a, dpm++, lcm or pndm")

    _check_sampler_steps = model_validator(mode="after")(check_sampler_steps)


class GenerateImageTool(Tool):
    name = "generate_image"
    action = "make the picture"
    description = "Create a NEW picture from a text description (drawing, photo, painting, logo...)."
    args_model = GenerateImageArgs
    models = ("image-gen",)
    policy: ClassVar[DevicePolicy] = DevicePolicy()

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        from tools.media_encoding import png_bytes  # deferred: imports numpy

        assert isinstance(args, GenerateImageArgs)
        prompt = prompt_kwargs(args, ctx, "image", choose_placement(ctx.settings, self.policy))
        loaded = load_pipeline(ctx.app, "image-gen", self.policy)
        turbo = "turbo" in loaded.model_id.lower()
        steps = args.steps or (TURBO_STEPS if turbo else DEFAULT_STEPS)
        seed = pick_seed(args.seed)
        guidance = TURBO_GUIDANCE if args.guidance is None and turbo else args.guidance
        extra = {} if guidance is None else {"guidance_scale": guidance}
        output = denoise(
            loaded,
            ctx,
            steps,
            sampler=args.sampler,
            **prompt,
            negative_prompt=args.negative_prompt,
            width=args.width,
            height=args.height,
            num_images_per_prompt=args.num_images,
            generator=seeded_generator(seed),
            output_type="np",
            **extra,
        )
        images = output.images
        height, width = images.shape[1:3]
        flagged = [bool(x) for x in (getattr(output, "nsfw_content_detected", None) or [])]
        meta = reproduction_meta(
            "image-gen",
            loaded.model_id,
            seed,
            steps,
            sampler=sampler_name(loaded.pipe.scheduler),
            width=int(width),
            height=int(height),
            guidance=extra.get("guidance_scale"),
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            **conditioning_meta(args, ctx, "image"),
        )
        artifacts = [
            ctx.app.artifacts.put_bytes(png_bytes(image), ".png", "image/png", **meta, index=i)
            for i, image in enumerate(images)
        ]
        text = (
            f"made {len(artifacts)} image(s), {width}x{height}, with {loaded.model_id} "
            f"({meta['sampler']}, {steps} steps, seed {seed}"
            f"{', conditioned through the output projector' if 'projector' in meta else ''})"
        )
        if any(flagged):
            text += f"; the safety checker blanked {sum(flagged)} of them"
        return ToolResult(text=text, artifacts=artifacts, data={**meta, "nsfw": flagged})
