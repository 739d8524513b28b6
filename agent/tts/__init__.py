"""Text to speech: edge-tts when its service answers, else Piper with a local voice, else espeak-ng.

`speak_text` cuts the text into sentence chunks, tries the engines in order (or only the one that
settings name), and stores the audio in the artifact store. Each engine lives in its own module and
imports its library only when it runs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ModalgraphError, ToolInputError, ToolUnavailableError
from agent.tts.edge import EdgeEngine
from agent.tts.engine import EngineOutput, EngineUnavailable, SpeechCancelled, SpeechEngine, SpeechRequest
from agent.tts.espeak import EspeakEngine
from agent.tts.piper import PiperEngine
from agent.tts.text_chunks import DEFAULT_CHUNK_CHARS, has_words, speech_chunks

if TYPE_CHECKING:
    from agent.models.host import ModelHost
    from memory.artifacts import Artifact

ENGINE_ORDER = ("edge", "piper", "espeak")


@dataclass
class SpokenText:
    artifact: Artifact
    output: EngineOutput
    chunks: int
    characters: int
    seconds_taken: float
    # Engines tried before the one that spoke, each with the reason it could not.
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the answer: which engine and voice spoke, and what came out."""
        out = self.output
        rate = f", {out.sample_rate} Hz" if out.sample_rate else ""
        text = (
            f"Spoken by {out.engine} with voice {out.voice}: {out.seconds:.1f} s of audio "
            f"({out.mime}{rate}) from {self.characters} characters, saved as {self.artifact.path}."
        )
        if self.skipped:
            text += " Not used: " + "; ".join(self.skipped) + "."
        if out.note:
            text += f" Note: {out.note}."
        return text


def build_engine(name: str, app: ModelHost) -> SpeechEngine:
    if name == "edge":
        return EdgeEngine(timeout_s=app.settings.edge_timeout_s)
    if name == "piper":
        return PiperEngine(app)
    if name == "espeak":
        return EspeakEngine()
    raise ValueError(f"unknown speech engine {name!r}")


def engine_names(setting: str) -> tuple[str, ...]:
    return ENGINE_ORDER if setting == "auto" else (setting,)


def speak_text(
    app: ModelHost,
    text: str,
    voice: str | None = None,
    rate: float = 1.0,
    progress: Callable[[str, float | None], None] = lambda message, fraction: None,
    cancelled: Callable[[], bool] = lambda: False,
    engines: tuple[str, ...] | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
) -> SpokenText:
    """Speak `text` with the first engine that can; raise ToolUnavailableError naming every reason."""
    settings = app.settings
    if not has_words(text):
        raise ToolInputError("nothing to say: the text has no words")
    if len(text) > settings.tts_max_chars:
        raise ToolInputError(
            f"the text is {len(text):,} characters; speak reads at most {settings.tts_max_chars:,} "
            "(set MODALGRAPH_TTS_MAX_CHARS to allow more)"
        )
    chunks = speech_chunks(text, chunk_chars)
    started = time.perf_counter()
    skipped: list[str] = []
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    for name in engines or engine_names(settings.tts_engine):
        engine = build_engine(name, app)

        def on_chunk(done: int, total: int, engine_name: str = engine.name) -> None:
            if total > 1:
                progress(f"{engine_name}: spoke chunk {done} of {total}", done / total)

        request = SpeechRequest(chunks, voice or settings.tts_voice, rate, on_chunk, cancelled)
        # Written beside the store, then copied in by content hash: a failed engine leaves nothing.
        fd, tmp_name = tempfile.mkstemp(dir=settings.artifacts_dir, prefix=".speech-")
        os.close(fd)
        audio = Path(tmp_name)
        try:
            output = engine.speak(request, audio)
            audio = audio.rename(audio.with_suffix(output.suffix))  # the store names files by suffix
            artifact = app.artifacts.put_file(
                audio,
                mime=output.mime,
                engine=output.engine,
                voice=output.voice,
                seconds=round(output.seconds, 2),
            )
        except EngineUnavailable as exc:
            skipped.append(f"{engine.name}: {exc}")
            continue
        except SpeechCancelled as exc:
            raise ModalgraphError(str(exc)) from None
        finally:
            with contextlib.suppress(OSError):
                audio.unlink()
        return SpokenText(artifact, output, len(chunks), len(text), time.perf_counter() - started, skipped)
    raise ToolUnavailableError("no speech engine could speak: " + "; ".join(skipped))
