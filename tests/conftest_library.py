"""Fixtures for the image library: the synthetic shapes world, its tiny CLIP, and real photos.

The world (renders + a tiny CLIP trained on them) is built once and cached between runs under
$MODALGRAPH_TEST_CACHE (default ~/.cache/modalgraph-tests), keyed by a hash of its configs.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings


@pytest.fixture(scope="session")
def shapes_world() -> Path:
    """The cached shapes world folder: renders, captions.jsonl and the trained CLIP in clip/."""
    from agent.training.world_builder import default_cache_root, ensure_shapes_world

    def log(message: str) -> None:
        print(f"[shapes world] {message}", file=sys.stderr, flush=True)

    return ensure_shapes_world(default_cache_root(), log=log)


@pytest.fixture(scope="session")
def shapes_clip_dir(shapes_world: Path) -> Path:
    return shapes_world / "clip"


@pytest.fixture(scope="session")
def shapes_records(shapes_world: Path) -> list[dict[str, object]]:
    from agent.training.shapes_world import read_captions

    return read_captions(shapes_world)


@pytest.fixture
def library_app(
    shapes_clip_dir: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppContext]:
    """An app whose CLIP is the tiny shapes model, with its own empty data dir."""
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(shapes_clip_dir))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    app = AppContext(load_settings())
    yield app
    if "image_index" in app.__dict__:
        app.image_index.close()


@pytest.fixture(scope="session")
def heldout_folder(shapes_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the held-out renders (120 images): small enough to index in a second or two."""
    folder = tmp_path_factory.mktemp("heldout")
    for source in sorted((shapes_world / "heldout").iterdir()):
        shutil.copy2(source, folder / source.name)
    return folder


@pytest.fixture(scope="session")
def indexed_world(
    shapes_clip_dir: Path, heldout_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppContext]:
    """An app with the held-out renders already indexed, shared by read-only search tests.

    Its settings carry the model and device themselves (not the environment, which every test resets).
    """
    data = tmp_path_factory.mktemp("indexed-world-data")
    app = AppContext(load_settings(data_dir=data, device="cpu", models={"clip": str(shapes_clip_dir)}))
    app.image_index.index([heldout_folder])
    yield app
    app.image_index.close()


def _sample_photos() -> dict[str, object]:
    """Real photos shipped with scikit-image, scikit-learn and matplotlib, as PIL images."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_image

    photos: dict[str, object] = {
        "astronaut": Image.fromarray(data.astronaut()),
        "chelsea": Image.fromarray(data.chelsea()),
        "coffee": Image.fromarray(data.coffee()),
        "rocket": Image.fromarray(data.rocket()),
        "china": Image.fromarray(load_sample_image("china.jpg")),
    }
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos["grace_hopper"] = Image.open(handle).convert("RGB")
    return photos


@pytest.fixture(scope="session")
def sample_photos() -> dict[str, object]:
    return _sample_photos()
