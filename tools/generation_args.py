"""Argument checks shared by the generators: bad values are refused before any model loads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tools.base import ToolArgs

SAMPLERS = ("ddim", "euler", "euler_a", "dpm++", "lcm", "pndm")
Sampler = Literal["ddim", "euler", "euler_a", "dpm++", "lcm", "pndm"]
Conditioning = Literal["text", "projector"]


class GenerationArgs(ToolArgs):
    prompt: str = Field(min_length=1, description="What to generate, in plain words")
    steps: int | None = Field(None, ge=1, le=500, description="Denoising steps; omit for the model default")
    seed: int | None = Field(None, ge=0, description="Random seed, for a reproducible result")
    conditioning: Conditioning = Field("text", description="text (default) or projector")


def multiple_of_8(value: int | None) -> int | None:
    if value is not None and value % 8:
        raise ValueError(f"{value} is not a multiple of 8")
    return value


class SizedGenerationArgs(GenerationArgs):
    width: int | None = Field(None, ge=64, le=2048, description="Pixels, a multiple of 8")
    height: int | None = Field(None, ge=64, le=2048, description="Pixels, a multiple of 8")

    _check_width = field_validator("width", "height")(multiple_of_8)
