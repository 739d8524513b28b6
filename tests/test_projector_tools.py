"""conditioning="projector" in generate_image, generate_video and generate_audio (tiny models: plumbing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from agent.context import AppContext
from agent.projector.conditioning import projector_prompt_embeds
from tests.generation_fixtures import run_ctx
from tests.test_generate_image import generate as image
from tests.test_generate_video_audio import audio, mp4_frames, video


@pytest.fixture
def app(
    gen_app: AppContext, tiny_projectors: dict[str, Path], tiny_llm: Path, monkeypatch: pytest.MonkeyPatch
) -> AppContext:
    """The tiny pipelines, with the projectors trained for them and the tiny LLM for features."""
    monkeypatch.setenv("MODALGRAPH_PROJECTOR_LLM", str(tiny_llm))
    for modality, folder in tiny_projectors.items():
        monkeypatch.setenv(f"MODALGRAPH_PROJECTOR_{modality.upper()}", str(folder))
    from agent.core.settings import load_settings

    gen_app.settings = load_settings()
    return gen_app


def test_image_through_the_projector(app: AppContext, tiny_projectors: dict[str, Path]) -> None:
    first = image(app, seed=5, conditioning="projector")
    again = image(app, seed=5, conditioning="projector")
    other = image(app, seed=5, conditioning="projector", prompt="a blue square")
    plain = image(app, seed=5)
    assert first.artifacts[0].sha256 == again.artifacts[0].sha256  # reproducible
    assert other.artifacts[0].sha256 != first.artifacts[0].sha256  # the request matters
    assert plain.artifacts[0].sha256 != first.artifacts[0].sha256  # and it is not the text path
    assert first.data["conditioning"] == "projector"
    assert first.data["projector"] == str(tiny_projectors["image"])
    assert "conditioning" not in plain.data
    assert "output projector" in first.text


def test_image_projector_with_guidance_negative_prompt_and_several_images(app: AppContext) -> None:
    result = image(
        app, seed=1, conditioning="projector", guidance=7.5, negative_prompt="blurry", num_images=2
    )
    assert len(result.artifacts) == 2


def test_the_embeds_have_the_generators_shape(app: AppContext) -> None:
    embeds = projector_prompt_embeds(app, "image", "a red circle", dtype=torch.float32, device="cpu")
    assert embeds.shape == (1, 16, 32) and embeds.dtype == torch.float32
    sound = projector_prompt_embeds(app, "audio", "waves at dusk")
    assert sound.shape == (1, 8)  # AudioLDM: one CLAP vector, L2-normalised like its own
    assert torch.allclose(sound.norm(dim=-1), torch.ones(1), atol=1e-5)


def test_video_through_the_projector(app: AppContext) -> None:
    result = video(app, seed=2, conditioning="projector")
    [artifact] = result.artifacts
    _, frames = mp4_frames(artifact.path)
    assert frames == 3 and result.data["conditioning"] == "projector"
    assert video(app, seed=2).artifacts[0].sha256 != artifact.sha256


def test_audio_through_the_projector(app: AppContext) -> None:
    result = audio(app, seed=2, conditioning="projector")
    assert result.artifacts[0].mime == "audio/wav" and result.data["conditioning"] == "projector"
    assert audio(app, seed=2).artifacts[0].sha256 != result.artifacts[0].sha256


def test_the_projector_and_its_llm_load_once(app: AppContext) -> None:
    def loaded() -> list[str]:
        names = app.model_cache.keys()
        return [k for k in names if k.startswith(("projector:", "projector-llm:"))]

    image(app, seed=1, conditioning="projector")
    keys = loaded()
    image(app, seed=2, conditioning="projector")
    assert loaded() == keys and len(keys) == 2


def test_progress_says_what_runs(app: AppContext) -> None:
    from tools.generate_image import GenerateImageArgs, GenerateImageTool

    ctx, log = run_ctx(app)
    args: dict[str, Any] = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "seed": 1}
    GenerateImageTool().run(GenerateImageArgs(**args, conditioning="projector"), ctx)
    assert any("output projector" in message for message, _ in log.calls)
