"""Sessions on a PostgreSQL server (`sessions_url`), and what holds on both backends when two
processes write one session at once.

The tests that need a server take `empty_postgres` or `sessions_backend` (tests/session_backends.py)
and skip, saying why, when MODALGRAPH_TEST_POSTGRES_URL is unset; `.ci/run` starts one. The error
tests need none: they point at a port nothing listens on.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.errors import ConfigError, StorageError
from tests.session_backends import row_counts
from tests.test_sessions import ROOT, _runner, cli_env, modalgraph

TURNS = 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # free again once closed: nothing listens there


def test_two_processes_writing_one_session_at_once_keep_every_turn_whole(
    tmp_path: Path, sessions_backend: str
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = cli_env(tmp_path, [], "unused")
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.session_writer", who, str(TURNS), "shared", str(barrier)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("A", "B")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err

    runner = _runner(tmp_path, [])
    history = runner.history("shared")
    pairs = [(history[i]["text"], history[i + 1]["text"]) for i in range(0, len(history), 2)]
    assert [h["role"] for h in history] == ["user", "assistant"] * (2 * TURNS)
    assert all(answer == f"answer {request}" for request, answer in pairs), pairs
    for who in "AB":
        assert [r for r, _ in pairs if r.startswith(who)] == [f"{who}-{k}" for k in range(TURNS)]
    info = runner.sessions.info("shared")
    assert info is not None and info.turns == 2 * TURNS and not info.interrupted


def test_every_sessions_command_works_on_the_server(tmp_path: Path, empty_postgres: str) -> None:
    env = cli_env(tmp_path, [{"steps": []}, "hi from the server"], "pg")
    first = modalgraph("ask", "hello", "--json", env=env)  # a new session, named by the store
    assert first.returncode == 0, first.stderr
    name = json.loads(first.stdout)["session"]
    assert name.startswith("ask-")
    assert not (Path(env["MODALGRAPH_DATA_DIR"]) / "sessions.sqlite").exists(), "SQLite was used"
    again = modalgraph("ask", "again", "-c", "--json", env=cli_env(tmp_path, [{"steps": []}, "next"], "c"))
    assert again.returncode == 0 and json.loads(again.stdout)["session"] == name, again.stderr
    listing = modalgraph("sessions", "list", env=env)
    assert listing.returncode == 0 and name in listing.stdout
    shown = modalgraph("sessions", "show", name, env=env)
    said = [
        line.split(" ", 1)[1] for line in shown.stdout.splitlines() if line.startswith(("you", "modalgraph"))
    ]
    assert said == ["hello", "hi from the server", "again", "next"]
    deleted = modalgraph("sessions", "delete", name, env=env)
    assert deleted.returncode == 0, deleted.stderr

    import psycopg

    with psycopg.connect(empty_postgres) as conn:
        left = [
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        ]  # type: ignore[index]
    assert left == [0, 0, 0]


def test_a_killed_lock_holder_frees_the_session(tmp_path: Path, empty_postgres: str) -> None:
    """The advisory lock lives in the holder's connection: a process that dies mid-turn frees it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from agent.core.settings import load_settings\n"
            "from memory.sessions import open_sessions\n"
            "with open_sessions(load_settings()).turn_lock('held'):\n"
            "    print('held', flush=True); time.sleep(120)\n",
        ],
        env=cli_env(tmp_path, [], "holder"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = _runner(tmp_path, []).sessions
        with (
            pytest.raises(ConfigError, match="taking a turn elsewhere"),
            store.turn_lock("held", busy=ConfigError("taking a turn elsewhere")),
        ):
            pass
    finally:
        holder.kill()
        holder.wait(30)
    with store.turn_lock("held", busy=ConfigError("still held after its holder died")):
        pass


def test_an_unreachable_server_is_one_line_naming_the_host_never_the_password(tmp_path: Path) -> None:
    env = cli_env(tmp_path, [], "down")
    env["MODALGRAPH_SESSIONS_URL"] = f"postgresql://team:s3cret-pw@127.0.0.1:{closed_port()}/sessions"
    result = modalgraph("sessions", "list", env=env)
    line = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in line and "Traceback" not in line, result.stderr
    assert line.startswith("error: cannot use the sessions database on 127.0.0.1:")
    assert line.endswith("/sessions: Connection refused")
    assert "s3cret" not in result.stderr + result.stdout and "team" not in line


def test_a_password_in_a_malformed_url_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.core.settings import load_settings
    from memory.sessions import open_sessions

    monkeypatch.setenv("MODALGRAPH_SESSIONS_URL", "postgresql://team:my secret@localhost:5432/db")
    with pytest.raises(StorageError) as caught:
        open_sessions(load_settings())
    assert "my secret" not in str(caught.value) and "localhost:5432/db" in str(caught.value)


def test_a_url_that_is_not_postgres_is_refused_and_config_show_hides_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.core.settings import describe_sources, load_settings

    monkeypatch.setenv("MODALGRAPH_SESSIONS_URL", "mysql://team:pw@db/sessions")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        "invalid setting sessions_url: Value error, give a postgresql:// URL, or leave it unset "
        "for SQLite in the data dir (see `modalgraph config show`)"
    )
    monkeypatch.setenv("MODALGRAPH_SESSIONS_URL", "postgresql://team:s3cret-pw@db.example:5433/sessions")
    rows = {name: value for name, value, _ in describe_sources(load_settings())}
    assert rows["sessions_url"] == "postgresql://team:***@db.example:5433/sessions"


def test_without_the_postgres_extra_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.core.settings import load_settings
    from memory.sessions import open_sessions

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    monkeypatch.setenv("MODALGRAPH_SESSIONS_URL", "postgresql://localhost/sessions")
    with pytest.raises(ConfigError, match=r"pip install 'modalgraph\[postgres\]'"):
        open_sessions(load_settings())


def test_rows_of_all_three_tables_move_with_a_rename(tmp_path: Path, empty_postgres: str) -> None:
    runner = _runner(tmp_path, [{"steps": []}, "kept"])
    runner.run("before", "hello", [], lambda e: None)
    store = runner.sessions
    counts = row_counts(store, "before")
    assert all(counts.values()), counts  # blobs and writes too, so the move below is a real test
    store.rename("before", "after")
    assert row_counts(store, "after") == counts and not any(row_counts(store, "before").values())
    assert [h["text"] for h in runner.history("after")] == ["hello", "kept"]
