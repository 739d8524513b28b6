"""Writing 16-bit mono WAV a chunk at a time, and what an engine that wrote one returns."""

from __future__ import annotations

import wave
from pathlib import Path
from types import TracebackType

from agent.tts.engine import EngineOutput, EngineUnavailable


class WavAppender:
    """Appends PCM chunks to one WAV file; the first chunk's sample rate sets the file's.

    Long texts are spoken chunk by chunk, so the audio is streamed to disk rather than held in memory
    (50,000 characters are close to an hour of speech, about 150 MB at 22 kHz).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav: wave.Wave_write | None = None
        self.sample_rate = 0
        self.frames = 0

    def write(self, pcm16: bytes, sample_rate: int, channels: int = 1) -> None:
        if self._wav is None:
            # Kept open across write() calls and closed by close(): a `with` block cannot span them.
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115
            self._wav.setnchannels(channels)
            self._wav.setsampwidth(2)
            self._wav.setframerate(sample_rate)
            self.sample_rate = sample_rate
        elif sample_rate != self.sample_rate:
            raise ValueError(f"sample rate changed mid-file ({self.sample_rate} -> {sample_rate})")
        self._wav.writeframes(pcm16)
        self.frames += len(pcm16) // (2 * channels)

    def append_wav(self, source: Path) -> None:
        """Append the frames of a 16-bit WAV file (what espeak-ng writes)."""
        with wave.open(str(source), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ValueError(f"{source} is not 16-bit PCM")
            self.write(wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels())

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()

    def __enter__(self) -> WavAppender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def wav_output(wav: WavAppender, engine: str, label: str, voice: str, note: str | None) -> EngineOutput:
    """What an engine that wrote `wav` returns; a file without frames means it could not speak the text."""
    if wav.frames == 0:
        raise EngineUnavailable(f"{label} produced no audio for this text")
    return EngineOutput(
        engine=engine,
        voice=voice,
        mime="audio/wav",
        suffix=".wav",
        seconds=wav.frames / wav.sample_rate,
        sample_rate=wav.sample_rate,
        note=note,
    )
