"""`modalgraph mcp`, driven by the official MCP client SDK: over stdio as a desktop app starts it, and
over Streamable HTTP with a token, on a shapes-world library indexed by the tiny CLIP."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from agent.context import AppContext
from agent.core.settings import load_settings
from memory.artifacts import Artifact
from tests.fake_tools import MEDIA_SPEC
from tests.local_servers import REPO, mcp_http_server
from tools.mcp_content import artifact_content, result_content
from tools.registry import ToolRegistry

TOKEN = "a-long-random-test-token"


@pytest.fixture(scope="module")
def library(shapes_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """33 held-out renders: one of each colour and shape, plus all four red circles."""
    folder = tmp_path_factory.mktemp("mcp-library")
    renders = sorted((shapes_world / "heldout").iterdir())
    for source in {*renders[::4], *(p for p in renders if p.name.endswith("-red-circle.png"))}:
        shutil.copy2(source, folder / source.name)
    return folder


@pytest.fixture(scope="module")
def server_env(
    shapes_clip_dir: Path, library: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of a `modalgraph mcp` process: its own data dir, with the library indexed by
    the tiny shapes CLIP, and one extra test tool that makes media files."""
    data = tmp_path_factory.mktemp("mcp-data")
    app = AppContext(load_settings(data_dir=data, device="cpu", models={"clip": str(shapes_clip_dir)}))
    app.image_index.index([library])
    app.image_index.close()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODALGRAPH_")}
    env.update(
        MODALGRAPH_DATA_DIR=str(data),
        MODALGRAPH_CONFIG=str(data / "no-config.toml"),
        MODALGRAPH_MODEL_CLIP=str(shapes_clip_dir),
        MODALGRAPH_DEVICE="cpu",
        MODALGRAPH_EXTRA_TOOLS=json.dumps([MEDIA_SPEC]),
        HF_HUB_OFFLINE="1",
    )
    return env


def over_stdio(env: dict[str, str], args: list[str], scenario: Callable[[Client], Awaitable[Any]]) -> Any:
    """Start `python -m agent mcp ARGS` as a desktop client would and run `scenario` against it."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "agent", "mcp", *args], env=env, cwd=str(REPO)
    )

    async def main() -> Any:
        with open(os.devnull, "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as client:
                return await scenario(client)

    return anyio.run(main)


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_stdio_serves_the_registry_and_finds_the_right_photos(
    server_env: dict[str, str], library: Path
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def scenario(client: Client) -> dict[str, Any]:
        media = await client.call_tool("make_media", {"steps": 3}, progress_callback=on_progress)
        links = [block for block in media.content if isinstance(block, types.ResourceLink)]
        return {
            "tools": (await client.list_tools()).tools,
            "search": await client.call_tool("search_images", {"query": "a red circle", "k": 3}),
            "bad_k": await client.call_tool("search_images", {"query": "a red circle", "k": 0}),
            "unknown_arg": await client.call_tool("search_images", {"query": "x", "colour": "red"}),
            "outside": await client.call_tool("search_images", {"image": "/etc/passwd"}),
            "media": media,
            "video": await client.read_resource(links[0].uri) if links else None,
            "not_linked": await _read_error(client, (library / "06000-red-circle.png").as_uri()),
        }

    got = over_stdio(server_env, [], scenario)

    registry = ToolRegistry.default([MEDIA_SPEC]).available()
    listed = {tool.name: tool for tool in got["tools"]}
    assert set(listed) == set(registry)
    for name, tool in registry.items():
        assert listed[name].description == tool.description
        assert listed[name].input_schema == tool.args_model.model_json_schema()

    search = got["search"]
    assert not search.is_error
    images = [block for block in search.content if isinstance(block, types.ImageContent)]
    assert len(images) == 3 and all(image.mime_type == "image/png" for image in images)
    by_digest = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in library.iterdir()}
    names = [by_digest.get(hashlib.sha256(base64.b64decode(image.data)).hexdigest()) for image in images]
    assert all(name is not None and name.endswith("-red-circle.png") for name in names), names
    assert all(name in text_of(search) for name in names)  # the text names the same files, in order

    assert got["bad_k"].is_error and text_of(got["bad_k"]).startswith("invalid argument k:")
    assert got["unknown_arg"].is_error and "colour" in text_of(got["unknown_arg"])
    assert got["outside"].is_error and "outside the image library" in text_of(got["outside"])
    for failed in ("bad_k", "unknown_arg", "outside"):
        assert "\n" not in text_of(got[failed]) and "Traceback" not in text_of(got[failed])

    media = got["media"]
    assert not media.is_error
    kinds = [type(block) for block in media.content]
    assert kinds == [types.TextContent, types.AudioContent, types.ResourceLink]
    assert media.content[1].mime_type == "audio/wav"
    assert base64.b64decode(media.content[1].data)[:4] == b"RIFF"
    link = media.content[2]
    assert link.uri.startswith("file://") and link.mime_type == "video/mp4"
    video = got["video"].contents[0]
    assert base64.b64decode(video.blob) == Path(link.uri.removeprefix("file://")).read_bytes()
    assert "only files a tool returned" in got["not_linked"]

    assert [message for _, _, message in progress] == ["step 1/3", "step 2/3", "step 3/3"]
    values = [value for value, _, _ in progress]
    assert values == sorted(values) and values[-1] == pytest.approx(100.0)


async def _read_error(client: Client, uri: str) -> str:
    from mcp.shared.exceptions import MCPError

    try:
        await client.read_resource(uri)
    except MCPError as exc:
        return exc.message
    return "read succeeded"


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["--tools", "search_images,nope"], None, "unknown or unavailable tool(s): nope"),
        (["--tools", ","], None, "--tools names no tool"),
        (["--http", "--host", "0.0.0.0"], None, "refusing to listen on 0.0.0.0"),
        (["--http", "--host", "0.0.0.0", "--allow-remote"], None, "without a token"),
        (["--http", "--host", "0.0.0.0", "--allow-remote"], "", "without a token"),
        (["--host", "0.0.0.0"], None, "apply to --http"),
        (["--port", "9000"], None, "apply to --http"),
    ],
)
def test_refusals_are_one_line(
    args: list[str],
    token: str | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.cli.main import main

    if token is not None:
        monkeypatch.setenv("MODALGRAPH_MCP_TOKEN", token)
    monkeypatch.setattr(sys, "argv", ["modalgraph", "mcp", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert out == "" and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def http_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`modalgraph mcp --http` on a free loopback port, with a token; yields its URL."""
    env = {**server_env, "MODALGRAPH_MCP_TOKEN": TOKEN}
    with mcp_http_server("make_media,search_images", env, tmp_path / "server.log") as (_, url):
        yield url


