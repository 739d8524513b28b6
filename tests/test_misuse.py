"""Misuse: what a careless user, a second window or a forged request does must end in one clear line,
with nothing lost. Each case asserts the message, the absence of a traceback, and the data kept."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.planning.plan import PlanError, validate_plan
from tests import fake_tools
from tests.gguf_stub import tiny_gguf
from tests.test_sessions import ROOT, cli_env, modalgraph

# ---------------------------------------------------------------- two turns on one session


def _start_ask(request: str, session: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "ask", request, "--session", session],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_turn_on_a_busy_session_waits_and_both_turns_are_kept(tmp_path: Path) -> None:
    marker = str(tmp_path / "hold")
    plan = {"steps": [{"id": 1, "tool": "wait_for_file", "args": {"marker": marker}, "depends_on": []}]}
    env_a = cli_env(tmp_path, [plan, "answer A"], "a")
    first = _start_ask("request A", "s", env_a)
    deadline = time.monotonic() + 60
    while not Path(marker + ".started").exists():
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        assert time.monotonic() < deadline, "turn A never started its step"
        time.sleep(0.05)

    env_b = cli_env(tmp_path, [{"steps": []}, "answer B"], "b")
    second = _start_ask("request B", "s", env_b)
    time.sleep(4)  # B is started and blocked on the session, not finishing A's turn
    assert second.poll() is None, "the second turn did not wait for the first"
    Path(marker + ".go").write_text("")
    out_a, err_a = first.communicate(timeout=120)
    out_b, err_b = second.communicate(timeout=120)
    assert first.returncode == 0, err_a
    assert second.returncode == 0, err_b
    assert "answer A" in out_a and "answer B" in out_b
    assert "session s is busy" in out_b + err_b
    assert "Traceback" not in err_a + err_b

    shown = modalgraph("sessions", "show", "s", env=env_b)
    said = [
        line.split(" ", 1)[1] for line in shown.stdout.splitlines() if line.startswith(("you", "modalgraph"))
    ]
    assert said == ["request A", "answer A", "request B", "answer B"]


# ---------------------------------------------------------------- CLI usage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "-k", "0"], "Invalid value for '-k'"),
        (["search", "--nope"], "No such option: --nope"),
        (["ask"], "give the request as text or as --audio FILE"),
        (["index", "--bogus"], "No such option: --bogus"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["sessions", "show"], "Missing argument 'name'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = modalgraph(*args, env=cli_env(tmp_path, [], "usage"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "--help" in lines[0]


# ---------------------------------------------------------------- plans


@pytest.mark.parametrize("step_id", [0, 9, 10**30])
def test_step_ids_outside_one_to_the_step_limit_are_refused(step_id: int) -> None:
    tools = {"echo": fake_tools.EchoTool}
    plan = {"steps": [{"id": step_id, "tool": "echo", "args": {"text": "hi"}, "depends_on": []}]}
    with pytest.raises(PlanError, match=r"out of range|schema"):
        validate_plan(plan, tools, max_steps=8)


def test_step_ids_within_the_limit_pass() -> None:
    plan = {"steps": [{"id": 8, "tool": "echo", "args": {"text": "hi"}, "depends_on": []}]}
    assert validate_plan(plan, {"echo": fake_tools.EchoTool}, max_steps=8).steps[0].id == 8


# ---------------------------------------------------------------- forged web requests


def test_the_chat_refuses_a_file_that_was_not_uploaded_through_the_page(tmp_path: Path) -> None:
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.web.app import _read_message
    from agent.web.uploads import UploadRejectedError

    app = AppContext(load_settings())
    outside = tmp_path / "secret.png"
    from PIL import Image

    Image.new("RGB", (80, 80), "red").save(outside)
    forged_paths = (
        str(outside),
        str(app.settings.web_cache_dir / ".." / "secret.png"),
        str(app.settings.web_cache_dir / "x\0.png"),  # a NUL byte: no file can be named so
    )
    for forged in forged_paths:
        with pytest.raises(UploadRejectedError, match="was not uploaded through this page"):
            _read_message(app, {"text": "what is this?", "files": [forged]}, "default", 2**20)
    assert not any(app.settings.artifacts_dir.rglob("*.png")), "a forged file reached the artifact store"

    uploaded = app.settings.web_cache_dir / "abc" / "photo.png"
    uploaded.parent.mkdir(parents=True)
    Image.new("RGB", (80, 80), "blue").save(uploaded)
    text, attachments = _read_message(app, {"text": "and this?", "files": [str(uploaded)]}, "default", 2**20)
    assert text == "and this?" and attachments[0].mime == "image/png"


# ---------------------------------------------------------------- a full disk


def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `mount`, where the machine lets tests mount one (root on Linux);
    the test is skipped elsewhere."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or 'not permitted'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB disk: room for a few sessions, small enough to fill in a test."""
    yield from mounted_tmpfs(tmp_path / "small-disk", "3M")


