"""MCP servers' tools in the planner: the real third-party `mcp-server-time`, a server that dies
mid-call, and one whose command does not exist, all configured through `mcp_servers`."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.planning.plan import PlanError, Step, plan_json_schema, validate_plan
from agent.planning.planner import tool_docs
from agent.turns import TurnRunner, turn_json
from graphs.executor import run_step
from graphs.state import StepResult
from tools.context import RunContext

DYING_SERVER = Path(__file__).with_name("mcp_dying_server.py")
pytestmark = pytest.mark.skipif(shutil.which("mcp-server-time") is None, reason="pip install mcp-server-time")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    """One app with six servers: the time server, the dying one, one that cannot start again while
    its marker file exists, a command that is missing, one whose calls time out, and one that never
    answers the handshake."""
    refuse = tmp_path_factory.mktemp("flaky") / "refuse"
    servers = [
        {"name": "time", "command": ["mcp-server-time", "--local-timezone", "Etc/UTC"]},
        {"name": "dying", "command": [sys.executable, str(DYING_SERVER)], "timeout_s": 20},
        {"name": "flaky", "command": [sys.executable, str(DYING_SERVER), "--refuse-if", str(refuse)]},
        {"name": "ghost", "command": ["modalgraph-no-such-server"], "connect_timeout_s": 5},
        {"name": "slow", "command": [sys.executable, str(DYING_SERVER)], "timeout_s": 3},
        {
            "name": "mute",
            "command": [sys.executable, "-c", "import time; time.sleep(60)"],
            "connect_timeout_s": 3,
        },
    ]
    app = AppContext(load_settings(data_dir=tmp_path_factory.mktemp("mcp-client"), mcp_servers=servers))
    app.registry  # noqa: B018  connects, as a front end's start-up does
    yield app
    app.close()


def call(app: AppContext, tool: str, **args: Any) -> StepResult:
    tool_cls = app.registry.available()[tool]
    return run_step(Step(id=1, tool=tool, args=args), tool_cls, {}, RunContext(app=app))


def test_the_time_servers_tools_join_the_registry_with_their_schemas(app: AppContext) -> None:
    tools = app.registry.available()
    assert {"time__get_current_time", "time__convert_time", "dying__echo", "dying__crash"} <= set(tools)
    assert "search_images" in tools  # the built-in tools stay
    now = tools["time__get_current_time"]
    assert now.args_schema()["required"] == ["timezone"]
    assert "time" in now.description.lower()
    assert "- time__get_current_time(timezone): " in tool_docs(tools)
    branches = plan_json_schema(tools, 4)["properties"]["steps"]["items"]["anyOf"]
    branch = next(b for b in branches if b["properties"]["tool"] == {"const": "time__get_current_time"})
    assert branch["properties"]["args"]["properties"]["timezone"]["type"] == "string"


def test_calling_the_time_server_returns_the_time_in_tokyo(app: AppContext) -> None:
    result = call(app, "time__get_current_time", timezone="Asia/Tokyo")
    assert result.status == "done", result.error
    assert json.loads(result.output)["timezone"] == "Asia/Tokyo"
    assert json.loads(result.output)["datetime"].endswith("+09:00")


def test_invalid_arguments_are_refused_before_the_call(app: AppContext) -> None:
    tools = app.registry.available()
    with pytest.raises(PlanError, match="timezone"):
        validate_plan({"steps": [{"id": 1, "tool": "time__get_current_time", "args": {}}]}, tools, 4)
    # `crash` would kill its server: a refused call never reaches it, so the server stays up.
    refused = call(app, "dying__crash", reason=7)
    assert (
        refused.status == "failed" and refused.error == "invalid argument reason: 7 is not of type 'string'"
    )
    assert call(app, "dying__echo", text="still here").output == "still here"


def test_a_server_that_dies_mid_call_fails_the_step_and_the_next_call_starts_it_again(
    app: AppContext,
) -> None:
    died = call(app, "dying__crash", reason="now")
    assert died.status == "failed"
    assert "MCP server 'dying'" in died.error and "went away mid-call" in died.error, died.error
    assert "\n" not in died.error and "Traceback" not in died.error
    assert call(app, "time__get_current_time", timezone="Etc/UTC").status == "done"  # others unharmed
    after = call(app, "dying__echo", text="hello")
    assert after.status == "done" and after.output == "hello", after.error


def test_a_server_that_cannot_start_again_is_tried_after_a_pause_and_calls_between_fail_at_once(
    app: AppContext,
) -> None:
    assert call(app, "flaky__echo", text="up").output == "up"
    refuse = Path(app.settings.mcp_servers[2].command[-1])
    refuse.write_text("")
    assert "went away mid-call" in call(app, "flaky__crash", reason="now").error
    tried = call(app, "flaky__echo", text="again")  # the one try at once: the server exits at start
    assert tried.status == "failed" and "connecting again failed" in tried.error, tried.error
    assert "tried again in 5 s" in tried.error and "\n" not in tried.error
    between = call(app, "flaky__echo", text="again")
    assert between.status == "failed" and between.seconds < 1, between.error
    refuse.unlink()
    time.sleep(5)
    back = call(app, "flaky__echo", text="back")
    assert back.status == "done" and back.output == "back", back.error


def test_a_missing_server_command_leaves_its_tools_out_with_one_line(
    app: AppContext, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not any(name.startswith("ghost__") for name in app.registry.available())
    [note] = [line for line in app.registry.notes if "ghost" in line]
    assert "modalgraph-no-such-server" in note and "unavailable" in note and "\n" not in note


def test_a_call_past_the_timeout_fails_the_step_and_a_mute_server_is_left_out(app: AppContext) -> None:
    late = call(app, "slow__stall", seconds=30)
    assert late.status == "failed" and "gave no answer within 3 s" in late.error, late.error
    assert late.seconds < 15
    assert not any(name.startswith("mute__") for name in app.registry.available())
    [note] = [line for line in app.registry.notes if "'mute'" in line]
    assert "no answer within 3 s" in note


def test_a_turn_uses_a_remote_tool_while_another_server_is_missing(app: AppContext) -> None:
    plan = {"steps": [{"id": 1, "tool": "time__get_current_time", "args": {"timezone": "Asia/Tokyo"}}]}
    llm = ScriptedChatModel(replies=[json.dumps(plan), "It is evening in Tokyo."])
    values = TurnRunner(app, llm).run("t", "What time is it in Tokyo?", [], lambda event: None)
    out = turn_json(values)
    [step] = out["steps"]
    assert step["tool"] == "time__get_current_time" and step["status"] == "done"
    assert "Asia/Tokyo" in step["output"]
    assert out["answer"]["text"].startswith("It is evening in Tokyo.")
    assert "time__get_current_time" in llm.prompts[0][0].content  # the planner was shown the tool


def test_files_are_stored_here_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    import base64
    import hashlib

    import mcp_types as types

    from agent.core.errors import ToolUnavailableError
    from memory.artifacts import ArtifactStore
    from tools.remote.content import result_from_mcp

    store = ArtifactStore(tmp_path)
    data = b"\x89PNG not really"
    good = hashlib.sha256(data).hexdigest()
    encoded = base64.b64encode(data).decode()

    def no_links(uri: str) -> types.ReadResourceResult:
        raise AssertionError("no link to read")

    image = types.ImageContent(data=encoded, mime_type="image/png", meta={"sha256": good})
    reply = types.CallToolResult(content=[types.TextContent(text="made it"), image])
    result = result_from_mcp(reply, store, no_links, "box_tool")
    [artifact] = result.artifacts
    assert result.text == "made it" and artifact.sha256 == good and Path(artifact.path).read_bytes() == data
    damaged = types.ImageContent(data=encoded, mime_type="image/png", meta={"sha256": "0" * 64})
    with pytest.raises(ToolUnavailableError, match="arrived damaged"):
        result_from_mcp(types.CallToolResult(content=[damaged]), store, no_links, "box_tool")


def test_models_list_and_config_show_name_the_unavailable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app as cli

    servers = [{"name": "ghost", "url": "http://127.0.0.1:9/mcp", "token": "s3cret", "connect_timeout_s": 3}]
    monkeypatch.setenv("MODALGRAPH_MCP_SERVERS", json.dumps(servers))
    for command in (["models", "list"], ["config", "show"]):
        result = CliRunner().invoke(cli, command, env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        [row] = [line for line in result.output.splitlines() if line.startswith("│ ghost ")]
        assert "http://127.0.0.1:9/mcp" in row and " no " in row and "Connect" in row
        assert "s3cret" not in result.output


@pytest.mark.real_llm
@pytest.mark.slow
def test_the_real_planner_asks_the_time_server_for_tokyo(
    real_planner: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from agent.llm.llamacpp import LlamaCppChatModel

    servers = [{"name": "time", "command": ["mcp-server-time", "--local-timezone", "Etc/UTC"]}]
    app = AppContext(load_settings(data_dir=tmp_path_factory.mktemp("real-time"), mcp_servers=servers))
    try:
        llm = LlamaCppChatModel(model_path=str(real_planner), max_tokens=256)
        values = TurnRunner(app, llm).run("real", "What time is it in Tokyo?", [], lambda event: None)
        out = turn_json(values)
    finally:
        app.close()
    tools = [step["tool"] for step in out["plan"]["steps"]]
    assert "time__get_current_time" in tools, json.dumps(out["plan"])
    step = next(s for s in out["steps"] if s["tool"] == "time__get_current_time")
    assert step["status"] == "done", step
    clock = json.loads(step["output"])["datetime"][11:16]  # "HH:MM" in Tokyo
    hour, minute = int(clock[:2]), clock[3:]
    said = {clock, f"{hour % 12 or 12}:{minute}"}
    assert any(time_text in out["answer"]["text"] for time_text in said), out["answer"]["text"]


def test_a_cancelled_turn_stops_waiting_for_a_remote_call(app: AppContext) -> None:
    import threading

    tool = app.registry.available()["slow__stall"]
    threading.Timer(0.2, app.cancel.set).start()  # well before the server's 3 s timeout
    try:
        result = run_step(Step(id=1, tool="slow__stall", args={"seconds": 10}), tool, {}, RunContext(app=app))
    finally:
        app.cancel.clear()
    assert result.status == "failed" and result.error == "slow__stall: cancelled", result.error


def test_replaces_local_takes_a_name_only_with_the_same_schema_and_no_local_files(tmp_path: Path) -> None:
    import mcp_types as types

    from agent.core.mcp_server_spec import McpServerSpec
    from tools.registry import ToolRegistry
    from tools.remote.connections import RemoteServers
    from tools.remote.remote_tool import build_remote_tools

    local = ToolRegistry.default().available()
    servers = RemoteServers([McpServerSpec(name="box", url="http://box/mcp", replaces_local=True)], tmp_path)
    state = servers.states["box"]
    state.client = object()  # type: ignore[assignment]  # as if connected
    same = {name: local[name].args_schema() for name in ("generate_image", "describe_image")}
    state.tools = [
        *(
            types.Tool(name=name, description=f"remote {name}", input_schema=schema)
            for name, schema in same.items()
        ),
        types.Tool(
            name="speak", description="remote speak", input_schema={"type": "object", "properties": {}}
        ),
    ]
    built = build_remote_tools(servers, local)
    names = {tool.name: tool for tool in built.tools}
    assert set(names) == {"generate_image", "box__describe_image", "box__speak"}
    assert names["generate_image"].description == "remote generate_image"
    [files, other] = built.notes
    assert (
        "describe_image would be sent paths of this machine (image)" in files
        and "box__describe_image" in files
    )
    assert "speak takes other arguments than the local one" in other
