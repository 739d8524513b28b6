"""generate_video and generate_audio on tiny Zeroscope- and AudioLDM-shaped pipelines."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from agent.context import AppContext
from agent.core.errors import ModelMissingError
from agent.core.settings import load_settings
from tests.generation_fixtures import run_ctx
from tools.generate_audio import GenerateAudioArgs, GenerateAudioTool
from tools.generate_video import GenerateVideoArgs, GenerateVideoTool, upscaled_size


def video(app: AppContext, **args: Any) -> Any:
    ctx, _ = run_ctx(app)
    args = {"prompt": "waves at dusk", "width": 64, "height": 64, "frames": 3, "steps": 2, **args}
    return GenerateVideoTool().run(GenerateVideoArgs(**args), ctx)


def audio(app: AppContext, **args: Any) -> Any:
    ctx, _ = run_ctx(app)
    args = {"prompt": "sound of waves", "duration": 0.5, "steps": 2, **args}
    return GenerateAudioTool().run(GenerateAudioArgs(**args), ctx)


def mp4_frames(path: str) -> tuple[dict[str, Any], int]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    return meta, sum(1 for _ in reader)


def test_video_is_an_mp4_with_the_frames_asked_for(gen_app: AppContext) -> None:
    result = video(gen_app, seed=5, fps=4)
    [artifact] = result.artifacts
    assert artifact.mime == "video/mp4" and artifact.path.endswith(".mp4")
    assert Path(artifact.path).read_bytes()[4:8] == b"ftyp"
    meta, count = mp4_frames(artifact.path)
    assert count == 3 and tuple(meta["size"]) == (64, 64) and meta["fps"] == 4
    assert {k: artifact.meta[k] for k in ("model", "seed", "steps", "frames", "fps", "width", "height")} == {
        "model": "video-gen",
        "seed": 5,
        "steps": 2,
        "frames": 3,
        "fps": 4,
        "width": 64,
        "height": 64,
    }


def test_video_same_seed_same_bytes(gen_app: AppContext) -> None:
    first = video(gen_app, seed=9).artifacts[0].sha256
    assert video(gen_app, seed=9).artifacts[0].sha256 == first
    assert video(gen_app, seed=10).artifacts[0].sha256 != first


def test_video_falls_back_to_gif_without_ffmpeg(gen_app: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    def no_ffmpeg(*_: Any) -> bytes:
        raise ImportError("imageio_ffmpeg")

    monkeypatch.setattr("tools.media_encoding.mp4_bytes", no_ffmpeg)
    [artifact] = video(gen_app, seed=1).artifacts
    assert artifact.mime == "image/gif"
    gif = Image.open(artifact.path)
    assert gif.format == "GIF" and gif.n_frames == 3 and gif.size == (64, 64)


def test_upscale_pass_runs_the_xl_model(gen_app: AppContext) -> None:
    assert upscaled_size(576, 320) == (1024, 576)
    result = video(gen_app, seed=1, frames=2, upscale=True)
    meta, count = mp4_frames(result.artifacts[0].path)
    assert count == 2 and tuple(meta["size"]) == upscaled_size(64, 64) == (120, 120)
    assert result.data["upscale"] is True and "upscale_model_id" in result.data
    cached = gen_app.model_cache.keys()
    assert any(key.startswith("video-upscale:") for key in cached)


def test_audio_is_a_wav_at_the_vocoder_rate(gen_app: AppContext) -> None:
    result = audio(gen_app, seed=2)
    [artifact] = result.artifacts
    assert artifact.mime == "audio/wav" and artifact.path.endswith(".wav")
    with wave.open(artifact.path) as handle:
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (1, 2, 16000)
        assert handle.getnframes() == 8000  # 0.5 s
        samples = np.frombuffer(handle.readframes(8000), dtype="<i2")
    assert samples.std() > 0
    assert (result.data["sample_rate"], result.data["duration"], result.data["seed"]) == (16000, 0.5, 2)


def test_audio_same_seed_same_bytes(gen_app: AppContext) -> None:
    first = audio(gen_app, seed=4).artifacts[0].sha256
    assert audio(gen_app, seed=4).artifacts[0].sha256 == first
    assert audio(gen_app, seed=5).artifacts[0].sha256 != first


@pytest.mark.parametrize(
    ("name", "run"),
    [("video-gen", lambda app: video(app)), ("audio-gen", lambda app: audio(app))],
)
def test_missing_weights_is_one_line_naming_the_pull(isolated_env: Path, name: str, run: Any) -> None:
    app = AppContext(load_settings(profile="cpu", device="cpu"))
    with pytest.raises(ModelMissingError) as info:
        run(app)
    assert "\n" not in str(info.value)
    assert f"`modalgraph models pull {name}`" in str(info.value)
    assert not app.settings.artifacts_dir.exists() or not any(app.settings.artifacts_dir.rglob("*.*"))


def test_missing_upscaler_is_reported_before_drafting(
    tiny_models: dict[str, Path], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODALGRAPH_MODEL_VIDEO_GEN", str(tiny_models["video-gen"]))
    app = AppContext(load_settings(device="cpu"))
    with pytest.raises(ModelMissingError, match="models pull video-upscale"):
        video(app, upscale=True)
    assert app.model_cache.keys() == []


@pytest.mark.parametrize(
    ("model", "bad"),
    [
        (GenerateAudioArgs, {"duration": -1.0}),
        (GenerateAudioArgs, {"duration": 0}),
        (GenerateAudioArgs, {"steps": 0}),
        (GenerateVideoArgs, {"width": 513}),
        (GenerateVideoArgs, {"frames": 0}),
        (GenerateVideoArgs, {"steps": 10_000}),
    ],
)
def test_bad_arguments_are_refused(model: type, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        model(prompt="x", **bad)
    assert next(iter(bad)) in str(info.value)


def test_wav_bytes_clip_and_scale() -> None:
    from tools.media_encoding import wav_bytes

    data = wav_bytes(np.array([0.0, 0.5, 2.0, -2.0]), 8000)
    with wave.open(io.BytesIO(data)) as handle:
        assert handle.getframerate() == 8000
        assert np.frombuffer(handle.readframes(4), dtype="<i2").tolist() == [0, 16384, 32767, -32767]
