"""Speech to text: Whisper through transformers when its weights are present, else PocketSphinx,
whose English model ships in its wheel.

`transcribe_file` decodes the recording a block at a time (`audio_decode`), hands the blocks to one
engine, and says in the transcript's `note` when the weaker engine heard it and why. Each engine
lives in its own module and imports its library only when it runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.asr.audio_decode import SAMPLE_RATE, AudioSource, check_duration, open_audio
from agent.asr.progress import BlockProgress, TranscriptionCancelled
from agent.asr.transcript import Segment, Transcript
from agent.core.errors import ModelMissingError, ToolInputError, ToolUnavailableError

if TYPE_CHECKING:
    from collections.abc import Generator

    import numpy as np

    from agent.models.host import ModelHost, ProgressFn

__all__ = ["Segment", "Transcript", "TranscriptionCancelled", "transcribe_file"]

PULL_COMMAND = "modalgraph models pull asr"
_ENGLISH = ("en", "english")


def _counted(
    source: AudioSource, max_minutes: float, heard: list[float]
) -> Generator[np.ndarray, None, None]:
    """The source's blocks, counting the seconds read, and stopping a recording whose container did
    not say its length once it passes the limit."""
    # Closing this generator closes the decoder's too.
    with contextlib.closing(source.blocks()) as blocks:
        for block in blocks:
            heard[0] += len(block) / SAMPLE_RATE
            if source.seconds is None:
                check_duration(source.path, heard[0], max_minutes)
            yield block


def _whisper_weights(app: ModelHost) -> Path:
    return Path(app.catalogue.resolve("asr"))


def _sphinx_installed() -> bool:
    return importlib.util.find_spec("pocketsphinx") is not None


def transcribe_file(
    app: ModelHost,
    path: Path,
    language: str | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Transcript:
    """Transcribe the recording at `path` with the engine settings choose (`asr_engine`).

    Raises ToolInputError for a file that is not usable audio, ModelMissingError when Whisper is asked
    for and absent, ToolUnavailableError when no engine can run, TranscriptionCancelled on cancel.
    """
    settings = app.settings
    language = language.strip().lower() if language and language.strip() else None
    source = open_audio(path, settings.asr_max_minutes)
    setting = settings.asr_engine
    note: str | None = None
    weights: Path | None = None
    if setting in ("auto", "whisper"):
        try:
            weights = _whisper_weights(app)
        except ModelMissingError as missing:
            if setting == "whisper":
                raise
            if not _sphinx_installed():
                raise ToolUnavailableError(
                    f"no speech recognition engine: the Whisper weights are missing (run `{PULL_COMMAND}`) "
                    "and PocketSphinx is not installed (`pip install pocketsphinx`)"
                ) from None
            if language and language not in _ENGLISH:
                raise ModelMissingError(
                    f"{missing}; PocketSphinx, the offline fallback, knows only English, not {language!r}"
                ) from None
            note = (
                "Transcribed by PocketSphinx (weaker) because the Whisper weights are missing: "
                f"run `{PULL_COMMAND}`."
            )
    elif not _sphinx_installed():
        raise ToolUnavailableError(
            "asr_engine is pocketsphinx but it is not installed (`pip install pocketsphinx`)"
        )
    elif language and language not in _ENGLISH:
        raise ToolInputError(
            f"PocketSphinx knows only English, not {language!r}; set MODALGRAPH_ASR_ENGINE=auto"
        )
    else:
        note = "Transcribed by PocketSphinx (weaker) because the asr_engine setting asks for it."

    heard = [0.0]
    blocks = _counted(source, settings.asr_max_minutes, heard)
    engine = "whisper" if weights is not None else "pocketsphinx"
    steps = BlockProgress(
        engine, source.seconds, progress or (lambda m, f: None), cancelled or (lambda: False)
    )
    # Closed on the way out, whatever happens: a cancelled or failed run stops the ffmpeg decoder.
    with contextlib.closing(blocks):
        if weights is not None:
            from agent.asr.whisper import check_language, transcribe_with_whisper

            language = check_language(language)
            segments, detected, windows = transcribe_with_whisper(app, weights, blocks, steps, language)
            model = app.catalogue.model_id("asr")
        else:
            from agent.asr.sphinx import SPHINX_MODEL, transcribe_with_sphinx

            segments, detected, windows = transcribe_with_sphinx(app, blocks, steps), "en", 0
            model = SPHINX_MODEL
    text = " ".join(s.text for s in segments).strip()
    return Transcript(text, detected, segments, engine, model, round(heard[0], 2), note, chunks=windows)
