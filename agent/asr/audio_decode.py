"""Audio files in, 16 kHz mono float32 out, a block at a time so that hours of audio never sit in memory.

WAV, FLAC and OGG go through soundfile (libsndfile) and are resampled with soxr; anything soundfile
refuses (MP3, M4A, WebM...) goes through the ffmpeg binary that imageio-ffmpeg ships, which decodes
and resamples into a pipe. Every way a file can fail to be audio ends as one ToolInputError line.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent.core.errors import ToolInputError, ToolUnavailableError
from memory.artifacts import guess_mime

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000
# Bytes of ffmpeg's complaint kept for the error line; its last line says what was wrong.
_STDERR_TAIL = 4096
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_NOT_AUDIO_KINDS = ("image", "text")
_FFMPEG_NOISE = ("Error opening input", "Error opening output", "Conversion failed!")


@dataclass
class AudioSource:
    """An audio file checked to be readable, with its length when the container says it."""

    path: Path
    seconds: float | None
    decoder: Literal["soundfile", "ffmpeg"]
    source_rate: int | None

    def blocks(self, block_seconds: float = 10.0) -> Generator[np.ndarray, None, None]:
        """The recording as 16 kHz mono float32 blocks of about `block_seconds` each."""
        frames = max(1, int(block_seconds * SAMPLE_RATE))
        if self.decoder == "soundfile":
            return _soundfile_blocks(self.path, block_seconds)
        return _ffmpeg_blocks(self.path, frames)


def _minutes(seconds: float) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{seconds / 60:.1f} min"


def check_duration(path: Path, seconds: float, max_minutes: float) -> None:
    if seconds > max_minutes * 60:
        raise ToolInputError(
            f"{path.name} is {_minutes(seconds)} long; transcribe reads at most {max_minutes:g} min "
            "(set MODALGRAPH_ASR_MAX_MINUTES to allow more)"
        )


def open_audio(path: Path, max_minutes: float) -> AudioSource:
    """Check that `path` holds audio that can be decoded, and is not longer than `max_minutes`."""
    mime = guess_mime(path)
    if mime.split("/", 1)[0] in _NOT_AUDIO_KINDS:
        raise ToolInputError(f"{path.name} is not audio ({mime}); transcribe reads speech recordings")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ToolInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise ToolInputError(f"{path.name} is empty (0 bytes): there is no recording to transcribe")
    source = _probe_soundfile(path) or _probe_ffmpeg(path)
    if source.seconds is not None:
        if source.seconds == 0:
            raise ToolInputError(f"{path.name} holds no audio samples (0 s long)")
        check_duration(path, source.seconds, max_minutes)
    return source


def _probe_soundfile(path: Path) -> AudioSource | None:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None  # not a container libsndfile reads: ffmpeg gets its turn
    # libsndfile reads some MP3 too, but may not know its length; ffmpeg does.
    if info.frames <= 0 and info.format == "MPEG":
        return None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    return AudioSource(path, seconds, "soundfile", int(info.samplerate))


def ffmpeg_binary() -> str:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise ToolUnavailableError(
            f"no ffmpeg to decode this audio format ({exc}); `pip install imageio-ffmpeg` provides one"
        ) from None


def _last_ffmpeg_line(stderr: str) -> str:
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not any(noise in line for noise in _FFMPEG_NOISE)
    ]
    if not lines:
        return "ffmpeg could not decode it"
    # ffmpeg prefixes lines with the file name or "[demuxer @ 0x...]": the message is what follows.
    return re.sub(r"^(\[[^\]]*\]\s*|.*?: )", "", lines[-1]) or lines[-1]


def _probe_ffmpeg(path: Path) -> AudioSource:
    # `ffmpeg -i FILE` with no output lists the streams and exits 1; its stderr is the whole answer.
    try:
        done = subprocess.run(
            [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolInputError(
            f"{path.name}: reading its header took over a minute; is it a real file?"
        ) from None
    audio = re.search(r"Stream #\S+.*?: Audio: (\S+?),? .*?(\d+) Hz", done.stderr)
    if audio is None:
        if "Stream #" in done.stderr:
            raise ToolInputError(f"{path.name} has no audio track; transcribe reads speech recordings")
        reason = _last_ffmpeg_line(done.stderr)
        raise ToolInputError(f"{path.name} is not an audio file that can be decoded: {reason}")
    if audio.group(1) == "none":
        codec = re.search(r"Audio: none \(.*?/ (0x[0-9a-fA-F]+)\)", done.stderr)
        tag = f" (format tag {codec.group(1)})" if codec else ""
        raise ToolInputError(f"{path.name} uses an audio codec that cannot be decoded{tag}")
    duration = _DURATION.search(done.stderr)
    seconds = None
    if duration:
        hours, minutes, secs = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return AudioSource(path, seconds, "ffmpeg", int(audio.group(2)))


def _soundfile_blocks(path: Path, block_seconds: float) -> Generator[np.ndarray, None, None]:
    import numpy as np
    import soundfile
    import soxr

    try:
        with soundfile.SoundFile(str(path)) as audio:
            rate = int(audio.samplerate)
            resampler = (
                soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
            )
            for block in audio.blocks(
                blocksize=max(1, int(block_seconds * rate)), dtype="float32", always_2d=True
            ):
                mono = block.mean(axis=1, dtype=np.float32)
                yield resampler.resample_chunk(mono) if resampler else mono
            if resampler is not None:
                yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise ToolInputError(f"{path.name} cannot be decoded past its header: {exc}") from None


def _ffmpeg_blocks(path: Path, frames: int) -> Generator[np.ndarray, None, None]:
    import numpy as np

    command = [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        str(path),
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-f",
        "f32le",
        "-",
    ]
    block_bytes = frames * 4
    # stderr goes to a file, not a pipe: a chatty decoder must never block on a pipe nobody reads.
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
        assert process.stdout is not None
        produced = 0
        try:
            while True:
                data = process.stdout.read(block_bytes)
                if not data:
                    break
                usable = len(data) - len(data) % 4
                produced += usable
                yield np.frombuffer(data[:usable], dtype="<f4").astype(np.float32)
        finally:
            # The caller may stop early (cancel, a limit): the decoder must not outlive it.
            if process.poll() is None:
                process.kill()
            process.stdout.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if process.returncode not in (0, None) and produced == 0:
            stderr.seek(0)
            message = stderr.read()[-_STDERR_TAIL:].decode("utf-8", "replace")
            raise ToolInputError(f"{path.name} cannot be decoded: {_last_ffmpeg_line(message)}")