def _fill(disk: Path, leave: int) -> Path:
    """Fill `disk` until only about `leave` bytes are free."""
    import shutil

    filler = disk / "filler.bin"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def test_a_turn_on_a_full_disk_says_so_in_one_line_and_loses_no_session(
    tmp_path: Path, small_disk: Path
) -> None:
    env = cli_env(tmp_path, [{"steps": []}, "first answer"], "full")
    env["MODALGRAPH_DATA_DIR"] = str(small_disk / "data")
    first = modalgraph("ask", "first request", "--session", "kept", env=env)
    assert first.returncode == 0, first.stderr

    filler = _fill(small_disk, leave=4096)
    env_full = cli_env(tmp_path, [{"steps": []}, "x" * 60_000], "full2")
    env_full["MODALGRAPH_DATA_DIR"] = str(small_disk / "data")
    failed = modalgraph("ask", "y" * 60_000, "--session", "kept", env=env_full)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "is full" in last and "move it aside" not in last, failed.stderr

    shown_full = modalgraph("sessions", "list", env=env_full)
    assert "move it aside" not in shown_full.stderr and "Traceback" not in shown_full.stderr

    filler.unlink()
    shown = modalgraph("sessions", "show", "kept", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "first request" in shown.stdout and "first answer" in shown.stdout


# ---------------------------------------------------------------- a damaged planner GGUF


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (tiny_gguf()[:-4], "truncated"),
        (b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64, "damaged"),
        (b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64, "no tensors"),
    ],
    ids=["cut-short", "garbage-header", "empty"],
)
def test_a_damaged_planner_is_refused_by_models_list_and_at_serve_start(
    tmp_path: Path, data: bytes, problem: str
) -> None:
    model = tmp_path / "planner.gguf"
    model.write_bytes(data)
    env = cli_env(tmp_path, [], "gguf")
    env.update(MODALGRAPH_LLM_BACKEND="llamacpp", MODALGRAPH_MODEL_PLANNER=str(model), COLUMNS="400")
    listed = modalgraph("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("│ planner "))
    assert " no " in row and problem in row, listed.stdout

    started = time.monotonic()
    served = modalgraph("serve", "--port", "1", env=env, timeout=60)
    assert served.returncode == 2 and time.monotonic() - started < 30
    line = served.stderr.strip()
    assert line.startswith("error: cannot load GGUF model 'planner'") and problem in line
    assert "\n" not in line and "Traceback" not in served.stderr


def test_a_whole_gguf_override_is_accepted(tmp_path: Path) -> None:
    model = tmp_path / "planner.gguf"
    model.write_bytes(tiny_gguf(b"trailing bytes are fine"))
    env = cli_env(tmp_path, [], "gguf")
    env.update(MODALGRAPH_MODEL_PLANNER=str(model), COLUMNS="400")
    row = next(
        line for line in modalgraph("models", "list", env=env).stdout.splitlines() if "planner" in line
    )
    assert " yes " in row, row


def test_the_web_chat_waits_for_a_turn_running_elsewhere_and_says_so(tmp_path: Path) -> None:
    import json
    import threading

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.llm.scripted import ScriptedChatModel
    from agent.turns import TurnRunner
    from agent.web.chat_stream import chat_turn

    app = AppContext(load_settings())
    runner = TurnRunner(app, ScriptedChatModel(replies=[json.dumps({"steps": []}), "web answer"]))
    updates: list[list[dict]] = []
    held, release = threading.Event(), threading.Event()

    def other_window() -> None:  # another process's turn, as far as the lock can tell
        with runner.sessions.turn_lock("shared"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=other_window)
    holder.start()
    held.wait(10)
    turn = threading.Thread(target=lambda: updates.extend(chat_turn(app, runner, "shared", "hi", [], bool)))
    turn.start()
    deadline = time.monotonic() + 20
    while not any("is busy" in str(m) for u in updates for m in u):
        assert time.monotonic() < deadline, f"no waiting note: {updates}"
        time.sleep(0.05)
    assert not any("web answer" in str(m.get("content")) for u in updates for m in u)
    release.set()
    turn.join(30)
    holder.join(10)
    assert "web answer" in str(updates[-1][-1]["content"])
    assert runner.history("shared")[0]["text"] == "hi"


# ---------------------------------------------------------------- bad files given to the CLI


def test_a_folder_attached_as_a_file_is_named_as_a_folder(tmp_path: Path) -> None:
    result = modalgraph("ask", "what is this?", "--attach", str(tmp_path), env=cli_env(tmp_path, [], "dir"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"error: attachment {tmp_path} is a folder; attach image or audio files one by one"
    )


def test_a_damaged_sessions_file_is_reported_and_left_in_place(tmp_path: Path) -> None:
    env = cli_env(tmp_path, [], "damaged")
    data = Path(env["MODALGRAPH_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    damaged = data / "sessions.sqlite"
    damaged.write_bytes(b"not a database at all" * 200)
    result = modalgraph("sessions", "list", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "is damaged" in line and "move it aside" in line
    assert damaged.read_bytes() == b"not a database at all" * 200  # reported, never replaced
