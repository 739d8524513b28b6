"""Servers the tests start on loopback: a free port, waiting until a process listens on it, and
`modalgraph mcp --http` in its own process."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(
    process: subprocess.Popen[bytes], port: int, log: Path, what: str, timeout_s: float = 60
) -> None:
    """Return once `process` accepts connections on loopback `port`; fail with its log if it exits
    or takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what} did not start: {log.read_text()}") from exc
            time.sleep(0.1)


@contextlib.contextmanager
def mcp_http_server(
    tools: str, env: dict[str, str], log: Path, what: str = "MCP server"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`modalgraph mcp --http --tools TOOLS` on a free loopback port, its stderr in `log`; yields the
    process and its URL, and kills it on exit (a test may kill it sooner)."""
    port = free_port()
    command = [sys.executable, "-m", "agent", "mcp", "--http", "--port", str(port), "--tools", tools]
    with log.open("w") as errors:  # the child keeps its own descriptor
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        wait_until_listening(process, port, log, what)
        yield process, f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        process.wait(timeout=20)
