"""A projector that is missing, corrupt, the wrong size or for another modality or LLM: one clear error each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.context import AppContext
from agent.core.errors import ConfigError, ModelLoadError, ToolUnavailableError
from agent.core.settings import load_settings
from agent.projector.files import CONFIG, WEIGHTS, load_projector
from tests.generation_fixtures import run_ctx
from tests.test_cli import one_clear_line
from tests.test_sessions import ROOT, modalgraph
from tools.generate_image import GenerateImageArgs, GenerateImageTool


@pytest.fixture
def image_projector(tiny_projectors: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the tiny image projector, free to damage."""
    folder = tmp_path / "projector"
    shutil.copytree(tiny_projectors["image"], folder)
    return folder


def app_with(
    monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path], tiny_llm: Path, **env: Any
) -> AppContext:
    values = {
        "MODALGRAPH_MODEL_IMAGE_GEN": str(tiny_models["image-gen"]),
        "MODALGRAPH_PROJECTOR_LLM": str(tiny_llm),
        "MODALGRAPH_DEVICE": "cpu",
        **{k: str(v) for k, v in env.items()},
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return AppContext(load_settings())


def generate(app: AppContext) -> Any:
    ctx, _ = run_ctx(app)
    args = GenerateImageArgs(
        prompt="a red circle", width=64, height=64, steps=2, seed=1, conditioning="projector"
    )
    return GenerateImageTool().run(args, ctx)


def test_missing_projector_names_the_train_command(
    monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path], tiny_llm: Path, tmp_path: Path
) -> None:
    app = app_with(monkeypatch, tiny_models, tiny_llm, MODALGRAPH_PROJECTOR_IMAGE=tmp_path / "nothing")
    with pytest.raises(
        ToolUnavailableError, match=r"`modalgraph projector train --modality image --captions FILE"
    ):
        generate(app)


def test_the_default_place_is_under_the_data_dir(isolated_env: Path) -> None:
    settings = load_settings()
    assert settings.projector_dir("video") == isolated_env / "projectors" / "video"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_weights_are_one_clear_error(
    damage: str,
    image_projector: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_models: dict[str, Path],
    tiny_llm: Path,
) -> None:
    weights = image_projector / WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(
        {"garbage": b"not a safetensors file" * 50, "truncated": data[: len(data) // 2], "empty": b""}[damage]
    )
    app = app_with(monkeypatch, tiny_models, tiny_llm, MODALGRAPH_PROJECTOR_IMAGE=image_projector)
    with pytest.raises(
        ModelLoadError, match=r"corrupt or truncated.*retrain with `modalgraph projector train"
    ):
        generate(app)


def test_corrupt_config_is_one_clear_error(image_projector: Path) -> None:
    (image_projector / CONFIG).write_text('{"format": "modalgraph-output-projector", "config": {')
    with pytest.raises(ModelLoadError, match=r"projector config .* is corrupt"):
        load_projector(image_projector)
    (image_projector / CONFIG).write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ModelLoadError, match="not a modalgraph projector config"):
        load_projector(image_projector)


def test_weights_that_do_not_fit_the_config_are_a_size_mismatch(image_projector: Path) -> None:
    info = json.loads((image_projector / CONFIG).read_text())
    info["config"]["d_model"] = 48
    (image_projector / CONFIG).write_text(json.dumps(info))
    with pytest.raises(ModelLoadError, match=r"size mismatch in .*projector.safetensors: .* is \(\d+, 32\)"):
        load_projector(image_projector)


def test_a_generator_of_another_size_is_a_size_mismatch(
    image_projector: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path], tiny_llm: Path
) -> None:
    # AudioLDM's tiny CLAP encoder is 16 tokens x 8 wide; the projector makes 16 x 32.
    app = app_with(
        monkeypatch,
        tiny_models,
        tiny_llm,
        MODALGRAPH_PROJECTOR_IMAGE=image_projector,
        MODALGRAPH_MODEL_IMAGE_GEN=tiny_models["audio-gen"],
    )
    with pytest.raises(
        ConfigError, match=r"size mismatch: .* makes 16x32 conditioning but image-gen .* takes 16x8"
    ):
        generate(app)


