"""The registry's tools as an MCP server: listed with their own names, descriptions and argument
schemas, and called through the same step runner a chat turn uses (validation, the path rule, the
app's model cache, failures as one line)."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from agent.planning.plan import Step
from graphs.executor import run_step
from memory.artifacts import guess_mime
from tools.context import RunContext
from tools.mcp_content import DEFAULT_INLINE_LIMIT, result_content

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from agent.context import AppContext
    from agent.models.host import ProgressFn
    from tools.base import Tool

SERVER_NAME = "modalgraph"


def progress_bridge(ctx: ServerRequestContext[Any]) -> ProgressFn:
    """A tool's progress hook, called from its worker thread, as MCP progress notifications to a
    client that asked for them (with a progressToken); a no-op for one that did not.

    MCP wants each value higher than the last, while a tool's fraction restarts with each phase
    (loading, then generating), so a value that would not rise is nudged just above the last one.
    """
    if progress_token_from_params(ctx.params) is None:
        return _no_progress
    session = ctx.session
    last = 0.0

    def progress(message: str, fraction: float | None = None) -> None:
        nonlocal last
        value = 100.0 * fraction if fraction is not None else 0.0
        last = value if value > last else last + 0.01
        # A client that went away must not fail the tool: its result is simply not read.
        with contextlib.suppress(Exception):
            anyio.from_thread.run(session.report_progress, last, 100.0, message)

    return progress


class ToolServer:
    """The MCP handlers over one app and a chosen set of its tools.

    Files too big to inline are sent as `file://` links; those links (and only those) can also be
    read back through `resources/read`, for a client on another machine.
    """

    def __init__(
        self, app: AppContext, tools: dict[str, type[Tool]], inline_limit: int = DEFAULT_INLINE_LIMIT
    ) -> None:
        self.app = app
        self.tools = tools
        self.inline_limit = inline_limit
        self.linked: dict[str, Path] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._next_step = 0

    def listing(self) -> list[types.Tool]:
        return [
            types.Tool(name=name, description=tool.description, input_schema=tool.args_schema())
            for name, tool in self.tools.items()
        ]

    def build(self) -> Server[Any]:
        version = _package_version()
        return Server(
            SERVER_NAME,
            version=version,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_read_resource=self.read_resource,
        )

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.listing())

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = self.tools.get(params.name)
        if tool is None:
            return _error(f"unknown tool {params.name!r}; this server offers: {', '.join(self.tools)}")
        # Tools hold one model each and are not written for two callers at once; different tools
        # may run side by side, as independent plan steps do.
        lock = self._locks.setdefault(params.name, anyio.Lock())
        self._next_step += 1
        step = Step(id=self._next_step, tool=params.name, args=params.arguments or {})
        run_ctx = RunContext(app=self.app, step_id=step.id, progress=progress_bridge(ctx))  # type: ignore[arg-type]
        async with lock:
            # The tool blocks for seconds to minutes, and reading its files for the reply takes a
            # while too: a worker thread keeps the server answering meanwhile.
            return await anyio.to_thread.run_sync(lambda: self._run(step, tool, run_ctx))

    def _run(self, step: Step, tool: type[Tool], run_ctx: RunContext) -> types.CallToolResult:
        result = run_step(step, tool, {}, run_ctx)
        if result.status != "done":
            return _error(result.error or f"{step.tool} failed")
        text = "\n\n".join(part for part in (result.output, result.note) if part)
        blocks = result_content(text, result.artifacts, self.inline_limit)
        for block in blocks:
            if isinstance(block, types.ResourceLink):
                self.linked[block.uri] = Path(url2pathname(urlparse(block.uri).path))
        return types.CallToolResult(content=blocks)

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        path = self.linked.get(params.uri)
        if path is None:
            raise MCPError(
                types.INVALID_PARAMS, f"no such resource: {params.uri} (only files a tool returned)"
            )
        try:
            data = await anyio.Path(path).read_bytes()
        except OSError as exc:
            raise MCPError(types.INVALID_PARAMS, f"cannot read {params.uri}: {exc.strerror}") from None
        blob = base64.b64encode(data).decode("ascii")
        return types.ReadResourceResult(
            contents=[types.BlobResourceContents(uri=params.uri, mime_type=guess_mime(path), blob=blob)]
        )


def _no_progress(message: str, fraction: float | None = None) -> None:
    return None


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modalgraph")
    except PackageNotFoundError:
        return "0"
