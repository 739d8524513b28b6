"""Whisper through transformers' speech-recognition pipeline, on windows of at most 30 s.

The catalogue's `asr` entry names the weights (whisper-base on CPU, whisper-large-v3-turbo on GPU);
they load on first use into the budgeted model cache, on the device and dtype settings pick. The
recording is cut into windows at its quietest moment before the 30 s Whisper sees at once, so words
are rarely split and progress and cancellation come between windows; silent windows are skipped,
because Whisper invents words ("Thank you.") when given silence.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.asr.audio_decode import SAMPLE_RATE
from agent.asr.progress import BlockProgress
from agent.asr.transcript import Segment
from agent.core.errors import ToolInputError
from agent.models.loading_logs import quiet_transformers
from agent.models.transformers_folder import cached_on_device, loading_folder

if TYPE_CHECKING:
    import numpy as np

    from agent.models.host import ModelHost

ASR_MODEL = "asr"
WINDOW_S = 30.0
# A window is cut at the quietest 0.1 s after this much audio, so a cut rarely falls inside a word.
MIN_WINDOW_S = 20.0
_QUIET_FRAME_S = 0.1
# Below this RMS (about -50 dBFS) a window is taken as silence and not shown to Whisper.
SILENCE_RMS = 0.003


@dataclass
class LoadedWhisper:
    pipe: Any
    model: Any
    device: str
    dtype: Any
    model_dir: Path
    # A pipeline keeps each call's parameters on itself: two steps at once take turns.
    lock: threading.Lock = field(default_factory=threading.Lock)

    # What the model cache counts against its memory budget (see devices.module_bytes).
    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()

    @property
    def max_new_tokens(self) -> int:
        # The decoder's prompt (start, language, task, timestamps) takes a few of its positions.
        return int(getattr(self.model.config, "max_target_positions", 448)) - 8


def _load(model_dir: Path, device: str, dtype: Any) -> LoadedWhisper:
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    fix = "run `modalgraph models pull asr`, or point MODALGRAPH_MODEL_ASR at a Whisper folder"
    with loading_folder(model_dir, "asr model", fix):
        processor = AutoProcessor.from_pretrained(model_dir)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(model_dir, dtype=dtype)
        model.to(device).eval()
        pipe = pipeline(
            "automatic-speech-recognition",
            model=model,
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            device=device,
        )
    return LoadedWhisper(pipe, model, device, dtype, model_dir)


def load_whisper(app: ModelHost, model_dir: Path) -> LoadedWhisper:
    return cached_on_device(app, "asr", model_dir, _load)


def _quietest_cut(samples: np.ndarray, earliest: int) -> int:
    """The start of the quietest 0.1 s frame at or after `earliest`: where to end a window."""
    import numpy as np

    frame = int(_QUIET_FRAME_S * SAMPLE_RATE)
    tail = samples[earliest:]
    count = len(tail) // frame
    if count < 2:
        return len(samples)
    energy = np.square(tail[: count * frame].reshape(count, frame)).mean(axis=1)
    return earliest + int(np.argmin(energy)) * frame + frame // 2


def speech_windows(
    blocks: Iterable[np.ndarray], window_s: float = WINDOW_S, min_window_s: float = MIN_WINDOW_S
) -> Iterator[tuple[float, np.ndarray]]:
    """(offset in seconds, samples) windows of at most `window_s`, cut at quiet moments."""
    import numpy as np

    longest, shortest = int(window_s * SAMPLE_RATE), int(min_window_s * SAMPLE_RATE)
    pending = np.zeros(0, dtype=np.float32)
    offset = 0
    for block in blocks:
        pending = np.concatenate([pending, block])
        while len(pending) >= longest:
            cut = _quietest_cut(pending[:longest], shortest)
            yield offset / SAMPLE_RATE, pending[:cut]
            offset += cut
            pending = pending[cut:]
    if len(pending):
        yield offset / SAMPLE_RATE, pending


def _is_silent(samples: np.ndarray) -> bool:
    import numpy as np

    return len(samples) == 0 or float(np.sqrt(np.mean(np.square(samples)))) < SILENCE_RMS


def _language_code(raw: Any) -> str | None:
    # The pipeline gives a language as its name ("english") or its code; answers use the code.
    if not raw:
        return None
    text = str(raw).strip("<|>").lower()
    try:
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE
    except ImportError:
        return text
    return TO_LANGUAGE_CODE.get(text, text)


def check_language(language: str | None) -> str | None:
    """A language a user typed ("en", "English", "fr") as Whisper's code; a clear error for others."""
    if not language:
        return None
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    text = language.strip().lower()
    if text in LANGUAGES:
        return text
    if text in TO_LANGUAGE_CODE:
        return str(TO_LANGUAGE_CODE[text])
    raise ToolInputError(f"unknown language {language!r}: give a code such as en, fr, de, or omit it")


def _segment(offset: float, window_end: float, start: Any, stop: Any, text: str) -> Segment:
    """A pipeline chunk as a segment of the recording: its times are relative to the window, and
    are kept inside it (a weak model may stamp past its end, or not stamp the end at all)."""
    begin = min(window_end, offset + float(start or 0.0))
    finish = window_end if stop is None else min(window_end, offset + float(stop))
    return Segment(round(begin, 2), round(max(begin, finish), 2), text)


def transcribe_with_whisper(
    app: ModelHost,
    model_dir: Path,
    blocks: Iterable[np.ndarray],
    progress: BlockProgress,
    language: str | None = None,
) -> tuple[list[Segment], str | None, int]:
    """(segments, detected or given language, windows heard) for the recording `blocks` carry."""
    whisper = load_whisper(app, model_dir)
    generate: dict[str, Any] = {
        "task": "transcribe",
        "max_new_tokens": whisper.max_new_tokens,
        # The pipeline's default is openai's beam of 5: five times the decoding for a small gain.
        "num_beams": app.settings.asr_beams,
    }
    if language:
        generate["language"] = language
    segments: list[Segment] = []
    languages: list[str] = []
    windows = 0
    end = 0.0
    # Each window's report waits for the next window to be read, so that the last one says 100 %.
    heard: float | None = None
    for offset, samples in speech_windows(blocks):
        if heard is not None:
            progress.report(heard)
        end = offset + len(samples) / SAMPLE_RATE
        progress.check_cancel(offset)
        if not _is_silent(samples):
            windows += 1
            with whisper.lock, quiet_transformers():
                out = whisper.pipe(
                    {"raw": samples, "sampling_rate": SAMPLE_RATE},
                    return_timestamps=True,
                    return_language=True,
                    generate_kwargs=dict(generate),
                )
            for chunk in out.get("chunks") or [{"timestamp": (0.0, None), "text": out.get("text", "")}]:
                text = str(chunk.get("text") or "").strip()
                if not text:
                    continue
                start, stop = chunk.get("timestamp") or (0.0, None)
                segments.append(_segment(offset, end, start, stop, text))
                code = _language_code(chunk.get("language"))
                if code:
                    languages.append(code)
        heard = end
    progress.report(end, finished=True)
    # The language most windows were heard in; on a tie, the first heard.
    detected = language or (Counter(languages).most_common(1)[0][0] if languages else None)
    return segments, detected, windows
