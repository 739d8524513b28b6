"""Fixtures for the output projector: a tiny transformers LLM, quick projectors for the tiny
pipelines, and the projector trained on the shapes world (cached like the world's other models)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings

CAPTIONS = [
    "a red circle",
    "a blue square",
    "a green star on a black background",
    "a small yellow triangle",
    "the sound of rain",
    "waves at dusk",
]


@pytest.fixture(scope="session")
def tiny_llm() -> Path:
    """A random-weight Qwen2 causal LM with a byte-level BPE tokenizer, saved like a hub checkpoint."""
    from agent.training.tiny_llm import ensure_tiny_llm
    from agent.training.world_builder import default_cache_root

    return ensure_tiny_llm(default_cache_root())


def quick_train(
    llm_dir: Path,
    generator_dir: Path,
    modality: str,
    out: Path,
    steps: int = 4,
    captions: Sequence[str] = CAPTIONS,
    cache: Path | None = None,
    kind: str = "transformer",
    stop_after: int | None = None,
    **train: object,
):  # -> TrainResult
    """A few steps on a few captions: enough to exercise the whole path, not to learn anything."""
    from agent.projector.llm_features import identity_for_path, open_feature_llm, span_features
    from agent.projector.model import ProjectorConfig
    from agent.projector.runs import data_key, projector_info
    from agent.projector.targets import caption_targets, generator_spec
    from agent.projector.trainer import TrainConfig, train_projector

    identity = identity_for_path(llm_dir, "tiny-llm")
    spec = generator_spec(generator_dir, modality, f"{modality}-gen")
    features = span_features(
        open_feature_llm(identity), captions, modality, cache / "features" if cache else None
    )
    targets = caption_targets(spec, captions, cache / "targets" if cache else None)
    config = ProjectorConfig(
        modality=modality,
        d_llm=int(features[0].hidden.shape[1]),
        n_queries=spec.n_queries,
        d_cond=spec.d_cond,
        type=kind,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
    )
    settings = {"steps": steps, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 1000, **train}
    return train_projector(
        features,
        targets,
        config,
        TrainConfig(**settings),  # type: ignore[arg-type]
        out,
        projector_info(identity, spec),
        data_key(captions, identity, spec),
        stop_after=stop_after,
    )


@pytest.fixture(scope="session")
def tiny_projectors(
    tiny_llm: Path, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """modality -> a projector folder trained a few steps for that modality's tiny pipeline."""
    root = tmp_path_factory.mktemp("tiny-projectors")
    folders = {}
    for modality, name in (("image", "image-gen"), ("video", "video-gen"), ("audio", "audio-gen")):
        folders[modality] = root / modality
        quick_train(tiny_llm, tiny_models[name], modality, folders[modality], cache=root / "cache")
    return folders


@pytest.fixture(scope="session")
def shapes_projector() -> tuple[Path, dict[str, object], object]:
    """(folder, held-out figures, setup): the image projector trained on the shapes world with the
    tiny LLM, cached between runs like the world and its text-to-image model."""
    from agent.training.shapes_projector import ensure_shapes_projector, prepare
    from agent.training.world_builder import default_cache_root

    def log(message: str) -> None:
        print(f"[shapes projector] {message}", file=sys.stderr, flush=True)

    setup = prepare(default_cache_root(), llm="tiny", log=log)
    folder, metrics = ensure_shapes_projector(setup, default_cache_root(), log=log)
    return folder, metrics, setup


@pytest.fixture
def projector_env(
    shapes_projector: tuple[Path, dict[str, object], object],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Environment that makes generate_image use the shapes world through its trained projector."""
    folder, _, setup = shapes_projector
    env = {
        "MODALGRAPH_MODEL_IMAGE_GEN": str(setup.generator.path),  # type: ignore[attr-defined]
        "MODALGRAPH_PROJECTOR_IMAGE": str(folder),
        "MODALGRAPH_PROJECTOR_LLM": str(setup.llm.path),  # type: ignore[attr-defined]
        "MODALGRAPH_DEVICE": "cpu",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def projector_app(projector_env: dict[str, str]) -> Iterator[AppContext]:
    app = AppContext(load_settings())
    yield app
    app.model_cache.clear()
