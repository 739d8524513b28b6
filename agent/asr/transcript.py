"""What a transcription returns: the text, its language, timed segments, and which engine heard it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Segment:
    """A stretch of speech, in seconds from the start of the recording."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    text: str  # "" when no speech was found
    language: str | None  # e.g. "en"; None when the engine cannot tell
    segments: list[Segment]
    engine: str  # "whisper" | "pocketsphinx"
    model: str  # the model id or path actually used
    audio_seconds: float
    # Why the weaker engine heard it, with the command that fixes that; None when nothing needs saying.
    note: str | None = None
    # Windows the engine decoded (Whisper); 0 when it streams (PocketSphinx).
    chunks: int = 0

    def summary(self) -> str:
        """One line for answers: which engine heard how much audio, and what it heard."""
        heard = f"{self.engine} ({self.model})"
        language = f", language {self.language}" if self.language else ""
        if not self.text:
            return f"No speech found in the recording ({self.audio_seconds:.1f} s, heard by {heard})."
        return f"Transcript of {self.audio_seconds:.1f} s of audio by {heard}{language}: {self.text}"
