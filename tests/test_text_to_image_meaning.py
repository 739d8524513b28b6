"""Meaning survives text-to-image: a tiny SD trained on the shapes world draws the colour it is asked for.

The pipeline (tiny VAE + conditional U-Net on the shapes CLIP's text tower) is trained once, time-boxed
to a few CPU minutes, and cached; it is loaded through the catalogue and run by the `generate_image`
tool as users run Stable Diffusion. The shapes CLIP then names the colour of each output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.training.shapes_world import COLOURS, SHAPES
from tests.generation_fixtures import run_ctx
from tools.generate_image import GenerateImageArgs, GenerateImageTool

pytestmark = pytest.mark.slow

SEEDS = range(5)
CHANCE = 1 / len(COLOURS)


@pytest.fixture(scope="session")
def shapes_text_to_image(shapes_world: Path) -> Path:
    from agent.training.text_to_image import ensure_text_to_image

    def log(message: str) -> None:
        print(f"[text to image] {message}", file=sys.stderr, flush=True)

    return ensure_text_to_image(shapes_world, log=log)


@pytest.fixture
def t2i_app(
    shapes_text_to_image: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppContext]:
    monkeypatch.setenv("MODALGRAPH_MODEL_IMAGE_GEN", str(shapes_text_to_image))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    app = AppContext(load_settings())
    yield app
    app.model_cache.clear()


def generate(app: AppContext, prompt: str, seed: int) -> Image.Image:
    ctx, _ = run_ctx(app)
    result = GenerateImageTool().run(GenerateImageArgs(prompt=prompt, seed=seed), ctx)
    with Image.open(result.artifacts[0].path) as image:
        return image.convert("RGB")


def colour_predictions(app: AppContext, clip_dir: Path) -> dict[str, list[str]]:
    """Asked colour -> the colour the shapes CLIP sees in each seed's "a {colour} circle".

    Zero-shot over every "a {colour} {shape}" caption, so a wrongly drawn shape does not bias the colour.
    """
    from agent.vision.clip_encoder import load_clip_dir

    encoder = load_clip_dir(clip_dir)
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    text = encoder.encode_texts([f"a {colour} {shape}" for colour, shape in pairs])
    seen = {}
    for colour in COLOURS:
        images = [generate(app, f"a {colour} circle", seed) for seed in SEEDS]
        best = np.argmax(encoder.encode_images(images) @ text.T, axis=1)
        seen[colour] = [pairs[i][0] for i in best.tolist()]
    return seen


def test_the_shapes_clip_sees_the_asked_colour(t2i_app: AppContext, shapes_clip_dir: Path) -> None:
    seen = colour_predictions(t2i_app, shapes_clip_dir)
    hits = [asked == got for asked, row in seen.items() for got in row]
    accuracy = sum(hits) / len(hits)
    print(f"\ncolour accuracy {accuracy:.3f} over {len(hits)} images (chance {CHANCE:.3f})")
    for asked, row in seen.items():
        print(f"  a {asked} circle -> {row}")
    assert accuracy >= 2 * CHANCE, seen
    red = seen["red"]
    assert red.count("red") > len(red) / 2, red
