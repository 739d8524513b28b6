"""What every speech engine takes and returns; the chain in `agent.tts` tries engines in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class EngineUnavailable(Exception):
    """This engine cannot speak here (no network, not installed, no voice): the chain tries the next.

    The message says why, and how to fix it, in one line.
    """


class SpeechCancelled(Exception):
    """The user cancelled the turn between two chunks: stop, and do not try another engine."""


@dataclass
class SpeechRequest:
    chunks: list[str]
    voice: str | None  # as asked; None means the engine's default
    rate: float  # 1.0 normal, 0.8 slower, 1.3 faster
    on_chunk: Callable[[int, int], None] = lambda done, total: None
    cancelled: Callable[[], bool] = lambda: False

    def check_cancel(self, done: int) -> None:
        if self.cancelled():
            raise SpeechCancelled(f"speech cancelled after {done} of {len(self.chunks)} chunks")


@dataclass
class EngineOutput:
    engine: str
    voice: str
    mime: str
    suffix: str
    seconds: float
    sample_rate: int | None = None
    note: str | None = None  # e.g. that the voice asked for is not one this engine has


class SpeechEngine(Protocol):
    name: str

    def speak(self, request: SpeechRequest, out: Path) -> EngineOutput:
        """Write the audio of all chunks to `out`; raise EngineUnavailable to pass to the next engine."""
        ...


def choose_voice(
    engine: str, asked: str | None, default: str, accepts: Callable[[str], bool]
) -> tuple[str, str | None]:
    """The voice to use and, when the one asked for is not this engine's, a note saying so."""
    if asked is None or not asked.strip():
        return default, None
    asked = asked.strip()
    if accepts(asked):
        return asked, None
    return default, f"{engine} has no voice {asked!r}, so its default {default} spoke"
