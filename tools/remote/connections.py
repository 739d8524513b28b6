"""Connections to the configured MCP servers, held open for the life of the app.

The SDK is async and a step's tool runs in a plain thread, so one event loop in a background
thread (an anyio blocking portal) owns every connection, and tool calls are handed to it. Each
server's connection lives in one task from connect to close, as the SDK's context managers want.

A server that goes away (a stdio server that crashed, an HTTP server restarted) is connected again
by the next call of one of its tools, as a long-running chat or web server needs; a server that
keeps failing is tried again after a growing pause (`RETRY_S`), and calls in between fail at once.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agent.core.errors import ModalgraphError, ToolUnavailableError, one_line
from agent.core.mcp_server_spec import McpServerSpec

if TYPE_CHECKING:
    import mcp_types as types
    from anyio.from_thread import BlockingPortal
    from mcp import Client

ProgressFn = Callable[[str, "float | None"], None]
# Pauses before connecting again to a server that went away: the first try is at once (a crashed
# stdio server is simply started again), then each failed try waits longer, up to five minutes.
RETRY_S = (0.0, 5.0, 15.0, 60.0, 300.0)


@dataclass
class ServerState:
    """One server: its tools once listed, or why it has none."""

    spec: McpServerSpec
    tools: list[types.Tool] = field(default_factory=list)
    client: Client | None = None
    problem: str | None = None
    holder: concurrent.futures.Future[None] | None = None  # the task that holds the connection
    generation: int = 0  # which holder is the current one: an old one ending marks nothing
    failed_tries: int = 0  # connections tried again since it went away, all failed
    retry_at: float = 0.0  # time.monotonic() before which no new connection is tried
    reconnecting: threading.Lock = field(default_factory=threading.Lock)

    @property
    def up(self) -> bool:
        return self.client is not None and self.problem is None


def _reason(exc: BaseException) -> str:
    """The innermost useful message of an exception group or a plain exception."""
    while getattr(exc, "exceptions", None):  # an exception group, from a task group
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    message = getattr(exc, "message", None)  # an MCPError's own text, without its code tuple
    text = message if isinstance(message, str) else one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RemoteServers:
    """Connect to every server at once (each within its connect timeout), then call their tools.

    A server that cannot be reached, or dies later, is marked with the reason; its tools then
    fail fast with that reason instead of waiting on a dead connection.
    """

    def __init__(self, specs: Sequence[McpServerSpec], log_dir: Path) -> None:
        self.states = {spec.name: ServerState(spec) for spec in specs}
        self.log_dir = log_dir
        self._portal_cm: Any = None
        self._portal: BlockingPortal | None = None
        self._stop: Any = None
        self._holders: list[concurrent.futures.Future[None]] = []
        self._logs: list[TextIO] = []
        self._lock = threading.Lock()

    # Connecting -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect in parallel; returns when every server is listed or has timed out."""
        if not self.states:
            return
        from anyio.from_thread import start_blocking_portal

        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._stop = self._portal.call(_new_event)
        atexit.register(self.close)
        ready = {name: self._start_holder(state) for name, state in self.states.items()}
        started = time.monotonic()
        for name, future in ready.items():
            wait = self.states[name].spec.connect_timeout_s - (time.monotonic() - started)
            self._await_connection(self.states[name], future, wait)

    def _start_holder(self, state: ServerState) -> concurrent.futures.Future[None]:
        """Start the task that connects to `state`'s server and holds the connection; the returned
        future is done once the server's tools are listed, or holds why they are not."""
        assert self._portal is not None
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        state.generation += 1
        state.holder = self._portal.start_task_soon(self._hold, state, ready, state.generation)
        self._holders.append(state.holder)
        return ready

    def _await_connection(
        self, state: ServerState, ready: concurrent.futures.Future[None], wait: float
    ) -> None:
        try:
            ready.result(timeout=max(wait, 0.0))
        except concurrent.futures.TimeoutError:
            with self._lock:
                state.problem = f"no answer within {state.spec.connect_timeout_s:g} s (connect_timeout_s)"
            if state.holder is not None:
                state.holder.cancel()  # stop waiting on it (and stop its process)
        except Exception as exc:  # any failure to connect leaves only this server out
            with self._lock:
                state.problem = _reason(exc)

    async def _hold(
        self, state: ServerState, ready: concurrent.futures.Future[None], generation: int
    ) -> None:
        from mcp import Client

        def mark(problem: str | None, client: Client | None = None, tools: list | None = None) -> None:
            """Set the state, unless a newer connection has replaced this one meanwhile."""
            with self._lock:
                if state.generation != generation:
                    return
                if tools is not None:
                    state.tools, state.client, state.problem = tools, client, None
                else:
                    state.problem = state.problem or problem

        spec = state.spec
        try:
            async with Client(self._transport(spec), raise_exceptions=True) as client:
                mark(None, client, list((await client.list_tools()).tools))
                if not ready.done():
                    ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            mark(f"the connection closed ({_reason(exc)})")
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(_reason(exc)))
            if not isinstance(exc, Exception):
                raise
        else:
            mark("the connection closed")

    def _transport(self, spec: McpServerSpec) -> Any:
        if spec.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            self.log_dir.mkdir(parents=True, exist_ok=True)
            # The server's own stderr (log lines, a traceback when it dies) goes to a file, not
            # into the middle of the user's chat.
            errlog = open(self.log_dir / f"{spec.name}.log", "a", encoding="utf-8")  # noqa: SIM115
            self._logs.append(errlog)
            params = StdioServerParameters(command=spec.command[0], args=spec.command[1:])
            return stdio_client(params, errlog=errlog)
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        headers = {"Authorization": f"Bearer {spec.token}"} if spec.token else None
        return streamable_http_client(spec.url or "", http_client=create_mcp_http_client(headers=headers))

    # Calling --------------------------------------------------------------------------------

    def _usable(self, server: str) -> tuple[ServerState, Client]:
        state = self.states[server]
        if not state.up:
            self._reconnect(state)
        if state.problem is not None or state.client is None:
            wait = state.retry_at - time.monotonic()
            retry = f"; tried again in {wait:.0f} s" if wait >= 1 else ""
            raise ToolUnavailableError(
                f"MCP server {server!r} ({state.spec.where()}) is unavailable: {state.problem}{retry}"
            )
        return state, state.client

    def _reconnect(self, state: ServerState) -> None:
        """Connect again to a server that went away, when its pause is over (one caller at a time;
        the others wait for that try). Its tools keep their names: the registry was built from the
        first listing."""
        with state.reconnecting:
            if state.up or self._portal is None or time.monotonic() < state.retry_at:
                return
            if state.holder is not None:
                state.holder.cancel()  # whatever is left of the old connection
            with self._lock:
                state.client, state.problem = None, None
            self._await_connection(state, self._start_holder(state), state.spec.connect_timeout_s)
            if state.up:
                state.failed_tries, state.retry_at = 0, 0.0
            else:
                with self._lock:
                    state.problem = f"it went away, and connecting again failed ({state.problem})"
                state.retry_at = time.monotonic() + RETRY_S[min(state.failed_tries + 1, len(RETRY_S) - 1)]
                state.failed_tries += 1

    def call_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        progress: ProgressFn,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> types.CallToolResult:
        """One tool call, within the server's timeout; a dead or silent server is one clear error."""
        state, client = self._usable(server)
        timeout = state.spec.timeout_s

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress(message or f"{tool} on {server}", value / total if total else None)

        async def call() -> types.CallToolResult:
            import anyio

            with anyio.fail_after(timeout):
                return await client.call_tool(
                    tool, arguments, read_timeout_seconds=timeout, progress_callback=on_progress
                )

        return self._run(state, f"{server}__{tool}", call, cancelled)

    def read_resource(self, server: str, uri: str) -> types.ReadResourceResult:
        state, client = self._usable(server)

        async def read() -> types.ReadResourceResult:
            import anyio

            with anyio.fail_after(state.spec.timeout_s):
                return await client.read_resource(uri)

        return self._run(state, f"reading {uri} from {server}", read)

    def _run(
        self,
        state: ServerState,
        what: str,
        work: Callable[[], Any],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Any:
        assert self._portal is not None
        future = self._portal.start_task_soon(work)
        try:
            # Waiting apart from reading the result: the call's own timeout is a TimeoutError too.
            while not concurrent.futures.wait([future], timeout=0.2).done:
                if cancelled():  # Ctrl-C in the front end: drop the call and stop
                    future.cancel()
                    raise ModalgraphError(f"{what}: cancelled")
            return future.result()
        except TimeoutError:
            raise ToolUnavailableError(
                f"{what}: MCP server {state.spec.name!r} ({state.spec.where()}) gave no answer within "
                f"{state.spec.timeout_s:g} s (timeout_s in its mcp_servers entry)"
            ) from None
        except ModalgraphError:
            raise
        except Exception as exc:
            from mcp.shared.exceptions import MCPError

            if isinstance(exc, MCPError) and state.problem is None and _still_connected(exc):
                raise ToolUnavailableError(f"{what}: the server refused the call: {exc.message}") from None
            with self._lock:  # later calls fail fast, naming the first reason
                state.problem = state.problem or f"it went away ({_reason(exc)})"
            raise ToolUnavailableError(
                f"{what}: MCP server {state.spec.name!r} ({state.spec.where()}) went away mid-call "
                f"({_reason(exc)}); check that it is running"
            ) from None

    # Closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (stdio servers see their stdin close and exit)."""
        portal, self._portal = self._portal, None
        if portal is None:
            return
        with contextlib.suppress(Exception):
            portal.call(self._stop.set)
        for holder in self._holders:
            with contextlib.suppress(BaseException):  # a cancelled holder raises CancelledError
                holder.result(timeout=5)
        with contextlib.suppress(Exception):
            self._portal_cm.__exit__(None, None, None)
        for log in self._logs:
            log.close()
        atexit.unregister(self.close)


def _new_event() -> Any:
    import anyio

    return anyio.Event()


def _still_connected(exc: Exception) -> bool:
    import mcp_types as types

    return getattr(getattr(exc, "error", None), "code", None) != types.CONNECTION_CLOSED
