"""The synthetic shapes world: deterministic renders, honest captions, and a tiny CLIP that learned them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.training.shapes_world import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    SIZES,
    ShapeSpec,
    WorldConfig,
    caption,
    caption_matches,
    iter_renders,
    render,
    vocabulary,
)

ROOT = Path(__file__).resolve().parents[1]


def test_render_is_deterministic_and_shows_the_colour() -> None:
    spec = ShapeSpec("red", "circle", "large", "white")
    first, second = render(spec, seed=7), render(spec, seed=7)
    assert first.tobytes() == second.tobytes()
    assert render(spec, seed=8).tobytes() != first.tobytes()
    # A large red circle covers a good part of the image in red.
    pixels = np.asarray(first).reshape(-1, 3).astype(int)
    red = ((pixels[:, 0] > 150) & (pixels[:, 1] < 90) & (pixels[:, 2] < 90)).mean()
    assert red > 0.2


def test_world_covers_every_colour_and_shape_with_held_out_renders() -> None:
    config = WorldConfig(train_per_combo=2, heldout_per_combo=1)
    renders = list(iter_renders(config))
    assert len(renders) == len(COLOURS) * len(SHAPES) * 3
    held = [r for r in renders if r.heldout]
    assert {(r.spec.colour, r.spec.shape) for r in held} == {(c, s) for c in COLOURS for s in SHAPES}
    assert [r.seed for r in iter_renders(config)] == [r.seed for r in renders]


def test_captions_are_true_and_use_only_the_vocabulary() -> None:
    words = set(vocabulary())
    for item in iter_renders(WorldConfig(train_per_combo=3, heldout_per_combo=1)):
        assert caption_matches(item.caption, item.spec), item.caption
        assert set(item.caption.split()) <= words
    spec = ShapeSpec("blue", "triangle", "small", "white")
    assert caption(spec, True, True) == "a small blue triangle on a white background"
    assert caption(spec, False, False) == "a blue triangle"
    assert not caption_matches("a red triangle", spec)
    assert not caption_matches("a large blue triangle", spec)
    assert not caption_matches("a blue triangle on a black background", spec)
    assert set(SIZES) and set(BACKGROUNDS) <= words


def test_built_world_has_captions_jsonl_and_a_loadable_clip(shapes_world: Path) -> None:
    lines = (shapes_world / "captions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert {"path", "caption", "colour", "shape", "heldout"} <= set(records[0])
    assert any(r["heldout"] for r in records) and not all(r["heldout"] for r in records)
    for record in records[:: max(1, len(records) // 50)]:
        assert (shapes_world / record["path"]).is_file()
        assert caption_matches(
            record["caption"],
            ShapeSpec(record["colour"], record["shape"], record["size"], record["background"]),
        )
    clip = shapes_world / "clip"
    assert (clip / "config.json").is_file() and (clip / "model.safetensors").is_file()
    assert (clip / "tokenizer.json").is_file() and (clip / "processor_config.json").is_file()


def test_tiny_clip_learned_the_world_on_held_out_renders(shapes_world: Path) -> None:
    """Measured afresh, not read from world.json: text->image recall@1 >= 0.9 on unseen renders."""
    from agent.training.world_builder import evaluate_world

    metrics = evaluate_world(shapes_world)
    assert metrics["text_recall_at_1"] >= 0.9, metrics
    assert metrics["caption_recall_at_1"] >= 0.85, metrics
    # Chance is 3 in 119 for each held-out render's nearest other render.
    assert metrics["image_precision_at_1"] >= 0.75, metrics


def test_clip_loads_through_the_catalogue_override(library_app, shapes_clip_dir: Path) -> None:
    from agent.vision.clip_encoder import clip_model_info, load_clip_encoder

    info = clip_model_info(library_app)
    assert info.model_dir == shapes_clip_dir
    encoder = load_clip_encoder(library_app)
    vectors = encoder.encode_texts(["a red circle", "a blue square"])
    assert vectors.dtype.name == "float32" and vectors.shape == (2, info.dim)
    assert abs(float((vectors**2).sum(axis=1).max()) - 1.0) < 1e-5
    assert load_clip_encoder(library_app) is encoder  # kept in the model cache


@pytest.mark.slow
def test_bench_script_builds_a_world(tmp_path: Path) -> None:
    """The command the issue names, with a tiny config so it runs in seconds (quality not asserted)."""
    out = tmp_path / "world"
    tiny = ["--per-combo", "2", "--heldout-per-combo", "1", "--steps", "3"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "shapes_world.py"), str(out), *tiny],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "clip" / "config.json").is_file()
    records = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert len(records) == len(COLOURS) * len(SHAPES) * 3
    assert json.loads((out / "world.json").read_text())["text_recall_at_1"] >= 0.0
