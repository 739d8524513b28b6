"""Sessions on disk: a turn killed with SIGKILL in one process is finished by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import fake_tools

ROOT = Path(__file__).resolve().parents[1]


def cli_env(tmp_path: Path, script: list, name: str) -> dict[str, str]:
    script_file = tmp_path / f"{name}.json"
    script_file.write_text(json.dumps(script))
    env = dict(os.environ)
    env.update(
        MODALGRAPH_LLM_BACKEND="scripted",
        MODALGRAPH_LLM_SCRIPT=str(script_file),
        MODALGRAPH_EXTRA_TOOLS=json.dumps(fake_tools.SPECS),
        PYTHONPATH=str(ROOT),
    )
    return env


def modalgraph(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sigkill_mid_turn_then_resume_in_a_new_process(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    plan = {
        "steps": [
            {"id": 1, "tool": "count", "args": {"marker": a}, "depends_on": []},
            {"id": 2, "tool": "wait_for_file", "args": {"marker": b}, "depends_on": [1]},
        ]
    }
    env1 = cli_env(tmp_path, [plan], "first")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "ask", "first request", "--session", "k"],
        env=env1,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not Path(b + ".started").exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "step 2 never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert Path(a + ".count").read_text() == "1"

    listing = modalgraph("sessions", "list", env=env1)
    assert listing.returncode == 0 and "interrupted" in listing.stdout

    Path(b + ".go").write_text("")
    env2 = cli_env(tmp_path, ["finished the first", {"steps": []}, "second answer"], "second")
    second = modalgraph("ask", "second request", "--session", "k", "--json", env=env2)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["answer"]["text"] == "second answer"
    assert Path(a + ".count").read_text() == "1", "the finished step ran again"
    assert Path(b + ".count").read_text() == "2", "the interrupted step was not re-run"

    shown = modalgraph("sessions", "show", "k", env=env2)
    texts = [line for line in shown.stdout.splitlines() if line.strip()]
    assert [t.split(" ", 1)[1] for t in texts if t.startswith(("you", "modalgraph"))] == [
        "first request",
        "finished the first",
        "second request",
        "second answer",
    ]


def test_sessions_delete_and_unknown(tmp_path: Path) -> None:
    env = cli_env(tmp_path, [{"steps": []}, "hi"], "s")
    assert modalgraph("ask", "hello", "--session", "gone", env=env).returncode == 0
    assert "gone" in modalgraph("sessions", "list", env=env).stdout
    deleted = modalgraph("sessions", "delete", "gone", env=env)
    assert deleted.returncode == 0
    again = modalgraph("sessions", "delete", "gone", env=env)
    assert again.returncode == 2 and again.stderr.strip().startswith("error: no session named 'gone'")
    assert "Traceback" not in again.stderr
    bad = modalgraph("ask", "x", "--session", "../etc", env=env)
    assert bad.returncode == 2 and "invalid session name" in bad.stderr


def test_ctrl_c_cancels_the_turn_promptly_and_keeps_the_session(tmp_path: Path) -> None:
    plan = {"steps": [{"id": 1, "tool": "echo", "args": {"text": "x", "delay": 60}, "depends_on": []}]}
    env = cli_env(tmp_path, [plan], "c")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "ask", "slow one", "--session", "c"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    out = ""
    assert proc.stdout is not None
    while "started" not in out:
        assert time.monotonic() < deadline and proc.poll() is None
        out += proc.stdout.readline()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 130
    assert time.monotonic() - sent < 10
    # A new process replays its script from the start: the follow-up gets its own, without the slow plan.
    follow = modalgraph(
        "ask",
        "again",
        "--session",
        "c",
        "--json",
        env=cli_env(tmp_path, [{"steps": []}, "next answer"], "c2"),
    )
    assert follow.returncode == 0, follow.stderr
    assert "resuming" not in follow.stderr
    shown = modalgraph("sessions", "show", "c", env=env).stdout
    assert "(cancelled by the user)" in shown


def _runner(tmp_path: Path, replies: list) -> tuple:
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.llm.scripted import ScriptedChatModel
    from agent.turns import TurnRunner
    from tools.registry import ToolRegistry

    app = AppContext(load_settings())
    app.__dict__["registry"] = ToolRegistry([*fake_tools.ALL, fake_tools.CountTool])
    return TurnRunner(app, ScriptedChatModel(replies=replies))


def test_rename_keeps_the_history_and_an_unfinished_turn(tmp_path: Path) -> None:
    import pytest

    from agent.core.errors import BackendError, ConfigError
    from memory.sessions import rename_session, session_info, session_names

    marker = str(tmp_path / "m")
    plan = {"steps": [{"id": 1, "tool": "count", "args": {"marker": marker}, "depends_on": []}]}
    replies = [{"steps": []}, "first answer", plan, {"raise": "backend down"}, "finished now"]
    runner = _runner(tmp_path, replies)
    saver = runner.checkpointer
    runner.run("old", "hello", [], lambda e: None)
    with pytest.raises(BackendError):
        runner.run("old", "count once", [], lambda e: None)
    assert runner.interrupted("old") == "count once"

    def rows(table: str, name: str) -> int:
        return saver.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?", (name,)).fetchone()[0]

    before = {table: rows(table, "old") for table in ("checkpoints", "writes")}
    assert all(before.values())
    rename_session(saver, "old", "new")
    assert {table: rows(table, "new") for table in before} == before
    assert not any(rows(table, "old") for table in before)
    assert session_names(saver) == ["new"] and session_info(saver, "old") is None
    assert runner.interrupted("new") == "count once"
    values = runner.resume("new", lambda e: None)
    assert values["answer"]["text"] == "finished now"
    assert Path(marker + ".count").read_text() == "1", "the step that had finished ran again"
    assert [h["text"] for h in runner.history("new")] == [
        "hello",
        "first answer",
        "count once",
        "finished now",
    ]

    with pytest.raises(ConfigError, match="no session named 'gone'"):
        rename_session(saver, "gone", "x")
    with pytest.raises(ConfigError, match="invalid session name"):
        rename_session(saver, "new", "../etc")
    from memory.sessions import create_session

    assert create_session(saver, "taken")
    with pytest.raises(ConfigError, match="'taken' exists already"):
        rename_session(saver, "new", "taken")
    assert session_info(saver, "new").turns == 2  # type: ignore[union-attr]


def test_a_created_session_is_listed_empty_and_takes_turns(tmp_path: Path) -> None:
    from memory.sessions import create_session, session_info, session_names

    runner = _runner(tmp_path, [{"steps": []}, "hi there"])
    saver = runner.checkpointer
    assert create_session(saver, "fresh")
    assert not create_session(saver, "fresh")
    info = session_info(saver, "fresh")
    assert session_names(saver) == ["fresh"] and info is not None and info.turns == 0 and not info.interrupted
    assert runner.interrupted("fresh") is None and runner.history("fresh") == []
    assert runner.run("fresh", "hello", [], lambda e: None)["answer"]["text"] == "hi there"
    assert not create_session(saver, "fresh")
    assert session_info(saver, "fresh").turns == 1  # type: ignore[union-attr]
