"""An MCP server over stdio whose `crash` tool kills the process mid-call, and whose `echo` tool
answers: the client must turn the first into a failed step and keep the app running."""

from __future__ import annotations

import os

from mcp.server import MCPServer

server = MCPServer("dying")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def crash(reason: str) -> str:
    """Die without answering."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
