"""The generators' device policy, memory budget, OOM recovery and a chat turn that uses two of them."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.generation.pipelines import (
    DevicePolicy,
    GeneratorOutOfMemoryError,
    Placement,
    choose_placement,
    oom_message,
)
from agent.generation.samplers import SCHEDULER_CLASSES, make_scheduler, sampler_name
from agent.models.cache import ModelCache
from tests.generation_fixtures import run_ctx
from tools.generate_audio import GenerateAudioArgs, GenerateAudioTool
from tools.generate_image import GenerateImageArgs, GenerateImageTool
from tools.generate_video import GenerateVideoArgs, GenerateVideoTool


def test_auto_picks_cuda_and_float16_when_cuda_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    placement = choose_placement(load_settings(cpu_offload=True), DevicePolicy())
    assert (placement.device, placement.dtype, placement.cpu_offload) == ("cuda", torch.float16, True)
    assert placement.pool == "cpu"  # offloaded weights rest in RAM
    pinned = choose_placement(load_settings(cpu_offload=True), DevicePolicy(offload=False))
    assert (pinned.cpu_offload, pinned.pool) == (False, "cuda")


def test_auto_on_a_cpu_machine_is_float32_without_offload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    settings = load_settings(cpu_offload=True, attention_slicing=True, vae_tiling=True)
    placement = choose_placement(settings, DevicePolicy())
    assert (placement.device, placement.dtype, placement.cpu_offload) == ("cpu", torch.float32, False)
    assert placement.attention_slicing and placement.vae_tiling and placement.safety_checker
    assert not choose_placement(settings, DevicePolicy(attention_slicing=False)).attention_slicing


def test_explicit_dtype_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_placement(load_settings(dtype="bfloat16"), DevicePolicy()).dtype == torch.bfloat16


def test_samplers_map_to_their_scheduler_classes() -> None:
    from diffusers import EulerDiscreteScheduler

    base = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    for name, cls_name in SCHEDULER_CLASSES.items():
        made = make_scheduler(name, base)
        assert type(made).__name__ == cls_name and sampler_name(made) == name
        assert made.config.beta_schedule == "scaled_linear"  # the model's schedule is kept
    assert make_scheduler(None, base) is not base
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("karras", base)


def test_budget_evicts_earlier_generators(gen_app: AppContext) -> None:
    """SD, then the video model, then AudioLDM, with room for one: the earlier ones are evicted."""
    cache = ModelCache(budget_bytes=1_000_000)
    gen_app.__dict__["model_cache"] = cache
    ctx, _ = run_ctx(gen_app)
    GenerateImageTool().run(GenerateImageArgs(prompt="a", width=64, height=64, steps=1, seed=1), ctx)
    GenerateVideoTool().run(
        GenerateVideoArgs(prompt="a", width=64, height=64, frames=2, steps=1, seed=1), ctx
    )
    GenerateAudioTool().run(GenerateAudioArgs(prompt="a", duration=0.2, steps=1, seed=1), ctx)
    sizes = [entry.nbytes for entry in cache._entries.values()]
    assert all(0 < size < 1_000_000 for size in sizes)
    assert [key.split(":")[0] for key in cache.evictions] == ["image-gen", "video-gen"]
    kept = cache.keys()
    assert [key.split(":")[0] for key in kept] == ["audio-gen"]
    assert cache.used("cpu") <= 1_000_000


def test_a_big_budget_keeps_all_three(gen_app: AppContext) -> None:
    cache = ModelCache(budget_bytes=1 << 30)
    gen_app.__dict__["model_cache"] = cache
    ctx, _ = run_ctx(gen_app)
    GenerateImageTool().run(GenerateImageArgs(prompt="a", width=64, height=64, steps=1, seed=1), ctx)
    GenerateAudioTool().run(GenerateAudioArgs(prompt="a", duration=0.2, steps=1, seed=1), ctx)
    assert cache.evictions == [] and len(cache.keys()) == 2


def test_cuda_oom_is_one_line_clears_the_cache_and_leaves_the_process_usable(
    gen_app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import StableDiffusionPipeline

    ctx, _ = run_ctx(gen_app)
    args = GenerateImageArgs(prompt="a lighthouse", width=64, height=64, steps=1, seed=1)
    GenerateImageTool().run(args, ctx)
    assert gen_app.model_cache.keys()

    def out_of_memory(self: Any, *a: Any, **k: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr(StableDiffusionPipeline, "__call__", out_of_memory)
        with pytest.raises(GeneratorOutOfMemoryError) as info:
            GenerateImageTool().run(args, ctx)
    message = str(info.value)
    assert "\n" not in message and "MODALGRAPH_ATTENTION_SLICING=true" in message
    assert gen_app.model_cache.keys() == [] and gen_app.model_cache.evictions
    assert GenerateImageTool().run(args, ctx).artifacts  # loads again and works


def test_oom_message_names_only_settings_that_are_off() -> None:
    cuda = Placement("cuda", torch.float16, False, False, True, True)
    assert "MODALGRAPH_CPU_OFFLOAD=true" in oom_message("image-gen", cuda)
    assert "VAE_TILING" not in oom_message("image-gen", cuda)
    everything = Placement("cuda", torch.float16, True, True, True, True)
    assert "MODALGRAPH_" not in oom_message("video-gen", everything)
    assert "smaller size" in oom_message("video-gen", everything)


def test_chat_turn_makes_an_image_and_a_sound_in_parallel(gen_app: AppContext) -> None:
    from agent.llm.scripted import ScriptedChatModel
    from agent.turns import TurnRunner, turn_json
    from tools.registry import ToolRegistry

    gen_app.__dict__["registry"] = ToolRegistry([GenerateImageTool, GenerateAudioTool])
    plan = {
        "steps": [
            {
                "id": 1,
                "tool": "generate_image",
                "args": {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 2, "seed": 11},
                "depends_on": [],
            },
            {
                "id": 2,
                "tool": "generate_audio",
                "args": {"prompt": "a sound of waves", "duration": 0.5, "steps": 2, "seed": 11},
                "depends_on": [],
            },
        ]
    }
    llm = ScriptedChatModel(replies=[json.dumps(plan), "Here is your lighthouse and the sound of waves."])
    request = "make an image of a lighthouse at dusk and a sound of waves"
    out = turn_json(TurnRunner(gen_app, llm).run("gen", request, [], lambda event: None))
    assert [s["status"] for s in out["steps"]] == ["done", "done"], out["steps"]
    mimes = sorted(a["mime"] for a in out["answer"]["artifacts"])
    assert mimes == ["audio/wav", "image/png"]
    for artifact in out["answer"]["artifacts"]:
        path = Path(artifact["path"])
        if artifact["mime"] == "image/png":
            assert Image.open(path).size == (64, 64)
        else:
            with wave.open(str(path)) as handle:
                assert handle.getnframes() == 8000
    assert out["answer"]["text"] == "Here is your lighthouse and the sound of waves."
