"""generate_audio: text to a sound effect or music clip (AudioLDM, or AudioLDM 2 when the model is one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

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
    GenerationArgs,
    conditioning_meta,
    pick_seed,
    prompt_kwargs,
    reproduction_meta,
)

if TYPE_CHECKING:
    from tools.context import RunContext

DEFAULT_STEPS = 25


class GenerateAudioArgs(GenerationArgs):
    duration: float = Field(5.0, gt=0.0, le=60.0, description="Seconds of audio")


class GenerateAudioTool(Tool):
    name = "generate_audio"
    action = "make the sound"
    description = "Create a NEW sound effect, ambience or music clip from a text description (not speech)."
    args_model = GenerateAudioArgs
    models = ("audio-gen",)
    # Attention slicing is an image-pipeline helper; AudioLDM's small U-Net does not need it.
    policy: ClassVar[DevicePolicy] = DevicePolicy(attention_slicing=False)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        from tools.media_encoding import wav_bytes  # deferred: imports numpy

        assert isinstance(args, GenerateAudioArgs)
        prompt = prompt_kwargs(args, ctx, "audio", choose_placement(ctx.settings, self.policy))
        loaded = load_pipeline(ctx.app, "audio-gen", self.policy)
        steps = args.steps or DEFAULT_STEPS
        seed = pick_seed(args.seed)
        audio = denoise(
            loaded,
            ctx,
            steps,
            **prompt,
            audio_length_in_s=args.duration,
            generator=seeded_generator(seed),
            output_type="np",
        ).audios[0]
        rate = int(loaded.pipe.vocoder.config.sampling_rate)
        meta = reproduction_meta(
            "audio-gen",
            loaded.model_id,
            seed,
            steps,
            sampler=sampler_name(loaded.pipe.scheduler),
            duration=round(len(audio) / rate, 3),
            sample_rate=rate,
            prompt=args.prompt,
            **conditioning_meta(args, ctx, "audio"),
        )
        artifact = ctx.app.artifacts.put_bytes(wav_bytes(audio, rate), ".wav", "audio/wav", **meta)
        text = (
            f"made {meta['duration']} s of sound at {rate} Hz with {loaded.model_id} "
            f"({steps} steps, seed {seed})"
        )
        return ToolResult(text=text, artifacts=[artifact], data=meta)
