"""The generator box: `modalgraph mcp --http --tools generate_image` in its own process with the tiny
Stable Diffusion pipeline, and an app on "the laptop" (this process, without image weights) that
lists it in `mcp_servers` with `replaces_local`, so its planner still sees generate_image."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.planning.plan import Step
from agent.turns import TurnRunner, turn_json
from graphs.executor import run_step
from tests.local_servers import mcp_http_server
from tools.context import RunContext
from tools.generate_image import GenerateImageTool

TOKEN = "a-long-random-box-token"
ARGS = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "seed": 7}


@dataclass
class Box:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path


@pytest.fixture(scope="module")
def box(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """The box process on a free loopback port, serving generate_image with a token."""
    data = tmp_path_factory.mktemp("box")
    env = {key: value for key, value in __import__("os").environ.items() if not key.startswith("MODALGRAPH_")}
    env.update(
        MODALGRAPH_DATA_DIR=str(data),
        MODALGRAPH_CONFIG=str(data / "no-config.toml"),
        MODALGRAPH_MODEL_IMAGE_GEN=str(tiny_models["image-gen"]),
        MODALGRAPH_DEVICE="cpu",
        MODALGRAPH_MCP_TOKEN=TOKEN,
        HF_HUB_OFFLINE="1",
    )
    log = data / "box.log"
    with mcp_http_server("generate_image", env, log, "box") as (process, url):
        yield Box(process, url, data, log)


@pytest.fixture(scope="module")
def laptop(box: Box, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    server = {"name": "box", "url": box.url, "token": TOKEN, "replaces_local": True, "timeout_s": 120}
    app = AppContext(
        load_settings(data_dir=tmp_path_factory.mktemp("laptop"), device="cpu", mcp_servers=[server])
    )
    yield app
    app.close()


def test_the_planner_sees_the_box_generator_under_the_local_name(laptop: AppContext) -> None:
    tools = laptop.registry.available()
    assert getattr(tools["generate_image"], "server", None) == "box"  # the remote one won
    assert "box__generate_image" not in tools and not laptop.registry.notes
    assert tools["generate_image"].args_schema() == GenerateImageTool.args_schema()
    assert tools["generate_image"].args_model is GenerateImageTool.args_model  # checked as locally


def test_a_turn_makes_the_image_on_the_box_and_stores_it_here_by_hash(laptop: AppContext, box: Box) -> None:
    plan = {"steps": [{"id": 1, "tool": "generate_image", "args": ARGS}]}
    llm = ScriptedChatModel(replies=[json.dumps(plan), "Here is your circle."])
    values = TurnRunner(laptop, llm).run("t", "Draw a red circle", [], lambda event: None)
    [step] = turn_json(values)["steps"]
    assert step["tool"] == "generate_image" and step["status"] == "done", step
    assert "seed 7" in step["output"]  # the box's own text
    [artifact] = step["artifacts"]
    local = Path(artifact["path"])
    assert laptop.artifacts.contains(local) and artifact["mime"] == "image/png"
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    assert local.name == f"{digest}.png"  # stored under the hash it was checked against
    on_box = box.data_dir / "artifacts" / digest[:2] / f"{digest}.png"
    assert on_box.read_bytes() == local.read_bytes()  # the box's file, byte for byte


def test_a_box_that_goes_away_fails_the_step_with_a_clear_message(laptop: AppContext, box: Box) -> None:
    box.process.kill()
    box.process.wait(timeout=20)
    tool = laptop.registry.available()["generate_image"]
    started = time.monotonic()
    result = run_step(Step(id=1, tool="generate_image", args=ARGS), tool, {}, RunContext(app=laptop))
    assert result.status == "failed"
    assert "MCP server 'box'" in result.error and box.url in result.error, result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    assert time.monotonic() - started < 60  # not the 120 s call timeout