def test_an_llm_of_another_width_is_a_size_mismatch(
    image_projector: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_models: dict[str, Path],
    tiny_llm: Path,
    tmp_path: Path,
) -> None:
    from agent.training.tiny_llm import TinyLLMConfig, build_tiny_llm

    narrow = build_tiny_llm(tmp_path / "narrow-llm", TinyLLMConfig(hidden_size=64, heads=2, kv_heads=1))
    app = app_with(monkeypatch, tiny_models, narrow, MODALGRAPH_PROJECTOR_IMAGE=image_projector)
    with pytest.raises(ConfigError, match=r"size mismatch: .* reads 128-wide LLM states but .* gives 64"):
        generate(app)


def test_another_llm_of_the_same_width_is_refused(
    image_projector: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from agent.training.tiny_llm import TinyLLMConfig, build_tiny_llm

    other = build_tiny_llm(tmp_path / "other-llm", TinyLLMConfig(seed=1))
    app = app_with(monkeypatch, tiny_models, other, MODALGRAPH_PROJECTOR_IMAGE=image_projector)
    with pytest.raises(ConfigError, match=r"trained on the features of .* MODALGRAPH_PROJECTOR_LLM"):
        generate(app)


def test_a_projector_of_another_modality_is_refused(
    tiny_projectors: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tiny_models: dict[str, Path],
    tiny_llm: Path,
) -> None:
    app = app_with(monkeypatch, tiny_models, tiny_llm, MODALGRAPH_PROJECTOR_IMAGE=tiny_projectors["video"])
    with pytest.raises(ConfigError, match="is for video, not image"):
        generate(app)


def test_an_unknown_modality_in_the_file_is_one_clear_error(image_projector: Path) -> None:
    info = json.loads((image_projector / CONFIG).read_text())
    info["config"]["modality"] = "smell"
    (image_projector / CONFIG).write_text(json.dumps(info))
    with pytest.raises(ConfigError, match=r"unknown modality 'smell'; use one of image, video, audio"):
        load_projector(image_projector)


# ------------------------------------------------------------------ the same, as the CLI shows them


def cli_env(**extra: Any) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), MODALGRAPH_DEVICE="cpu", **{k: str(v) for k, v in extra.items()})
    return env


def test_cli_unknown_modality_is_one_line(tmp_path: Path) -> None:
    captions = tmp_path / "c.txt"
    captions.write_text("a red circle\n")
    for command in ("train", "eval"):
        proc = modalgraph(
            "projector", command, "--modality", "smell", "--captions", str(captions), env=cli_env()
        )
        assert "unknown modality 'smell'" in one_clear_line(proc)


def test_cli_corrupt_projector_is_one_line(image_projector: Path, tmp_path: Path) -> None:
    (image_projector / WEIGHTS).write_bytes(b"\x00" * 100)
    captions = tmp_path / "c.txt"
    captions.write_text("a red circle\na blue square\n")
    proc = modalgraph(
        "projector", "eval", "--projector", str(image_projector), "--captions", str(captions), env=cli_env()
    )
    assert "corrupt or truncated" in one_clear_line(proc)


def test_cli_size_mismatch_is_one_line(
    image_projector: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    captions = tmp_path / "c.txt"
    captions.write_text("a red circle\na blue square\n")
    proc = modalgraph(
        "projector",
        "eval",
        "--projector",
        str(image_projector),
        "--captions",
        str(captions),
        "--generator",
        str(tiny_models["audio-gen"]),
        env=cli_env(),
    )
    assert "size mismatch" in one_clear_line(proc)


def test_cli_missing_captions_is_one_line() -> None:
    proc = modalgraph("projector", "train", "--modality", "image", env=cli_env())
    assert "--captions FILE is needed" in one_clear_line(proc)
