"""Servers the tests start on loopback: a free port, and waiting until a process listens on it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


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
