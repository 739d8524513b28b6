"""What a browser uploads, checked before any tool sees it: its size, then its content (never its name).

An accepted upload is copied into the artifact store under the suffix of what it really is, so a
session's history keeps pointing at it after Gradio's cache is swept, and tools read it like any
other artifact. Images are decoded for real (a renamed text file, a truncated PNG, a decompression
bomb are all refused); audio is recognised by its container's header, and a WAV is parsed.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ToolInputError
from agent.web.serving import is_inside, resolved_path
from memory.image_files import ImageDecodeError, decode_image

if TYPE_CHECKING:
    from memory.artifacts import Artifact, ArtifactStore

ACCEPTED_TEXT = (
    "the page accepts images (JPEG, PNG, WebP, GIF, BMP, TIFF) and audio (WAV, MP3, OGG, FLAC, M4A, WebM)"
)
IMAGE_TYPES = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
    "GIF": ("image/gif", ".gif"),
    "BMP": ("image/bmp", ".bmp"),
    "TIFF": ("image/tiff", ".tif"),
}
AUDIO_SUFFIX = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/mp4": ".m4a",
    "audio/webm": ".webm",
}
# MPEG audio frame header: bitrate index 15 and sample-rate index 3 are reserved, layer 0 is invalid.
_MPEG_BAD_BITRATE, _MPEG_BAD_RATE = 0x0F, 0x03


class UploadRejectedError(ToolInputError):
    """An upload the page will not pass on; the message says why and what is accepted."""


def image_type(data: bytes) -> tuple[str, str] | None:
    """(mime, suffix) when `data` decodes as one of the accepted image formats, else None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = IMAGE_TYPES.get(probe.format or "")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if kind is None:
        return None
    try:
        decode_image(data, min_side=64)  # every pixel decodes: truncated and bomb files end here
    except ImageDecodeError as exc:
        raise UploadRejectedError(f"the image cannot be read: {exc}") from None
    return kind


def _mpeg_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    layer = (head[1] >> 1) & 0x03
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x03
    return layer != 0 and bitrate != _MPEG_BAD_BITRATE and rate != _MPEG_BAD_RATE


def audio_type(data: bytes) -> str | None:
    """The mime type of an audio container recognised by its header, or None."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(data)) as wav:
                if wav.getnframes() == 0:
                    raise UploadRejectedError("the WAV file holds no sound (0 frames)")
        except (wave.Error, EOFError) as exc:
            raise UploadRejectedError(f"the WAV file cannot be read: {exc}") from None
        return "audio/wav"
    if head[:3] == b"ID3" or _mpeg_frame(head):
        return "audio/mpeg"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[4:8] == b"ftyp" and head[8:12] in (b"M4A ", b"M4B "):
        return "audio/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: what a browser's recorder writes
        return "audio/webm"
    return None


def check_uploaded(path: str | Path, upload_root: Path) -> Path:
    """`path` as a file the page's own upload route wrote (inside Gradio's cache), or an error.

    A client can send any path in a FileData; without this check the page would read, keep and
    serve back any image or audio file the server can read.
    """
    resolved = resolved_path(path)
    if resolved is None or not is_inside(resolved, upload_root) or not resolved.is_file():
        raise UploadRejectedError(f"{Path(path).name} was not uploaded through this page")
    return resolved


def inspect_upload(path: str | Path, max_bytes: int) -> tuple[bytes, str, str]:
    """(content, mime, suffix) of an acceptable upload; UploadRejectedError says why it is not one."""
    source = Path(path)
    name = source.name
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise UploadRejectedError(f"upload {name} cannot be read: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise UploadRejectedError(
            f"{name} is {size / 2**20:.1f} MB; uploads are limited to {max_bytes / 2**20:.0f} MB "
            "(the web_max_upload_mb setting, MODALGRAPH_WEB_MAX_UPLOAD_MB)"
        )
    if size == 0:
        raise UploadRejectedError(f"{name} is empty")
    data = source.read_bytes()
    try:
        kind = image_type(data)
        if kind is None:
            mime = audio_type(data)
            if mime is None:
                raise UploadRejectedError(f"{name} is neither an image nor audio; {ACCEPTED_TEXT}")
            kind = (mime, AUDIO_SUFFIX[mime])
    except UploadRejectedError as exc:
        if str(exc).startswith(name):
            raise
        raise UploadRejectedError(f"{name}: {exc}") from None
    return data, kind[0], kind[1]


def accept_upload(path: str | Path, store: ArtifactStore, max_bytes: int) -> Artifact:
    """Check an uploaded file and copy it into the artifact store, named by what it really is."""
    data, mime, suffix = inspect_upload(path, max_bytes)
    return store.put_bytes(data, suffix, mime, uploaded_as=Path(path).name)
