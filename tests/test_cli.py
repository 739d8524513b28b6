"""The command line as a user runs it: JSON shapes, and bad configuration as one line + exit code."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.test_sessions import cli_env, modalgraph


def one_clear_line(proc: Any) -> str:
    assert proc.returncode not in (0, None)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_ask_json_shape(tmp_path: Path) -> None:
    plan = {
        "steps": [
            {"id": 1, "tool": "make_file", "args": {"content": "hello"}, "depends_on": []},
            {"id": 2, "tool": "boom", "args": {}, "depends_on": []},
        ]
    }
    proc = modalgraph("ask", "make a file", "--json", env=cli_env(tmp_path, [plan, "Made it."], "a"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"plan", "steps", "answer", "session"}
    assert out["plan"]["steps"][0] == {
        "id": 1,
        "tool": "make_file",
        "args": {"content": "hello"},
        "depends_on": [],
    }
    first, second = out["steps"]
    assert set(first) == {"id", "tool", "status", "output", "error", "artifacts"}
    assert first["status"] == "done" and first["error"] is None
    assert second["status"] == "failed" and "kaboom" in second["error"]
    (artifact,) = first["artifacts"]
    assert set(artifact) == {"path", "mime"} and artifact["mime"] == "text/plain"
    assert Path(artifact["path"]).read_text() == "hello"
    assert out["answer"]["text"].startswith("Made it.")
    assert out["answer"]["artifacts"] == [artifact]


def test_ask_starts_a_new_conversation_and_continue_picks_the_last_one_up(tmp_path: Path) -> None:
    from agent.core.settings import load_settings
    from memory.sessions import open_sessions

    replies = [{"steps": []}, "Paris."]
    first = modalgraph("ask", "capital of France?", "--json", env=cli_env(tmp_path, replies, "one"))
    assert first.returncode == 0, first.stderr
    session = json.loads(first.stdout)["session"]
    assert session.startswith("ask-") and session != "default"

    # A second plain ask is a new conversation: the planner is shown no earlier turn.
    env = cli_env(tmp_path, [{"steps": []}, "Madrid."], "two")
    second = modalgraph("ask", "capital of Spain?", env=env)
    assert second.returncode == 0, second.stderr
    named = [line for line in second.stderr.splitlines() if line.startswith("conversation ")]
    assert len(named) == 1 and "-c" in named[0]
    other = named[0].split()[1]
    assert other not in (session, "default")

    settings = load_settings(data_dir=Path(env["MODALGRAPH_DATA_DIR"]))
    store = open_sessions(settings)
    assert store.info(session).turns == 1 and store.info(other).turns == 1  # type: ignore[union-attr]

    # -c continues the most recent (the second), --session a named one.
    cont = modalgraph(
        "ask", "and of Italy?", "-c", "--json", env=cli_env(tmp_path, [{"steps": []}, "Rome."], "c")
    )
    assert cont.returncode == 0, cont.stderr
    assert json.loads(cont.stdout)["session"] == other
    named = modalgraph(
        "ask",
        "and Portugal?",
        "--session",
        session,
        "--json",
        env=cli_env(tmp_path, [{"steps": []}, "Lisbon."], "n"),
    )
    assert json.loads(named.stdout)["session"] == session
    assert store.info(session).turns == 2 and store.info(other).turns == 2  # type: ignore[union-attr]


def test_ask_continue_misuse_is_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path, [{"steps": []}, "x"], "m")
    line = one_clear_line(modalgraph("ask", "hi", "-c", env=env))
    assert "no earlier conversation to continue" in line
    both = modalgraph("ask", "hi", "-c", "--session", "k", env=env)
    assert both.returncode == 2 and "not both" in one_clear_line(both)


def test_plan_json_prints_only_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    plan = {"steps": [{"id": 1, "tool": "count", "args": {"marker": str(marker)}, "depends_on": []}]}
    proc = modalgraph("plan", "count please", "--json", env=cli_env(tmp_path, [plan], "p"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == plan
    assert not Path(str(marker) + ".count").exists()


def test_attachment_missing_is_one_line(tmp_path: Path) -> None:
    proc = modalgraph(
        "ask", "what is this", "--attach", str(tmp_path / "nope.jpg"), env=cli_env(tmp_path, [], "x")
    )
    assert "attachment not found" in one_clear_line(proc)


def test_unknown_model_is_one_line(tmp_path: Path) -> None:
    proc = modalgraph("models", "pull", "no-such-model", env=cli_env(tmp_path, [], "x"))
    assert "unknown model 'no-such-model'" in one_clear_line(proc)


def test_corrupt_gguf_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    env = cli_env(tmp_path, [], "x")
    env.update(MODALGRAPH_LLM_BACKEND="llamacpp", MODALGRAPH_MODEL_PLANNER=str(bad))
    line = one_clear_line(modalgraph("ask", "hi", env=env))
    assert ("GGUF" in line and "MODALGRAPH_MODEL_PLANNER" in line) or "models pull planner" in line


def test_gguf_with_good_magic_but_garbage_body_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    env = cli_env(tmp_path, [], "x")
    env.update(MODALGRAPH_LLM_BACKEND="llamacpp", MODALGRAPH_MODEL_PLANNER=str(bad))
    assert "cannot load GGUF" in one_clear_line(modalgraph("ask", "hi", env=env))


def test_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = cli_env(tmp_path, [{"steps": []}, "hi"], "x")
    env["MODALGRAPH_DATA_DIR"] = str(blocker / "data")
    line = one_clear_line(modalgraph("ask", "hi", env=env))
    assert "not writable" in line and "MODALGRAPH_DATA_DIR" in line


def test_invalid_setting_is_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path, [], "x")
    env["MODALGRAPH_MAX_STEPS"] = "lots"
    assert "max_steps" in one_clear_line(modalgraph("ask", "hi", env=env))


def test_unreachable_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path, [], "x")
    env.update(MODALGRAPH_LLM_BACKEND="openai", MODALGRAPH_LLM_BASE_URL="http://127.0.0.1:9/v1")
    started = time.monotonic()
    line = one_clear_line(modalgraph("ask", "hi", env=env))
    assert "MODALGRAPH_LLM_BASE_URL" in line and "127.0.0.1:9" in line
    assert time.monotonic() - started < 30


class _FakeOpenAI(BaseHTTPRequestHandler):
    replies: ClassVar[list[str]] = []
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        text = self.replies.pop(0)
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
                ],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
            return
        payload = {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_openai_compatible_server_gets_the_plan_schema(tmp_path: Path) -> None:
    pytest.importorskip("langchain_openai")
    plan = {"steps": [{"id": 1, "tool": "echo", "args": {"text": "hi"}, "depends_on": []}]}
    _FakeOpenAI.replies = [json.dumps(plan), "The echo said hi."]
    _FakeOpenAI.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = cli_env(tmp_path, [], "x")
        env.update(
            MODALGRAPH_LLM_BACKEND="openai",
            MODALGRAPH_LLM_BASE_URL=f"http://127.0.0.1:{server.server_port}/v1",
            MODALGRAPH_LLM_MODEL="local-model",
        )
        proc = modalgraph("ask", "echo hi", "--json", env=env)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["steps"][0]["output"] == "echo: hi"
    assert out["answer"]["text"] == "The echo said hi."
    plan_request = _FakeOpenAI.bodies[0]
    assert plan_request["model"] == "local-model"
    assert plan_request["response_format"]["type"] == "json_schema"
    schema = plan_request["response_format"]["json_schema"]["schema"]
    assert "echo" in json.dumps(schema)


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    import subprocess

    code = (
        "import sys, time; t = time.perf_counter(); import agent.cli.main; "
        "heavy = [m for m in ('torch', 'transformers', 'langgraph', 'langchain_core', 'chromadb', 'llama_cpp', "
        "'diffusers') if m in sys.modules]; print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, _seconds = out.rsplit(" ", 1)
    assert heavy == "[]"
