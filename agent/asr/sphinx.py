"""PocketSphinx: the offline fallback. Its wheel ships a US English model, so it needs no download;
it is much weaker than Whisper and knows only English.

Its voice-activity endpointer cuts the stream into utterances; each one is decoded on its own, which
keeps the search small however long the recording is, and gives the segments their times.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.asr.progress import BlockProgress
from agent.asr.transcript import Segment

if TYPE_CHECKING:
    import numpy as np

    from agent.models.host import ModelHost

SPHINX_MODEL = "pocketsphinx en-us"


@dataclass
class LoadedSphinx:
    decoder: Any
    # One decoder holds one utterance's search state: two steps at once take turns.
    lock: threading.Lock
    # The cepstral mean the model starts from. The decoder adapts it to what it hears; each recording
    # starts again from here, so a transcript never depends on the recordings heard before it.
    initial_cmn: str


def _model_bytes() -> int:
    from pocketsphinx import get_model_path

    folder = Path(get_model_path()) / "en-us"
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def load_sphinx(app: ModelHost) -> LoadedSphinx:
    def load() -> LoadedSphinx:
        from pocketsphinx import Decoder

        decoder = Decoder(samprate=16_000, loglevel="FATAL")
        return LoadedSphinx(decoder, threading.Lock(), decoder.get_cmn())

    return app.model_cache.get("asr:pocketsphinx", load, "cpu", nbytes=_model_bytes())


def int16_frames(blocks: Iterable[np.ndarray], frame_samples: int) -> Iterator[bytes]:
    """Exact-size 16-bit frames for the endpointer; the last one may be short."""
    import numpy as np

    pending = np.zeros(0, dtype=np.int16)
    for block in blocks:
        pcm = (np.clip(block, -1.0, 1.0) * 32767.0).astype(np.int16)
        pending = np.concatenate([pending, pcm])
        whole = len(pending) - len(pending) % frame_samples
        for start in range(0, whole, frame_samples):
            yield pending[start : start + frame_samples].tobytes()
        pending = pending[whole:]
    if len(pending):
        yield pending.tobytes()


def transcribe_with_sphinx(
    app: ModelHost, blocks: Iterable[np.ndarray], progress: BlockProgress, report_every_s: float = 10.0
) -> list[Segment]:
    from pocketsphinx import Endpointer

    sphinx = load_sphinx(app)
    endpointer = Endpointer(sample_rate=16_000)
    frame_bytes = int(endpointer.frame_bytes)
    segments: list[Segment] = []
    decoder = sphinx.decoder
    in_utterance = False

    def feed(speech: bytes | None) -> None:
        nonlocal in_utterance
        if speech is None:
            return
        if not in_utterance:
            decoder.start_utt()
            in_utterance = True
        decoder.process_raw(speech, False, False)

    def finish() -> None:
        nonlocal in_utterance
        decoder.end_utt()
        in_utterance = False
        hyp = decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if text:
            segments.append(
                Segment(
                    round(float(endpointer.speech_start), 2), round(float(endpointer.speech_end), 2), text
                )
            )

    with sphinx.lock:
        decoder.set_cmn(sphinx.initial_cmn)
        seconds = reported = 0.0
        ended = False
        try:
            for frame in int16_frames(blocks, frame_bytes // 2):
                seconds += len(frame) / 2 / 16_000
                if seconds - reported >= report_every_s:
                    progress.check_cancel(seconds)
                    progress.report(seconds)
                    reported = seconds
                if len(frame) < frame_bytes:  # the short last frame
                    feed(endpointer.end_stream(frame))
                    ended = True
                else:
                    feed(endpointer.process(frame))
                if in_utterance and not endpointer.in_speech:
                    finish()
            if not ended and endpointer.in_speech:
                feed(endpointer.end_stream(b""))
            if in_utterance:
                finish()
            progress.report(seconds, finished=True)
        finally:
            if in_utterance:  # cancelled mid-utterance: leave the shared decoder ready for the next call
                decoder.end_utt()
    return segments