def test_http_needs_the_token_and_serves_the_subset(http_server: str) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx2.post(http_server, json=ping, headers=headers).status_code == 401
    wrong = {**headers, "Authorization": f"Bearer {TOKEN}x"}
    assert httpx2.post(http_server, json=ping, headers=wrong).status_code == 401

    async def main() -> tuple[list[str], types.CallToolResult]:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
        async with http, Client(streamable_http_client(http_server, http_client=http)) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            return names, await client.call_tool("speak", {"text": "hello"})

    names, not_served = anyio.run(main)
    assert names == ["make_media", "search_images"]  # --tools: only these, in the order given
    assert not_served.is_error and "unknown tool 'speak'" in text_of(not_served)


def test_result_conversion(tmp_path: Path) -> None:
    """Images and sounds inline within the size limit, links past it or for other kinds, and a
    vanished file named rather than raised."""
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    heic = tmp_path / "b.heic"
    heic.write_bytes(bytes(10))
    photo = Artifact(path=str(png), mime="image/png")
    blocks = result_content("found", [photo, Artifact(path=str(heic), mime="image/heic")])
    assert isinstance(blocks[0], types.TextContent) and blocks[0].text == "found"
    assert isinstance(blocks[1], types.ImageContent) and base64.b64decode(blocks[1].data) == png.read_bytes()
    assert isinstance(blocks[2], types.ResourceLink) and blocks[2].uri == heic.resolve().as_uri()

    big = artifact_content(Artifact(path=str(png), mime="image/png", sha256="ab"), inline_limit=50)
    assert isinstance(big, types.ResourceLink) and big.size == 108 and big.meta == {"sha256": "ab"}
    inline = artifact_content(Artifact(path=str(png), mime="image/png", sha256="ab"))
    assert isinstance(inline, types.ImageContent) and inline.meta == {"sha256": "ab"}  # checked on arrival
    gone = artifact_content(Artifact(path=str(tmp_path / "gone.wav"), mime="audio/wav"))
    assert isinstance(gone, types.TextContent) and "no longer readable" in gone.text
    assert result_content("", []) == []
