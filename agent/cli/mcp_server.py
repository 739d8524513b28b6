"""`modalgraph mcp`: the tools as an MCP server (agent/mcp), for desktop apps over stdio or for
clients over HTTP, on this machine only unless told otherwise."""

from __future__ import annotations

import os

import typer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7861


def register(app: typer.Typer) -> None:
    app.command(name="mcp")(mcp)


def mcp(
    tools: str | None = typer.Option(
        None, "--tools", help="Serve only these tools, comma-separated (default: every available tool)."
    ),
    http: bool = typer.Option(
        False, "--http", help="Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdin/stdout."
    ),
    host: str = typer.Option(
        DEFAULT_HOST, "--host", help="With --http: the address to listen on (default: this machine only)."
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="With --http: the port."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="With --http: allow a --host other machines can reach. Requires MODALGRAPH_MCP_TOKEN; "
        "every request must then carry 'Authorization: Bearer <token>'.",
    ),
) -> None:
    """Serve the tools over the Model Context Protocol, for Claude Desktop and other MCP clients."""
    from agent.context import AppContext  # deferred: imports pydantic-settings
    from agent.core.errors import ConfigError
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings
    from agent.mcp.http_access import TOKEN_ENV, check_http_access
    from agent.mcp.tool_choice import select_tools

    if not http and (host != DEFAULT_HOST or port != DEFAULT_PORT or allow_remote):
        raise ConfigError("--host, --port and --allow-remote apply to --http; stdio needs none of them")
    token = os.environ.get(TOKEN_ENV) or None
    warning = check_http_access(host, allow_remote, token) if http else None  # before anything slow
    settings = load_settings()
    settings.ensure_data_dir()
    app = AppContext(settings)

    wanted = tools.split(",") if tools is not None else None
    chosen = select_tools(app.registry.available(), wanted)  # before the SDK's import: refusals are quick

    from agent.mcp.tool_server import ToolServer  # deferred: imports the mcp SDK

    server = ToolServer(app, chosen).build()
    if warning:
        typer.secho(warning, fg="yellow", err=True)
    try:
        if http:
            from agent.mcp.transports import serve_http

            serve_http(server, host, port, token, lambda line: typer.echo(line, err=True))
        else:
            from agent.mcp.transports import serve_stdio

            serve_stdio(server)
    finally:
        if "image_index" in app.__dict__:
            app.image_index.close()
