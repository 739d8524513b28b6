"""edge-tts: Microsoft Edge's online neural voices (MP3). Used only when its service answers quickly.

The fall-back must be fast when the network is down or blocked, so two limits apply: a TCP probe of
the service host (run in a thread, because a stuck DNS lookup ignores socket timeouts), and a
deadline for the first audio bytes. Together they stay within `edge_timeout_s`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import re
import socket
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from agent.tts.engine import EngineOutput, EngineUnavailable, SpeechCancelled, SpeechRequest, choose_voice

EDGE_HOST = "speech.platform.bing.com"
EDGE_PORT = 443
DEFAULT_VOICE = "en-US-AriaNeural"
# Its output format is audio-24khz-48kbitrate-mono-mp3, so the duration follows from the size.
MP3_BITS_PER_SECOND = 48_000
# Later chunks may take longer than the first: the service is known to be up by then.
RECEIVE_TIMEOUT_S = 30.0
_VOICE_NAME = re.compile(r"^[a-z]{2,3}-[A-Z]{2,4}(-[A-Za-z]+)?-[A-Za-z]+Neural$")


def is_edge_voice(name: str) -> bool:
    """Edge voices are named like en-US-AriaNeural or zh-CN-liaoning-XiaobeiNeural."""
    return bool(_VOICE_NAME.match(name))


def rate_option(rate: float) -> str:
    """1.0 -> "+0%", 0.8 -> "-20%", 1.3 -> "+30%"."""
    return f"{round((rate - 1.0) * 100):+d}%"


def probe(timeout_s: float, host: str | None = None, port: int | None = None) -> str | None:
    """None when a TCP connection to the service opens within `timeout_s`, else the reason it did not."""
    host = host or EDGE_HOST
    port = port or EDGE_PORT

    def connect() -> None:
        socket.create_connection((host, port), timeout=timeout_s).close()

    # A daemon thread, not an executor: a lookup stuck in getaddrinfo must not delay interpreter exit.
    future: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            connect()
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="edge-tts-probe", daemon=True).start()
    try:
        future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        return f"no answer from {host} within {timeout_s:g}s"
    except OSError as exc:
        return f"cannot reach {host} ({exc.strerror or exc})"
    return None


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, or in a helper thread when this thread already runs an event loop (a web front end)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


class EdgeEngine:
    name = "edge-tts"

    def __init__(self, timeout_s: float = 3.0, probe_timeout_s: float = 1.5) -> None:
        self.timeout_s = timeout_s
        self.probe_timeout_s = min(probe_timeout_s, timeout_s)

    def speak(self, request: SpeechRequest, out: Path) -> EngineOutput:
        started = time.monotonic()
        try:
            import edge_tts
        except ImportError:
            raise EngineUnavailable("edge-tts is not installed (pip install edge-tts)") from None
        voice, note = choose_voice(self.name, request.voice, DEFAULT_VOICE, is_edge_voice)
        unreachable = probe(self.probe_timeout_s)
        if unreachable:
            raise EngineUnavailable(unreachable)
        first_deadline = max(0.5, self.timeout_s - (time.monotonic() - started))
        written = 0

        async def synthesize() -> None:
            nonlocal written
            with open(out, "wb") as handle:
                for index, chunk in enumerate(request.chunks):
                    request.check_cancel(index)
                    communicate = edge_tts.Communicate(
                        chunk,
                        voice,
                        rate=rate_option(request.rate),
                        connect_timeout=math.ceil(first_deadline),
                        receive_timeout=int(RECEIVE_TIMEOUT_S),
                    )
                    stream = communicate.stream().__aiter__()
                    while True:
                        wait = first_deadline if written == 0 else RECEIVE_TIMEOUT_S
                        try:
                            message = await asyncio.wait_for(stream.__anext__(), wait)
                        except StopAsyncIteration:
                            break
                        if message["type"] == "audio":
                            handle.write(message["data"])
                            written += len(message["data"])
                    request.on_chunk(index + 1, len(request.chunks))

        try:
            _run(synthesize())
        except SpeechCancelled:
            raise
        except (TimeoutError, asyncio.TimeoutError):
            stage = "start answering" if written == 0 else "answer"
            raise EngineUnavailable(f"the edge-tts service did not {stage} in time") from None
        except Exception as exc:  # aiohttp, websocket and edge-tts's own errors all mean "not here"
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineUnavailable(f"edge-tts failed: {detail}") from None
        if written == 0:
            raise EngineUnavailable("edge-tts returned no audio")
        return EngineOutput(
            engine=self.name,
            voice=voice,
            mime="audio/mpeg",
            suffix=".mp3",
            seconds=written * 8 / MP3_BITS_PER_SECOND,
            note=note,
        )
