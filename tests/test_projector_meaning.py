"""Meaning survives the projector: trained on the shapes world with a tiny transformers LLM, it finds
each held-out caption's own conditioning, and images drawn through it show what was asked.

The projector is trained once (about a minute of CPU) and cached like the world's other models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agent.context import AppContext
from agent.training.shapes_projector import HELDOUT_FILE, TRAIN_FILE
from agent.training.shapes_world import COLOURS, SHAPES, all_captions
from tests.generation_fixtures import run_ctx
from tests.test_sessions import ROOT, modalgraph
from tools.generate_image import GenerateImageArgs, GenerateImageTool

pytestmark = pytest.mark.slow

CHANCE = 1 / len(COLOURS)


def test_heldout_captions_find_their_own_conditioning(
    shapes_projector: tuple[Path, dict[str, Any], Any],
) -> None:
    folder, metrics, _ = shapes_projector
    print(f"\nheld-out figures: {json.dumps(metrics, sort_keys=True)}")
    train = (folder / TRAIN_FILE).read_text().split("\n")[:-1]
    held = (folder / HELDOUT_FILE).read_text().split("\n")[:-1]
    assert len(set(held)) == len(held) == 100 and not set(train) & set(held)
    assert set(train) | set(held) == set(all_captions())
    assert metrics["captions"] == 100
    assert metrics["top1"] >= 0.9
    assert metrics["top5"] >= metrics["top1"]
    assert metrics["mean_cosine"] >= 0.8


def test_the_eval_command_gives_the_same_figures(shapes_projector: tuple[Path, dict[str, Any], Any]) -> None:
    folder, metrics, _ = shapes_projector
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODALGRAPH_DEVICE": "cpu"}
    proc = modalgraph(
        "projector",
        "eval",
        "--projector",
        str(folder),
        "--captions",
        str(folder / HELDOUT_FILE),
        "--json",
        "-q",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["captions"] == 100
    assert figures["top1"] == pytest.approx(metrics["top1"], abs=0.02)
    assert figures["mean_cosine"] == pytest.approx(metrics["mean_cosine"], abs=0.01)


def draw(app: AppContext, prompt: str, seed: int, conditioning: str) -> Image.Image:
    ctx, _ = run_ctx(app)
    result = GenerateImageTool().run(
        GenerateImageArgs(prompt=prompt, seed=seed, conditioning=conditioning), ctx
    )  # type: ignore[arg-type]
    if conditioning == "projector":
        assert result.data["conditioning"] == "projector" and "output projector" in result.text
    with Image.open(result.artifacts[0].path) as image:
        return image.convert("RGB")


def test_images_drawn_through_the_projector_show_the_asked_colour(
    projector_app: AppContext, shapes_clip_dir: Path
) -> None:
    """The shapes CLIP names the colour of "a {colour} circle" about as often either way."""
    from agent.vision.clip_encoder import load_clip_dir

    encoder = load_clip_dir(shapes_clip_dir)
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    text = encoder.encode_texts([f"a {colour} {shape}" for colour, shape in pairs])
    accuracy = {}
    for conditioning in ("text", "projector"):
        images, asked = [], []
        for colour in COLOURS:
            for seed in range(3):
                images.append(draw(projector_app, f"a {colour} circle", seed, conditioning))
                asked.append(colour)
        seen = [pairs[i][0] for i in np.argmax(encoder.encode_images(images) @ text.T, axis=1).tolist()]
        accuracy[conditioning] = float(np.mean([a == b for a, b in zip(asked, seen, strict=True)]))
    ratio = accuracy["projector"] / max(accuracy["text"], 1e-9)
    print(
        f"\ncolour accuracy: text {accuracy['text']:.3f}, projector {accuracy['projector']:.3f}, ratio {ratio:.2f}"
    )
    assert accuracy["projector"] >= 2 * CHANCE
    assert accuracy["projector"] >= 0.7 * accuracy["text"]


def test_a_chat_turn_generates_through_the_projector(projector_env: dict[str, str], tmp_path: Path) -> None:
    plan = {
        "steps": [
            {
                "id": 1,
                "tool": "generate_image",
                "args": {"prompt": "a red circle", "conditioning": "projector", "seed": 3, "steps": 10},
                "depends_on": [],
            }
        ]
    }
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([plan, "Here is a red circle."]))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MODALGRAPH_LLM_BACKEND": "scripted",
        "MODALGRAPH_LLM_SCRIPT": str(script),
    }
    proc = modalgraph("ask", "draw a red circle, through the output projector", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    [step] = out["steps"]
    assert step["status"] == "done", step
    assert "output projector" in step["output"]
    [artifact] = step["artifacts"]
    assert artifact["mime"] == "image/png" and Path(artifact["path"]).is_file()
    assert out["answer"]["artifacts"] == [artifact]


def test_the_one_command_trains_and_measures(
    shapes_projector: tuple[Path, dict[str, Any], Any], tmp_path: Path
) -> None:
    """`modalgraph projector train --shapes-world` (few steps here: the fixture above is the full run)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODALGRAPH_DEVICE": "cpu"}
    out = tmp_path / "shapes"
    proc = modalgraph(
        "projector",
        "train",
        "--shapes-world",
        "--llm",
        "tiny",
        "--steps",
        "5",
        "--out",
        str(out),
        "-q",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["captions"] == 100 and figures["steps"] == 5
    assert (out / "projector.safetensors").is_file() and (out / HELDOUT_FILE).is_file()
    assert f"MODALGRAPH_PROJECTOR_IMAGE={out}" in proc.stderr
    clash = modalgraph("projector", "train", "--shapes-world", "--modality", "audio", env=env)
    assert clash.returncode != 0 and "--shapes-world trains the image projector" in clash.stderr
