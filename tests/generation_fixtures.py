"""Fixtures for the generators: tiny random-weight pipelines saved like hub downloads, built once.

They are cached between runs under $MODALGRAPH_TEST_CACHE (default ~/.cache/modalgraph-tests), keyed
by a hash of the builder's source and the diffusers/transformers versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from tools.context import RunContext


def _tiny_models_root() -> Path:
    import diffusers
    import transformers

    import tests.tiny_pipelines as builders
    from agent.training.world_builder import default_cache_root

    source = Path(builders.__file__).read_bytes()
    key = hashlib.sha256(source + diffusers.__version__.encode() + transformers.__version__.encode())
    return default_cache_root() / f"tiny-pipelines-{key.hexdigest()[:12]}"


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """catalogue name -> folder of a tiny pipeline (image-gen, video-gen, video-upscale, audio-gen)."""
    from agent.core.cached_build import cached_build
    from tests.tiny_pipelines import BUILDERS, build_all

    root = cached_build(
        _tiny_models_root(),
        build_all,
        done=lambda folder: all((folder / name / "model_index.json").is_file() for name in BUILDERS),
    )
    return {name: root / name for name in BUILDERS}


@pytest.fixture
def gen_app(
    tiny_models: dict[str, Path], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppContext]:
    """An app on the CPU whose generator models are the tiny pipelines."""
    for name, folder in tiny_models.items():
        monkeypatch.setenv("MODALGRAPH_MODEL_" + name.upper().replace("-", "_"), str(folder))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    app = AppContext(load_settings())
    yield app
    app.model_cache.clear()


class ProgressLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []

    def __call__(self, message: str, fraction: float | None = None) -> None:
        self.calls.append((message, fraction))


def run_ctx(app: AppContext) -> tuple[RunContext, ProgressLog]:
    log = ProgressLog()
    return RunContext(app, progress=log), log
