"""The web page's parts without a browser: upload checks, the host check, which files may be served,
turn events rendered as chat messages, streaming a real turn, and the sessions panel."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import wave
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.errors import ConfigError, ModalgraphError
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.turns import TurnRunner
from agent.web.chat_stream import TurnMessages, chat_turn, file_message, history_messages, run_streamed
from agent.web.serving import ServedFiles, check_host, file_route_target, is_loopback
from agent.web.sessions_panel import SessionsPanel
from agent.web.uploads import UploadRejectedError, accept_upload, audio_type
from memory.artifacts import ArtifactStore
from memory.library_manifest import LibraryManifest
from memory.library_roots import manifest_path
from memory.photo_filters import PhotoFilters
from tests import fake_tools
from tools.registry import ToolRegistry

MB = 2**20


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def wav_bytes(frames: int = 800) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x10\x00" * frames)
    return out.getvalue()


# ------------------------------------------------------------------ uploads


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def upload(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "uploads" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_an_image_is_stored_under_the_suffix_of_what_it_is(tmp_path: Path, store: ArtifactStore) -> None:
    data = png_bytes()
    artifact = accept_upload(upload(tmp_path, "holiday.jpg", data), store, MB)
    assert artifact.mime == "image/png" and artifact.path.endswith(".png")
    assert Path(artifact.path).read_bytes() == data and store.contains(artifact.path)
    assert artifact.meta["uploaded_as"] == "holiday.jpg"


def test_wav_and_mp3_uploads_are_recognised_by_their_headers(tmp_path: Path, store: ArtifactStore) -> None:
    wav = accept_upload(upload(tmp_path, "voice.bin", wav_bytes()), store, MB)
    assert wav.mime == "audio/wav" and wav.path.endswith(".wav")
    assert audio_type(b"ID3\x04\x00" + b"\x00" * 64) == "audio/mpeg"
    assert audio_type(bytes([0xFF, 0xFB, 0x90, 0x64]) + b"\x00" * 64) == "audio/mpeg"
    assert audio_type(bytes([0xFF, 0xFB, 0xF0, 0x64]) + b"\x00" * 64) is None  # reserved bitrate
    assert audio_type(b"OggS" + b"\x00" * 32) == "audio/ogg"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.png", b"meeting at noon, bring the slides\n" * 20, "neither an image nor audio"),
        ("page.png", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "neither"),
        ("cut.png", png_bytes(size=(300, 200))[:300], "cannot be read"),
        ("empty.png", b"", "is empty"),
        ("silent.wav", wav_bytes(frames=0), "holds no sound"),
        ("broken.wav", wav_bytes()[:20], "cannot be read"),
    ],
)
def test_what_is_not_a_usable_image_or_audio_is_refused_by_content(
    tmp_path: Path, store: ArtifactStore, name: str, data: bytes, reason: str
) -> None:
    with pytest.raises(UploadRejectedError, match=reason) as caught:
        accept_upload(upload(tmp_path, name, data), store, MB)
    assert name in str(caught.value)
    assert not store.root.exists() or not any(p.is_file() for p in store.root.rglob("*"))


def test_uploads_over_the_limit_are_refused_naming_the_setting(tmp_path: Path, store: ArtifactStore) -> None:
    big = upload(tmp_path, "big.png", png_bytes(size=(600, 600)) + b"\x00" * (2 * MB))
    with pytest.raises(UploadRejectedError, match=r"limited to 1 MB.*MODALGRAPH_WEB_MAX_UPLOAD_MB"):
        accept_upload(big, store, MB)


def test_the_upload_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().web_max_upload_mb == 25
    monkeypatch.setenv("MODALGRAPH_WEB_MAX_UPLOAD_MB", "3")
    assert load_settings().web_max_upload_mb == 3
    monkeypatch.setenv("MODALGRAPH_WEB_MAX_UPLOAD_MB", "0")
    with pytest.raises(ConfigError, match="web_max_upload_mb"):
        load_settings()


# ------------------------------------------------------------------ host and files


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_need_no_flag(host: str) -> None:
    assert is_loopback(host)
    assert check_host(host, allow_remote=False) is None


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "my-laptop.local", "example.com"]
)
def test_other_hosts_are_refused_without_the_flag_and_warned_about_with_it(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_host(host, allow_remote=False)
    warning = check_host(host, allow_remote=True)
    assert warning is not None and host in warning and "no login" in warning


def test_serve_refuses_a_public_host_in_one_line_before_loading_anything(tmp_path: Path) -> None:
    from tests.test_cli import one_clear_line
    from tests.test_sessions import cli_env, modalgraph

    env = cli_env(tmp_path, [], "x")
    line = one_clear_line(modalgraph("serve", "--host", "0.0.0.0", env=env, timeout=30))
    assert "refusing to listen on 0.0.0.0" in line and "--allow-remote" in line


@pytest.fixture
def files_setup(tmp_path: Path) -> tuple[ServedFiles, dict[str, Path]]:
    """A data dir with an artifact, a secret beside it, and a library folder with odd files."""
    settings = load_settings()
    settings.ensure_data_dir()
    store = ArtifactStore(settings.artifacts_dir)
    photos = tmp_path / "photos"
    (photos / ".thumbnails").mkdir(parents=True)
    paths = {
        "artifact": Path(store.put_bytes(png_bytes(), ".png", "image/png").path),
        "speech": Path(store.put_bytes(wav_bytes(), ".wav", "audio/wav").path),
        "html": Path(store.put_bytes(b"<script>alert(1)</script>", ".html", "text/html").path),
        "secret": settings.data_dir / "secret.txt",
        "db": settings.sessions_db,
        "photo": photos / "cat.png",
        "notes": photos / "notes.txt",
        "hidden": photos / ".thumbnails" / "cat.png",
        "outside": tmp_path / "elsewhere.png",
        "cache": settings.web_cache_dir / "abc" / "upload.png",
    }
    paths["cache"].parent.mkdir(parents=True)
    for key in ("secret", "db", "notes"):
        paths[key].write_text("TOP SECRET")
    for key in ("photo", "hidden", "outside", "cache"):
        paths[key].write_bytes(png_bytes())
    link = settings.artifacts_dir / "link.png"
    link.symlink_to(paths["outside"])
    paths["link"] = link
    LibraryManifest(manifest_path(settings)).add_root(str(photos.resolve()))
    return ServedFiles(settings), paths


def test_only_artifacts_and_library_images_are_shown(
    files_setup: tuple[ServedFiles, dict[str, Path]],
) -> None:
    files, paths = files_setup
    assert files.shows(paths["artifact"]) and files.shows(paths["speech"]) and files.shows(paths["photo"])
    for refused in ("html", "secret", "db", "notes", "hidden", "outside", "link", "cache"):
        assert not files.shows(paths[refused]), refused
    sneaky = f"{paths['artifact'].parent}/../../secret.txt"
    assert not files.shows(sneaky)
    assert str(paths["photo"].parent.resolve()) in files.allowed_paths()
    assert str(paths["db"]) in files.blocked_paths()


def test_the_file_route_also_serves_the_pages_own_cache_and_never_urls(
    files_setup: tuple[ServedFiles, dict[str, Path]],
) -> None:
    files, paths = files_setup
    assert files.serves(str(paths["cache"])) and files.serves(str(paths["artifact"]))
    assert not files.serves(str(paths["cache"].parent))  # a folder
    assert not files.serves(f"{paths['cache'].parent}/../../secret.txt")
    assert not files.serves("https://example.com/cat.png")


def test_thumbnails_are_made_for_shown_photos_only_and_served_small(
    files_setup: tuple[ServedFiles, dict[str, Path]],
) -> None:
    files, paths = files_setup
    Image.new("RGB", (900, 600), (10, 120, 200)).save(paths["photo"], format="PNG")
    thumb = files.thumbnail(str(paths["photo"]))
    assert thumb is not None and files.shows(thumb) and files.serves(thumb)
    with Image.open(thumb) as image:
        assert max(image.size) == 256
    assert str(files.settings.thumbnails_dir) in files.allowed_paths()
    for refused in ("secret", "db", "hidden", "outside", "link", "notes"):
        assert files.thumbnail(str(paths[refused])) is None, refused
    assert files.thumbnail(f"{paths['photo'].parent}/../elsewhere.png") is None
    # A photo the index still lists but whose file is gone: a grey placeholder keeps its place.
    placeholder = files.thumbnail(str(paths["photo"].parent / "gone.jpg"))
    assert placeholder is not None and Path(placeholder).name == "unavailable.jpg"
    # The thumbnail folder serves the thumbnails, nothing else put there, and no way out of it.
    stray = files.settings.thumbnails_dir / "notes.txt"
    stray.write_text("not a thumbnail")
    assert not files.serves(str(stray))
    assert not files.serves(f"{files.settings.thumbnails_dir}/../secret.txt")


def test_file_route_targets() -> None:
    assert file_route_target("/gradio_api/file=/etc/passwd") == "/etc/passwd"
    assert file_route_target("/gradio_api/file//etc/passwd") == "/etc/passwd"
    assert file_route_target("/gradio_api/file=a/../b") == "a/../b"
    assert file_route_target("/gradio_api/upload") is None
    assert file_route_target("/") is None


# ------------------------------------------------------------------ events -> messages


def _titles(view: TurnMessages) -> list[str]:
    return [m["metadata"]["title"] for m in view.messages if m.get("metadata")]


def test_plan_and_steps_render_live_with_status_and_a_failure_message(tmp_path: Path) -> None:
    inside = tmp_path / "inside.png"
    inside.write_bytes(png_bytes())
    view = TurnMessages(shows=lambda path: path == str(inside))
    steps = [
        {"id": 1, "tool": "describe_image", "args": {"image": "/x/cat.png"}, "depends_on": []},
        {"id": 2, "tool": "speak", "args": {"text": "<step-1>"}, "depends_on": [1]},
    ]
    view({"type": "plan", "plan": {"steps": steps}, "error": None, "attempts": 1})
    assert _titles(view) == [
        "Plan: 2 steps",
        "○ step 1 · describe_image: waiting",
        "○ step 2 · speak: waiting",
    ]
    assert "2. `speak`(text=<step-1>) (after 1)" in view.messages[0]["content"]
    view({"type": "step_start", "id": 1, "tool": "describe_image", "args": {}})
    view({"type": "progress", "id": 1, "message": "looking at cat.png", "fraction": 0.5})
    step1 = view.messages[1]["metadata"]
    assert step1["title"] == "⏳ step 1 · describe_image: running" and step1["status"] == "pending"
    assert step1["log"] == "looking at cat.png 50%"
    view(
        {
            "type": "step_end",
            "id": 1,
            "tool": "describe_image",
            "status": "done",
            "output": "a cat",
            "seconds": 1.5,
        }
    )
    assert step1["status"] == "done" and step1["duration"] == 1.5 and view.messages[1]["content"] == "a cat"
    view({"type": "step_start", "id": 2, "tool": "speak", "args": {}})
    view(
        {
            "type": "step_end",
            "id": 2,
            "tool": "speak",
            "status": "failed",
            "error": "no engine: install espeak-ng",
        }
    )
    step2 = view.messages[2]
    assert step2["metadata"]["title"] == "✗ step 2 · speak: failed"
    assert "status" not in step2["metadata"], "a failed step must stay open so its message shows"
    assert "no engine: install espeak-ng" in step2["content"] and "espeak-ng" in step2["metadata"]["log"]
    for word in ("Here ", "it ", "is."):
        view({"type": "token", "text": word})
    assert view.messages[-1] == {"role": "assistant", "content": "Here it is."}
    final = "Here it is.\n\nStep 2 (speak) failed: no engine"
    outside = {"path": "/etc/passwd", "mime": "text/plain"}
    view(
        {"type": "answer", "text": final, "artifacts": [{"path": str(inside), "mime": "image/png"}, outside]}
    )
    answer, picture, refused = view.messages[-3:]
    assert answer["content"] == final
    assert picture == {"role": "assistant", "content": {"path": str(inside), "alt_text": "inside.png"}}
    assert "/etc/passwd" in refused["content"] and "not shown" in refused["content"]


def test_no_valid_plan_and_a_resumed_turn_without_a_plan_event() -> None:
    view = TurnMessages(shows=lambda path: False)
    view({"type": "plan", "plan": None, "error": "unknown tool 'fly'", "attempts": 2})
    assert view.messages[0]["metadata"]["title"] == "✗ no valid plan" and "fly" in view.messages[0]["content"]
    view({"type": "step_end", "id": 3, "tool": "echo", "status": "skipped", "error": "it needs step 2"})
    assert view.messages[1]["metadata"]["title"] == "⤼ step 3 · echo: skipped"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _planning_titles(view: TurnMessages) -> list[str]:
    return [title for title in _titles(view) if "planning…" in title]


def test_planning_counts_seconds_until_the_plan_which_keeps_how_long_it_took() -> None:
    clock = FakeClock()
    view = TurnMessages(shows=lambda path: False, clock=clock)
    view.start_planning()
    assert view.planning and _planning_titles(view) == ["⏳ planning… 0.0 s"]
    assert view.messages[0]["metadata"]["status"] == "pending"  # Gradio's spinner
    clock.now += 2.44
    view.tick()
    assert _planning_titles(view) == ["⏳ planning… 2.4 s"]
    # Busy elsewhere: the note comes, planning still counts.
    view({"type": "waiting", "message": "session web is busy in another window, waiting…"})
    assert view.planning and len(view.messages) == 2
    clock.now += 0.66
    steps = [{"id": 1, "tool": "echo", "args": {"text": "a"}, "depends_on": []}]
    view({"type": "plan", "plan": {"steps": steps}, "error": None, "attempts": 1})
    assert not view.planning and _planning_titles(view) == []
    assert _titles(view) == [
        "session web is busy in another window, waiting…",
        "Plan: 1 step",
        "○ step 1 · echo: waiting",
    ]
    assert view.messages[1]["metadata"]["duration"] == 3.1
    clock.now += 5
    view.tick()  # planning is over: nothing changes
    assert _planning_titles(view) == [] and len(view.messages) == 3


def test_a_plan_without_steps_takes_the_planning_entry_away_and_the_answer_streams() -> None:
    view = TurnMessages(shows=lambda path: False, clock=FakeClock())
    view.start_planning()
    view({"type": "plan", "plan": {"steps": []}, "error": None, "attempts": 1})
    assert view.messages == [] and not view.planning
    view({"type": "token", "text": "Hello "})
    assert view.messages == [{"role": "assistant", "content": "Hello "}]
    view({"type": "token", "text": "there."})
    view({"type": "answer", "text": "Hello there.", "artifacts": []})
    assert view.messages == [{"role": "assistant", "content": "Hello there."}]


def test_a_failed_plan_or_a_turn_without_one_leaves_no_planning_entry_behind() -> None:
    clock = FakeClock()
    failed = TurnMessages(shows=lambda path: False, clock=clock)
    failed.start_planning()
    clock.now += 1.25
    failed({"type": "plan", "plan": None, "error": "unknown tool 'fly'", "attempts": 2})
    assert _titles(failed) == ["✗ no valid plan"] and failed.messages[0]["metadata"]["duration"] == 1.2
    tokens_first = TurnMessages(shows=lambda path: False, clock=clock)
    tokens_first.start_planning()
    tokens_first({"type": "token", "text": "hi"})  # no plan event at all: the answer still ends it
    assert tokens_first.messages == [{"role": "assistant", "content": "hi"}]
    broken = TurnMessages(shows=lambda path: False, clock=clock)
    broken.start_planning()
    broken.finish()  # the turn raised before planning was done
    assert broken.messages == [] and not broken.planning


def test_run_streamed_updates_the_planning_seconds_while_no_event_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.web import chat_stream

    monkeypatch.setattr(chat_stream, "TICK_SECONDS", 0.02)
    clock = FakeClock()
    view = TurnMessages(shows=lambda path: False, clock=clock)
    view.start_planning()
    go = threading.Event()

    def call(on_event: Any) -> dict[str, Any]:
        go.wait(10)  # the planner "thinks" until the test has seen the seconds count
        on_event({"type": "plan", "plan": {"steps": []}, "error": None, "attempts": 1})
        on_event({"type": "token", "text": "ok"})
        return {"answer": "ok"}

    stream = run_streamed(call, view, threading.Event())
    seen = []
    for _ in range(3):
        clock.now += 0.5
        next(stream)  # comes back with no event: a tick
        seen.extend(_planning_titles(view))
    assert seen == ["⏳ planning… 0.5 s", "⏳ planning… 1.0 s", "⏳ planning… 1.5 s"]
    go.set()
    for _ in stream:
        pass
    assert view.messages == [{"role": "assistant", "content": "ok"}]


def test_the_scripted_llm_can_take_its_time_over_a_reply() -> None:
    llm = ScriptedChatModel(replies=[{"delay_s": 0.3, "content": {"steps": []}}, "hi"])
    started = time.monotonic()
    assert llm.invoke("plan").content == '{"steps": []}'
    assert time.monotonic() - started >= 0.3
    assert llm.invoke("answer").content == "hi"


def test_history_shows_text_and_the_files_it_may(tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(png_bytes())
    history = [
        {"role": "user", "text": "look", "attachments": [{"path": str(picture), "mime": "image/png"}]},
        {
            "role": "assistant",
            "text": "a red box",
            "artifacts": [{"path": "/home/x/a.wav", "mime": "audio/wav"}],
        },
    ]
    messages = history_messages(history, shows=lambda path: path == str(picture))
    assert [m["role"] for m in messages] == ["user", "user", "assistant", "assistant"]
    assert messages[1]["content"]["path"] == str(picture)
    assert "/home/x/a.wav" in messages[3]["content"]
    assert file_message({"path": str(picture)}, "user", lambda p: True)["content"]["alt_text"] == "p.png"


def test_run_streamed_relays_events_returns_values_and_cancels_when_dropped() -> None:
    cancel = threading.Event()
    view = TurnMessages(shows=lambda path: False)

    def call(on_event: Any) -> dict[str, Any]:
        for word in ("a ", "b"):
            on_event({"type": "token", "text": word})
        return {"answer": "ab"}

    stream = run_streamed(call, view, cancel)
    updates = 0
    while True:
        try:
            next(stream)
            updates += 1
        except StopIteration as stop:
            assert stop.value == {"answer": "ab"}
            break
    assert updates >= 1 and view.messages[-1]["content"] == "a b"

    def boom(on_event: Any) -> dict[str, Any]:
        raise ConfigError("the backend is down")

    with pytest.raises(ConfigError, match="backend is down"):
        list(run_streamed(boom, view, cancel))

    started = threading.Event()

    def slow(on_event: Any) -> dict[str, Any]:
        on_event({"type": "token", "text": "x"})
        started.set()
        cancel.wait(10)
        return {}

    dropped = run_streamed(slow, view, cancel)
    next(dropped)
    dropped.close()  # the browser went away
    assert cancel.wait(5), "closing the stream did not cancel the turn"


@pytest.fixture
def fake_app() -> AppContext:
    app = AppContext(load_settings(max_steps=4))
    app.__dict__["registry"] = ToolRegistry(fake_tools.ALL)
    return app


def test_a_real_turn_streams_the_users_message_first_then_steps_then_the_answer(fake_app: AppContext) -> None:
    plan = {"steps": [{"id": 1, "tool": "make_file", "args": {"content": "hi"}, "depends_on": []}]}
    runner = TurnRunner(fake_app, ScriptedChatModel(replies=[json.dumps(plan), "Wrote it for you."]))
    files = ServedFiles(fake_app.settings)
    updates = list(chat_turn(fake_app, runner, "web", "write hi", [], files.shows))
    user, planning = updates[0]  # the planning entry shows at once, before the planner answers
    assert user == {"role": "user", "content": "write hi"}
    assert planning["metadata"]["title"].startswith("⏳ planning… ")
    assert len(updates) >= 3
    final = updates[-1]
    assert final[0]["content"] == "write hi"
    assert final[1]["metadata"]["title"] == "Plan: 1 step"
    assert final[2]["metadata"]["title"] == "✓ step 1 · make_file: done"
    assert final[3]["content"].startswith("Wrote it for you.")
    assert final[4]["content"]["path"].endswith(".txt")  # the artifact, shown as a file
    assert [h["text"] for h in runner.history("web")] == ["write hi", final[3]["content"]]


# ------------------------------------------------------------------ sessions panel


def test_sessions_panel_creates_renames_opens_and_deletes(fake_app: AppContext) -> None:
    runner = TurnRunner(fake_app, ScriptedChatModel(replies=[json.dumps({"steps": []}), "hello back"]))
    panel = SessionsPanel(runner, shows=lambda path: False)
    assert panel.names() == ["default"]
    runner.run("first", "hello", [], lambda e: None)
    view = panel.create("second")
    assert view.current == "second" and view.messages == [] and "nothing said yet" in view.info
    assert set(panel.names()) == {"first", "second"}
    with pytest.raises(ConfigError, match="exists already"):
        panel.create("first")
    with pytest.raises(ConfigError, match="invalid session name"):
        panel.create("../etc")
    renamed = panel.rename("first", "greetings")
    assert renamed.current == "greetings" and [m["content"] for m in renamed.messages] == [
        "hello",
        "hello back",
    ]
    assert "1 turn" in renamed.info and "first" not in panel.names()
    after = panel.delete("greetings")
    assert after.current == "second" and "deleted **greetings**" in after.info
    assert panel.names() == ["second"]


def test_the_web_cache_dir_is_in_the_data_dir(isolated_env: Path) -> None:
    assert load_settings().web_cache_dir == isolated_env / "web-cache"
    assert os.environ["MODALGRAPH_DATA_DIR"] == str(isolated_env)


# ------------------------------------------------------------------ library panel


def test_indexing_reports_progress_and_a_summary(
    library_app: AppContext, heldout_folder: Path, tmp_path: Path
) -> None:
    from agent.web.library_panel import index_folder, library_status

    folder = tmp_path / "few"
    folder.mkdir()
    for source in sorted(heldout_folder.iterdir())[:5]:
        (folder / source.name).write_bytes(source.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    seen: list[tuple[float | None, str]] = []
    summary = index_folder(library_app, str(folder), lambda fraction, desc: seen.append((fraction, desc)))
    assert "5 new or changed images" in summary and "1 skipped" in summary and "broken.png" in summary
    assert seen[0] == (None, "scanning the folder")
    fractions = [f for f, _ in seen if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "5 images indexed" in library_status(library_app)
    with pytest.raises(ModalgraphError, match="not a folder"):
        index_folder(library_app, str(folder / "nope"), lambda f, d: None)


def test_the_grid_lists_thumbnails_newest_first_searches_and_loads_more(
    indexed_world: AppContext, heldout_folder: Path, tmp_path: Path
) -> None:
    from agent.web.photo_grid import example_image, next_page, start_listing, view_text

    files = ServedFiles(indexed_world.settings)
    grid = start_listing(indexed_world, files, 4, text="a red circle")
    assert len(grid.photos) == 4 and grid.note.startswith("4 results for “a red circle”")
    first = grid.photos[0]
    assert Path(first.path).parent == heldout_folder and f" · {Path(first.path).name} · " in first.caption
    assert Path(first.thumb).is_relative_to(indexed_world.settings.thumbnails_dir)  # never the original
    assert files.shows(first.thumb)
    assert float(first.caption.split(" · ")[0]) >= float(grid.photos[-1].caption.split(" · ")[0])
    example = sorted(heldout_folder.iterdir())[0]
    similar = start_listing(indexed_world, files, 3, image=str(example))
    assert len(similar.photos) == 3 and "photos like" in similar.note
    assert str(example) not in [photo.path for photo in similar.photos]  # the same picture is not "similar"

    # No text, no filter: the whole library, newest first, a page at a time, each photo once.
    newest = start_listing(indexed_world, files, 50)
    assert len(newest.photos) == 50 and newest.listing.more and "more below" in newest.note
    tiles = list(newest.photos)
    while True:
        following = next_page(indexed_world, files, newest.listing, tiles)
        tiles += following.photos
        newest = following
        if not following.listing.more:
            break
    assert len(tiles) == 120 and len({tile.path for tile in tiles}) == 120
    taken = [tile.details["taken"] for tile in tiles]
    assert taken == sorted(taken, reverse=True)
    assert newest.note.startswith("120 results")
    # Filters alone: the renders carry no EXIF, so their file dates stand in, marked as such.
    filtered = start_listing(indexed_world, files, 3, filters=PhotoFilters(start=date(2000, 1, 1)))
    assert len(filtered.photos) == 3 and "(file date)" in filtered.photos[0].caption
    assert "taken on or after 2000-01-01" in filtered.note
    text = view_text(filtered.photos[0], present=True)
    assert "**Taken:**" in text and "the file's date" in text and "**Camera:** unknown" in text
    fake = upload(tmp_path, "example.png", wav_bytes())
    with pytest.raises(UploadRejectedError, match="the example must be an image"):
        example_image(str(fake), MB)


def test_a_photo_gone_or_broken_since_indexing_keeps_its_tile_greyed(
    library_app: AppContext, heldout_folder: Path, tmp_path: Path
) -> None:
    from agent.web.photo_grid import start_listing, view_text

    folder = tmp_path / "few"
    folder.mkdir()
    for source in sorted(heldout_folder.iterdir())[:3]:
        (folder / source.name).write_bytes(source.read_bytes())
    library_app.image_index.index([folder])
    gone, broken, fine = sorted(folder.iterdir())
    gone.unlink()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    files = ServedFiles(library_app.settings)
    grid = start_listing(library_app, files, 10)
    thumbs = {Path(photo.path).name: Path(photo.thumb).name for photo in grid.photos}
    assert thumbs[gone.name] == thumbs[broken.name] == "unavailable.jpg"
    assert thumbs[fine.name].endswith("-256.jpg")
    tile = next(photo for photo in grid.photos if photo.path == str(gone))
    assert "gone or cannot be read" in view_text(tile, files.shows(tile.path))


def test_an_answers_images_come_as_one_grid_of_thumbnails_linking_the_originals(tmp_path: Path) -> None:
    from agent.web.chat_stream import FILE_ROUTE

    pictures = []
    for i in range(3):
        picture = tmp_path / f"p{i}.png"
        picture.write_bytes(png_bytes((40 * i, 10, 10)))
        pictures.append(picture)
    sound = tmp_path / "a.wav"
    sound.write_bytes(wav_bytes())
    made: list[str] = []

    def thumbs(path: str, digest: str | None) -> str | None:
        made.append(path)
        return None if path.endswith("p2.png") else path + ".thumb.jpg"

    view = TurnMessages(lambda path: True, thumbs=thumbs)
    artifacts = [{"path": str(p), "mime": "image/png"} for p in pictures]
    view(
        {
            "type": "answer",
            "text": "here",
            "artifacts": [*artifacts, {"path": str(sound), "mime": "audio/wav"}],
        }
    )
    grid, audio = view.messages[1], view.messages[2]
    assert grid["content"].count("<img") == 2 and 'class="photo-grid"' in grid["content"]
    assert f'href="{FILE_ROUTE}{pictures[0]}"' in grid["content"]  # opens the full-size original
    assert f'src="{FILE_ROUTE}{pictures[0]}.thumb.jpg"' in grid["content"]
    assert audio["content"]["path"] == str(sound)
    assert made == [str(p) for p in pictures]
    # A saved session shows its answers' images the same way; the user's attachments as sent.
    history = [
        {"role": "user", "text": "look", "attachments": artifacts[:1]},
        {"role": "assistant", "text": "found", "artifacts": artifacts[:2]},
    ]
    messages = history_messages(history, lambda path: True, thumbs)
    assert messages[1]["content"]["path"] == str(pictures[0])
    assert messages[3]["content"].count("<img") == 2
