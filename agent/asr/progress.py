"""Progress and cancellation shared by the engines: both walk the recording block by block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.core.errors import ModalgraphError


class TranscriptionCancelled(ModalgraphError):
    """The user cancelled the turn between two blocks of audio."""


def _no_progress(message: str, fraction: float | None = None) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class BlockProgress:
    """Reports how far through the recording an engine is, and stops it when the turn is cancelled."""

    engine: str
    total_seconds: float | None
    progress: Callable[[str, float | None], None] = _no_progress
    cancelled: Callable[[], bool] = _never

    def check_cancel(self, done_seconds: float) -> None:
        if self.cancelled():
            raise TranscriptionCancelled(
                f"transcription cancelled after {done_seconds:.0f} s of {self._total_text()}"
            )

    def report(self, done_seconds: float, finished: bool = False) -> None:
        fraction = 1.0 if finished else None
        if self.total_seconds and not finished:
            fraction = min(1.0, done_seconds / self.total_seconds)
        self.progress(f"{self.engine}: heard {done_seconds:.0f} s of {self._total_text()}", fraction)

    def _total_text(self) -> str:
        return f"{self.total_seconds:.0f} s" if self.total_seconds else "the recording"
