"""`modalgraph projector train|eval` as a user runs them, on the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.projector_fixtures import CAPTIONS
from tests.test_projector_errors import cli_env
from tests.test_sessions import modalgraph


def test_train_then_eval(tiny_llm: Path, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(CAPTIONS) + "\n")
    out = tmp_path / "projector"
    env = cli_env()
    train = modalgraph(
        "projector", "train", "--modality", "image", "--captions", str(captions), "--out", str(out),
        "--llm", str(tiny_llm), "--generator", str(tiny_models["image-gen"]),
        "--steps", "6", "--d-model", "32", "--layers", "1", "--checkpoint-every", "3", "-q",
        env=env,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert "trained 6 steps" in train.stderr
    info = json.loads((out / "projector.json").read_text())
    assert info["config"]["modality"] == "image" and info["config"]["n_queries"] == 16
    assert info["llm"]["backend"] == "transformers" and info["generator"]["d_cond"] == 32
    assert info["training"]["steps"] == 6 and not (out / "checkpoint.pt").exists()
    # Features and targets were cached under the data dir.
    cache = Path(env["MODALGRAPH_DATA_DIR"]) / "cache" / "projector"
    assert len(list((cache / "features").rglob("*.npz"))) == len(CAPTIONS)
    assert len(list((cache / "targets").rglob("*.npy"))) == len(CAPTIONS)

    evaluated = modalgraph(
        "projector", "eval", "--projector", str(out), "--captions", str(captions), "--json", "-q", env=env
    )
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert figures["captions"] == len(CAPTIONS)
    assert 0.0 <= figures["top1"] <= figures["top5"] <= 1.0
    assert -1.0 <= figures["mean_cosine"] <= 1.0


def test_train_with_images_adds_the_denoising_loss(
    tiny_llm: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i, (caption, colour) in enumerate(zip(CAPTIONS[:4], ["red", "blue", "green", "yellow"], strict=True)):
        Image.new("RGB", (64, 64), colour).save(images / f"{i}.png")
        records.append({"caption": caption, "path": f"{i}.png"})
    records.append({"caption": "a held-out caption", "path": "0.png", "heldout": True})
    captions = tmp_path / "captions.jsonl"
    captions.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "projector"
    proc = modalgraph(
        "projector", "train", "--captions", str(captions), "--images", str(images), "--denoise-weight", "0.5",
        "--out", str(out), "--llm", str(tiny_llm), "--generator", str(tiny_models["image-gen"]),
        "--steps", "3", "--d-model", "32", "--layers", "1", "-q",
        env=cli_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    training = json.loads((out / "projector.json").read_text())["training"]
    assert training["images"] == 4 and training["captions"] == 4  # the held-out record was left out
    assert training["denoise_weight"] == 0.5
    assert np.isfinite(training["final_loss"])


def test_images_are_only_for_the_image_projector(tmp_path: Path) -> None:
    captions = tmp_path / "c.txt"
    captions.write_text("a dog barking\n")
    proc = modalgraph(
        "projector", "train", "--modality", "audio", "--captions", str(captions), "--images", str(tmp_path),
        env=cli_env(),
    )  # fmt: skip
    assert (
        proc.returncode != 0 and "--images (the denoising loss) is for --modality image only" in proc.stderr
    )
