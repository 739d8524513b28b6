"""Argument checks shared by the generators: bad values are refused before any model loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from tools.base import ToolArgs

if TYPE_CHECKING:
    from agent.generation.pipelines import Placement
    from tools.context import RunContext

SAMPLERS = ("ddim", "euler", "euler_a", "dpm++", "lcm", "pndm")
Sampler = Literal["ddim", "euler", "euler_a", "dpm++", "lcm", "pndm"]
Conditioning = Literal["text", "projector"]
# PNDM warms up with Runge-Kutta steps and breaks below this many.
SAMPLER_MIN_STEPS = {"pndm": 4}


class GenerationArgs(ToolArgs):
    prompt: str = Field(min_length=1, description="What to generate, in plain words")
    steps: int | None = Field(None, ge=1, le=500, description="Denoising steps; omit for the model default")
    seed: int | None = Field(None, ge=0, lt=2**32, description="Random seed, for a reproducible result")
    conditioning: Conditioning = Field("text", description="text (default) or projector")


def multiple_of_8(value: int | None) -> int | None:
    if value is not None and value % 8:
        raise ValueError(f"{value} is not a multiple of 8")
    return value


class SizedGenerationArgs(GenerationArgs):
    width: int | None = Field(None, ge=64, le=2048, description="Pixels, a multiple of 8")
    height: int | None = Field(None, ge=64, le=2048, description="Pixels, a multiple of 8")

    _check_width = field_validator("width", "height")(multiple_of_8)


def prompt_kwargs(
    args: GenerationArgs, ctx: RunContext, modality: str, placement: Placement
) -> dict[str, Any]:
    """The pipeline's prompt: `prompt=` as text, or `prompt_embeds=` through the output projector.

    Called before the generator loads, so a missing or mismatched projector is reported at once.
    """
    if args.conditioning == "text":
        return {"prompt": args.prompt}
    from agent.projector.conditioning import projector_prompt_embeds  # deferred: imports torch, langchain

    ctx.progress("reading the request through the LLM and the output projector", None)
    embeds = projector_prompt_embeds(
        ctx.app, modality, args.prompt, dtype=placement.dtype, device=placement.device
    )
    return {"prompt_embeds": embeds}


def conditioning_meta(args: GenerationArgs, ctx: RunContext, modality: str) -> dict[str, object]:
    """What artifacts record about conditioning=projector (nothing for plain text, as before)."""
    if args.conditioning == "text":
        return {}
    return {"conditioning": "projector", "projector": str(ctx.settings.projector_dir(modality))}


def pick_seed(seed: int | None) -> int:
    """The requested seed, or a fresh random one; either way it is recorded so the output can be redone."""
    import secrets

    return seed if seed is not None else secrets.randbelow(2**32)


def reproduction_meta(model: str, model_id: str, seed: int, steps: int, **more: object) -> dict[str, object]:
    """What a step's artifacts and data record: enough to make the same file again."""
    return {"model": model, "model_id": model_id, "seed": seed, "steps": steps, **more}


def check_sampler_steps(args: Any) -> Any:
    """A sampler that cannot run with so few steps is refused now, not halfway through a load."""
    need = SAMPLER_MIN_STEPS.get(args.sampler or "")
    if need and args.steps is not None and args.steps < need:
        raise ValueError(f"sampler {args.sampler} needs at least {need} steps, not {args.steps}")
    return args
