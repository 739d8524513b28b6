"""Generator outputs (float arrays in [0, 1] or [-1, 1]) -> file bytes: PNG, MP4 (GIF fallback), WAV.

Encodings are byte-stable for the same pixels or samples, so the same seed gives the same file.
"""

from __future__ import annotations

import io
import os
import tempfile
import wave
from typing import Any

import numpy as np


def to_uint8(pixels: Any) -> np.ndarray:
    array = np.asarray(pixels, dtype=np.float32)
    return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def png_bytes(image: Any) -> bytes:
    """An HxWx3 float image (or a PIL image) as PNG bytes."""
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def mp4_bytes(frames: np.ndarray, fps: int) -> bytes:
    """H.264 through imageio-ffmpeg's bundled ffmpeg; bitexact flags keep the bytes reproducible."""
    import imageio_ffmpeg

    height, width = frames.shape[1:3]
    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            path,
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=2,
            ffmpeg_log_level="error",
            output_params=["-threads", "1", "-fflags", "+bitexact", "-map_metadata", "-1"],
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        with open(path, "rb") as handle:
            return handle.read()
    finally:
        os.unlink(path)


def gif_bytes(frames: np.ndarray, fps: int) -> bytes:
    from PIL import Image

    pictures = [Image.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    pictures[0].save(
        out, format="GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0
    )
    return out.getvalue()


def video_bytes(frames: Any, fps: int) -> tuple[bytes, str, str]:
    """(bytes, suffix, mime): MP4 when imageio-ffmpeg works here, else an animated GIF."""
    pixels = to_uint8(frames)
    try:
        return mp4_bytes(pixels, fps), ".mp4", "video/mp4"
    except (ImportError, OSError, RuntimeError):
        return gif_bytes(pixels, fps), ".gif", "image/gif"


def wav_bytes(samples: Any, sample_rate: int) -> bytes:
    """Mono 16-bit PCM; the waveform is peak-limited to [-1, 1] first."""
    audio = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    pcm = (audio * 32767.0).round().astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(pcm.tobytes())
    return out.getvalue()
