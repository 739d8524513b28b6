"""Sessions kept between processes: a turn killed with SIGKILL in one process is finished by the next
one. The tests taking `sessions_backend` run on SQLite and on PostgreSQL (tests/session_backends.py)."""

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


def test_sigkill_mid_turn_then_resume_in_a_new_process(tmp_path: Path, sessions_backend: str) -> None:
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


def test_rename_keeps_the_history_and_an_unfinished_turn(tmp_path: Path, sessions_backend: str) -> None:
    import pytest

    from agent.core.errors import BackendError, ConfigError
    from tests.session_backends import row_counts

    marker = str(tmp_path / "m")
    plan = {"steps": [{"id": 1, "tool": "count", "args": {"marker": marker}, "depends_on": []}]}
    replies = [{"steps": []}, "first answer", plan, {"raise": "backend down"}, "finished now"]
    runner = _runner(tmp_path, replies)
    store = runner.sessions
    runner.run("old", "hello", [], lambda e: None)
    with pytest.raises(BackendError):
        runner.run("old", "count once", [], lambda e: None)
    assert runner.interrupted("old") == "count once"

    before = row_counts(store, "old")
    assert all(before.values())
    store.rename("old", "new")
    assert row_counts(store, "new") == before
    assert not any(row_counts(store, "old").values())
    assert store.names() == ["new"] and store.info("old") is None
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
        store.rename("gone", "x")
    with pytest.raises(ConfigError, match="invalid session name"):
        store.rename("new", "../etc")
    assert store.create("taken")
    with pytest.raises(ConfigError, match="'taken' exists already"):
        store.rename("new", "taken")
    assert store.info("new").turns == 2  # type: ignore[union-attr]
    with store.turn_lock("new"), pytest.raises(ConfigError, match="'new' is taking a turn elsewhere"):
        store.rename("new", "newer")  # a turn running on it keeps its name
    assert store.names() == ["taken", "new"]


def test_a_created_session_is_listed_empty_takes_turns_and_is_deleted(
    tmp_path: Path, sessions_backend: str
) -> None:
    import pytest

    from agent.core.errors import ConfigError

    runner = _runner(tmp_path, [{"steps": []}, "hi there"])
    store = runner.sessions
    assert store.create("fresh")
    assert not store.create("fresh")
    info = store.info("fresh")
    assert store.names() == ["fresh"] and info is not None and info.turns == 0 and not info.interrupted
    assert runner.interrupted("fresh") is None and runner.history("fresh") == []
    assert runner.run("fresh", "hello", [], lambda e: None)["answer"]["text"] == "hi there"
    assert not store.create("fresh")
    assert store.info("fresh").turns == 1  # type: ignore[union-attr]
    with store.turn_lock("fresh"), pytest.raises(ConfigError, match="'fresh' is taking a turn elsewhere"):
        store.delete("fresh")
    assert store.delete("fresh") and not store.delete("fresh")
    assert store.names() == [] and store.snapshot("fresh") is None
