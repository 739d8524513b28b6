"""generate_image on a tiny Stable Diffusion pipeline loaded through the catalogue, as users load SD."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from agent.context import AppContext
from agent.core.errors import ModelMissingError, ToolUnavailableError
from agent.generation.pipelines import GenerationCancelledError
from agent.generation.samplers import SCHEDULER_CLASSES
from tests.generation_fixtures import run_ctx
from tools.generate_image import GenerateImageArgs, GenerateImageTool


def generate(app: AppContext, **args: Any) -> Any:
    ctx, _ = run_ctx(app)
    args = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, **args}
    return GenerateImageTool().run(GenerateImageArgs(**args), ctx)


def test_makes_a_png_with_reproduction_metadata(gen_app: AppContext, tiny_models: dict[str, Path]) -> None:
    result = generate(gen_app, seed=7, sampler="ddim")
    [artifact] = result.artifacts
    assert artifact.mime == "image/png" and artifact.path.endswith(".png")
    image = Image.open(artifact.path)
    assert image.format == "PNG" and image.size == (64, 64) and image.mode == "RGB"
    assert gen_app.artifacts.contains(artifact.path)
    for meta in (artifact.meta, result.data):
        assert meta["model"] == "image-gen"
        assert meta["model_id"] == str(tiny_models["image-gen"].resolve())
        assert (meta["seed"], meta["steps"], meta["sampler"]) == (7, 2, "ddim")
        assert (meta["width"], meta["height"]) == (64, 64)
    assert "seed 7" in result.text


def test_same_seed_same_bytes_other_seed_other_image(gen_app: AppContext) -> None:
    first = Path(generate(gen_app, seed=3).artifacts[0].path).read_bytes()
    again = Path(generate(gen_app, seed=3).artifacts[0].path).read_bytes()
    other = Path(generate(gen_app, seed=4).artifacts[0].path).read_bytes()
    assert first == again
    assert first != other


def test_no_seed_means_a_random_one_that_is_recorded(gen_app: AppContext) -> None:
    result = generate(gen_app)
    seed = result.data["seed"]
    assert isinstance(seed, int)
    assert generate(gen_app, seed=seed).artifacts[0].sha256 == result.artifacts[0].sha256


def test_several_images_are_several_files(gen_app: AppContext) -> None:
    result = generate(gen_app, seed=1, num_images=2)
    assert len(result.artifacts) == 2
    assert result.artifacts[0].sha256 != result.artifacts[1].sha256


@pytest.mark.parametrize("sampler", list(SCHEDULER_CLASSES))
def test_each_sampler_swaps_the_scheduler(gen_app: AppContext, sampler: str) -> None:
    result = generate(gen_app, seed=1, sampler=sampler, steps=4)
    loaded_pipe = next(iter(gen_app.model_cache._entries.values())).obj.pipe
    assert type(loaded_pipe.scheduler).__name__ == SCHEDULER_CLASSES[sampler]
    assert result.data["sampler"] == sampler


def test_default_sampler_is_the_models_own_after_a_swap(gen_app: AppContext) -> None:
    generate(gen_app, seed=1, sampler="ddim")
    assert generate(gen_app, seed=1).data["sampler"] == "euler"  # the tiny model ships Euler


def test_progress_is_reported_per_step(gen_app: AppContext) -> None:
    ctx, log = run_ctx(gen_app)
    GenerateImageTool().run(GenerateImageArgs(prompt="a cat", width=64, height=64, steps=3, seed=1), ctx)
    assert log.calls == [("step 1/3", 1 / 3), ("step 2/3", 2 / 3), ("step 3/3", 1.0)]


def test_progress_counts_the_model_calls_a_sampler_really_makes(gen_app: AppContext) -> None:
    ctx, log = run_ctx(gen_app)
    args = GenerateImageArgs(prompt="a cat", width=64, height=64, steps=4, seed=1, sampler="pndm")
    GenerateImageTool().run(args, ctx)
    assert log.calls[-1] == (f"step {len(log.calls)}/{len(log.calls)}", 1.0)


def test_cancel_stops_between_steps(gen_app: AppContext) -> None:
    ctx, log = run_ctx(gen_app)

    def cancel_after_first(message: str, fraction: float | None = None) -> None:
        log(message, fraction)
        gen_app.cancel.set()

    ctx.progress = cancel_after_first
    with pytest.raises(GenerationCancelledError, match=r"cancelled at step 1/5"):
        GenerateImageTool().run(GenerateImageArgs(prompt="a cat", width=64, height=64, steps=5, seed=1), ctx)
    assert len(log.calls) == 1


def test_missing_weights_is_one_line_naming_the_pull(isolated_env: Path) -> None:
    app = AppContext(
        __import__("agent.core.settings", fromlist=["x"]).load_settings(profile="cpu", device="cpu")
    )
    ctx, _ = run_ctx(app)
    with pytest.raises(ModelMissingError) as info:
        GenerateImageTool().run(GenerateImageArgs(prompt="a lighthouse at dusk"), ctx)
    message = str(info.value)
    assert "\n" not in message
    assert "`modalgraph models pull image-gen`" in message and "MODALGRAPH_MODEL_IMAGE_GEN" in message
    assert not list(app.settings.artifacts_dir.rglob("*.png"))


def test_projector_conditioning_is_refused_until_trained(gen_app: AppContext) -> None:
    with pytest.raises(ToolUnavailableError, match="projector train"):
        generate(gen_app, conditioning="projector")
    assert gen_app.model_cache.keys() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"width": 513},
        {"height": 100},
        {"width": 32},
        {"steps": 0},
        {"steps": 10_000},
        {"sampler": "karras_magic"},
        {"sampler": "pndm", "steps": 3},
        {"num_images": 0},
        {"guidance": -1},
        {"seed": -5},
    ],
)
def test_bad_arguments_are_refused_before_any_model_loads(
    gen_app: AppContext, monkeypatch: pytest.MonkeyPatch, bad: dict[str, Any]
) -> None:
    from agent.planning.plan import Step
    from graphs.executor import run_step

    loads: list[str] = []
    monkeypatch.setattr("agent.generation.pipelines.load_pipeline", lambda *a, **k: loads.append("loaded"))
    with pytest.raises(ValidationError):
        GenerateImageArgs(prompt="x", **bad)
    ctx, _ = run_ctx(gen_app)
    step = Step(id=1, tool="generate_image", args={"prompt": "x", **bad})
    result = run_step(step, GenerateImageTool, {}, ctx)
    assert result.status == "failed"
    assert next(iter(bad)) in result.error and "\n" not in result.error
    assert loads == []


def test_safety_checker_setting_reaches_the_loader(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that ships a safety checker keeps it by default; safety_checker=false drops it."""
    from diffusers import DiffusionPipeline

    from agent.core.settings import load_settings
    from agent.generation.pipelines import DevicePolicy, load_pipeline

    folder = tmp_path / "sd-with-checker"
    shutil.copytree(tiny_models["image-gen"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    (folder / "model_index.json").write_text(json.dumps(index))
    seen: list[dict[str, Any]] = []
    real = DiffusionPipeline.from_pretrained.__func__  # type: ignore[attr-defined]

    def spy(cls: type, path: str, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(cls, str(tiny_models["image-gen"]), **kwargs)

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", classmethod(spy))
    for setting in (True, False):
        app = AppContext(
            load_settings(device="cpu", safety_checker=setting, models={"image-gen": str(folder)})
        )
        load_pipeline(app, "image-gen", DevicePolicy())
    assert "safety_checker" not in seen[0]
    assert seen[1]["safety_checker"] is None and seen[1]["requires_safety_checker"] is False


def test_png_bytes_round_trip() -> None:
    import numpy as np

    from tools.media_encoding import png_bytes

    pixels = np.zeros((8, 16, 3), dtype=np.float32)
    pixels[:, :8, 0] = 1.0
    image = Image.open(io.BytesIO(png_bytes(pixels)))
    assert image.size == (16, 8)
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((15, 0)) == (0, 0, 0)
