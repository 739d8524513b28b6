"""An MCP server over stdio whose `crash` tool kills the process mid-call, whose `stall` tool never
answers in time, and whose `echo` tool answers: the client must turn the first two into failed
steps and keep the app running. With `--refuse-if FILE` it exits at start while FILE exists: a
server that cannot be started again for a while."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

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


@server.tool()
def stall(seconds: float) -> str:
    """Take far too long."""
    time.sleep(seconds)
    return "late"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--refuse-if"] and Path(sys.argv[2]).exists():
        sys.exit(1)
    server.run()
