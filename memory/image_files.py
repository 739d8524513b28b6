"""Finding image files under a folder and decoding them safely for the CLIP encoder.

Scanning must never hang or crash on what real photo folders hold: symlink loops, unreadable
folders, files that vanish mid-scan. Decoding must never be fatal: a corrupt, truncated, empty or
non-image file becomes an `ImageDecodeError` with a one-line reason that the index reports.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# Formats the issue promises; matched on the suffix, so a text file renamed `.png` is tried and
# reported as not an image, while `.txt` or `.mp4` files are ignored silently.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"}
)


class ImageDecodeError(Exception):
    """A file that cannot be used as an image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class ImageFile:
    """A candidate file found by the scan, with the stat fields that decide whether it changed."""

    path: Path
    root: Path
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[ImageFile] = field(default_factory=list)
    # Folders that could not be listed: their files are neither indexed nor treated as deleted.
    unreadable_dirs: list[tuple[Path, str]] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def scan_folder(root: Path) -> ScanResult:
    """All image-suffixed files under `root`, following symlinks but visiting each real folder once.

    Hidden files and folders (".thumbnails", "._IMG.JPG" resource forks) are skipped. Paths are
    reported under `root` as the user sees them, not as symlink targets.
    """
    result = ScanResult()
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
        except OSError as exc:
            result.unreadable_dirs.append((folder, exc.strerror or str(exc)))
            continue
        # (device, inode) identifies the real folder: a symlink loop or a second link to a folder
        # already walked is skipped instead of walked again (or forever).
        key = (info.st_dev, info.st_ino)
        if key in visited:
            continue
        visited.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            result.unreadable_dirs.append((folder, exc.strerror or str(exc)))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                entry_stat = entry.stat(follow_symlinks=True)
            except OSError:
                # A dangling symlink or a file deleted since the listing: nothing to index.
                continue
            if stat.S_ISDIR(entry_stat.st_mode):
                subfolders.append(Path(entry.path))
            elif stat.S_ISREG(entry_stat.st_mode) and is_image_name(entry.name):
                result.files.append(
                    ImageFile(Path(entry.path), root, entry_stat.st_size, entry_stat.st_mtime_ns)
                )
        # Reversed so the stack pops folders in name order: a stable order makes resumes predictable.
        stack.extend(reversed(subfolders))
    return result


def read_and_hash(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their sha256: read once, used for both the content key and decoding."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read: {exc.strerror or exc}") from None
    return data, hashlib.sha256(data).hexdigest()


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparent pixels over white, as a viewer shows them (converting straight to RGB turns them black)."""
    from PIL import Image

    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float scans: PIL's own convert clips them to white; scale to 8 bits instead.
        import numpy as np

        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    return image if image.mode == "RGB" else image.convert("RGB")


# EXIF orientation tag value -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_ORIENTATION_FIX = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
_EXIF_ORIENTATION = 0x0112
_bomb_warning_silenced = False


def _silence_bomb_warning() -> None:
    """Images between PIL's warning and error limits (89-179 MP) are legitimate panoramas: decode them
    quietly. Installed once, process-wide, because `warnings.catch_warnings` is not thread-safe."""
    global _bomb_warning_silenced
    if not _bomb_warning_silenced:
        from PIL import Image

        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        _bomb_warning_silenced = True


@dataclass
class DecodedImage:
    """An upright RGB image, possibly shrunk, and the pixel size of the original."""

    image: Image.Image
    width: int
    height: int


def decode_image(data: bytes, min_side: int = 224) -> DecodedImage:
    """Decode `data` into an upright RGB image whose shorter side is at least `min_side` (when the
    original is that large) but not much more: big photos are shrunk early, so that a 40-megapixel
    file costs a few megabytes rather than hundreds.

    GIF, animated WebP and multi-page TIFF give their first frame. EXIF orientation is applied.
    Images over PIL's decompression-bomb limit (about 179 MP) are refused.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    _silence_bomb_warning()
    try:
        image = Image.open(io.BytesIO(data))
        orientation = image.getexif().get(_EXIF_ORIENTATION)
        width, height = image.size
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT, still at least min_side.
            image.draft("RGB", (min_side, min_side))
        image.load()
        image = _to_rgb(image)
        shorter = min(image.size)
        if shorter >= 4 * min_side:
            # Box-filter reduction: cheap and anti-aliased; the processor does the final resize.
            image = image.reduce(shorter // (2 * min_side))
        fix = _ORIENTATION_FIX.get(orientation) if isinstance(orientation, int) else None
        if fix:
            image = image.transpose(getattr(Image.Transpose, fix))
            if fix in ("TRANSPOSE", "ROTATE_270", "TRANSVERSE", "ROTATE_90"):
                width, height = height, width
        return DecodedImage(image, width, height)
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise ImageDecodeError(
            f"too large: over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 10**6} megapixels"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct_error) as exc:
        # PIL reports truncated and corrupt data as OSError, and some broken headers as the others.
        reason = str(exc).strip() or type(exc).__name__
        if "truncated" in reason:
            raise ImageDecodeError("truncated image data") from None
        raise ImageDecodeError(f"corrupt image: {reason}") from None


def iter_chunks(items: list[ImageFile], size: int) -> Iterator[list[ImageFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
