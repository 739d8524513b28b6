"""Running the MCP server: over stdin/stdout for a desktop app that starts it, or over Streamable
HTTP for clients that connect to it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from agent.core.errors import ConfigError
from agent.mcp.http_access import BearerTokenGuard

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

MCP_PATH = "/mcp"


def serve_stdio(server: Server[Any]) -> None:
    """Serve one client over stdin/stdout until it closes them. The SDK points fd 1 at stderr while
    serving, so stray prints from model code cannot corrupt the protocol stream."""
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def serve_http(
    server: Server[Any], host: str, port: int, token: str | None, on_ready: Callable[[str], None]
) -> None:
    """Serve Streamable HTTP at http://HOST:PORT/mcp until interrupted; with a token, every request
    must carry it."""
    import uvicorn

    sock = _listening_socket(host, port)
    app: Any = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    if token:
        app = BearerTokenGuard(app, token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    http = uvicorn.Server(config)
    shown_host = f"[{host}]" if ":" in host else host
    on_ready(f"serving MCP at http://{shown_host}:{port}{MCP_PATH}")
    http.run(sockets=[sock])


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bound before the server starts, so that a port in use is one clear line, not a log record."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
        ) from None
    sock.listen(128)
    return sock
