"""Small previews of photos, made once and kept in the data dir, so a grid never sends originals.

A thumbnail is a JPEG whose longer side is at most `THUMB_SIDE` pixels, upright (EXIF orientation
applied), named by the content hash of its photo: a renamed or copied photo reuses it, and an
edited one gets a new one. It is written to a temporary file and renamed into place, so two pages
(or two processes) making the same thumbnail at once each find a whole file. The folder is bounded:
past `max_bytes`, the least recently used thumbnails go (each use touches its file's time).

Only photos under the allowed folders (the indexed library and the artifact store) are read: a
path from anywhere else is refused before a byte is read, whatever `..` or symlinks it holds.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.core.errors import ToolInputError
from memory.image_files import ImageDecodeError, decode_image, is_image_name, read_and_hash

THUMB_SIDE = 256
JPEG_QUALITY = 82
# After an eviction the folder holds at most this share of its bound, so that the next few
# thumbnails do not each start another scan.
EVICT_TO = 0.8
LOCK_STRIPES = 64
PLACEHOLDER_NAME = "unavailable.jpg"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class PhotoRefusedError(ToolInputError):
    """A path outside the allowed folders, or not an image file: never read."""


class ThumbnailUnavailableError(ToolInputError):
    """The photo is gone or cannot be decoded; the message says which, in one line."""


def _resolved(raw: str | Path) -> Path | None:
    try:
        return Path(os.path.abspath(os.path.expanduser(str(raw)))).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None


class ThumbnailCache:
    """Thumbnails under `folder/ab/<sha256>-<side>.jpg`, for photos under `allowed()` folders."""

    def __init__(
        self,
        folder: Path,
        allowed: Callable[[], Sequence[Path]],
        max_bytes: int = 512 * 2**20,
        side: int = THUMB_SIDE,
        max_pixels: int | None = None,
    ) -> None:
        self.folder = folder
        self.allowed = allowed
        self.max_bytes = max_bytes
        self.side = side
        self.max_pixels = max_pixels
        self._lock = threading.Lock()
        # One thread makes a given thumbnail while others wait for it; striped, so the locks stay few.
        self._making = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._total: int | None = None  # bytes in the folder, counted on first write

    # ------------------------------------------------------------------ the policy

    def check(self, raw: str | Path) -> Path:
        """`raw` resolved, when it is an image file under an allowed folder; else PhotoRefusedError."""
        path = _resolved(raw)
        name = Path(str(raw)).name
        if path is None or not is_image_name(path.name):
            raise PhotoRefusedError(f"not a photo of the library: {name}")
        for folder in self.allowed():
            root = _resolved(folder)
            if root is not None and path.is_relative_to(root):
                return path
        raise PhotoRefusedError(f"not a photo of the library: {name}")

    def target(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise PhotoRefusedError(f"not a content hash: {digest[:80]!r}")
        return self.folder / digest[:2] / f"{digest}-{self.side}.jpg"

    # ------------------------------------------------------------------ thumbnails

    def thumbnail(self, raw: str | Path, digest: str | None = None) -> Path:
        """The thumbnail of the photo at `raw`, made now unless cached.

        `digest` is the photo's sha256 as the index or the artifact store knows it: with it a cached
        thumbnail is found without reading the photo. Without it (or when the photo changed since),
        the photo is read and hashed."""
        source = self.check(raw)
        if digest is not None:
            cached = self.target(digest)
            if self._touch(cached):
                return cached
        with self._lock_for(digest or str(source)):
            if digest is not None and self._touch(self.target(digest)):
                return self.target(digest)  # made by another thread meanwhile
            return self._make(source)

    def _lock_for(self, key: str) -> threading.Lock:
        return self._making[hash(key) % LOCK_STRIPES]

    def placeholder(self) -> Path:
        """A plain grey square shown in place of a photo that is gone or cannot be decoded."""
        from PIL import Image

        path = self.folder / PLACEHOLDER_NAME  # not in a hash folder: never evicted
        if not path.is_file():
            image = Image.new("RGB", (self.side, self.side), (200, 200, 200))
            self._write(path, lambda handle: image.save(handle, "JPEG", quality=JPEG_QUALITY))
        return path

    def _make(self, source: Path) -> Path:
        from PIL import Image

        name = source.name
        try:
            data, digest = read_and_hash(source)
            cached = self.target(digest)
            if self._touch(cached):
                return cached
            decoded = decode_image(source if data is None else data, self.side, self.max_pixels)
        except ImageDecodeError as exc:
            reason = "it is gone" if not source.exists() else str(exc)
            raise ThumbnailUnavailableError(f"no preview of {name}: {reason}") from None
        image = decoded.image
        image.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
        self._write(cached, lambda handle: image.save(handle, "JPEG", quality=JPEG_QUALITY))
        return cached

    def _touch(self, path: Path) -> bool:
        """Whether `path` is cached; marks it used now (the eviction goes by that time)."""
        try:
            os.utime(path)
            return True
        except OSError:
            return False

    def _write(self, target: Path, save: Callable[[object], None]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as handle:
                save(handle)
            size = os.path.getsize(temp)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self._added(size, keep=target)

    # ------------------------------------------------------------------ the bound

    def _files(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every thumbnail, oldest use first."""
        found = []
        for entry in self.folder.glob("??/*.jpg"):
            try:
                info = entry.stat()
            except OSError:
                continue  # removed by another process meanwhile
            found.append((info.st_mtime, info.st_size, entry))
        return sorted(found)

    def size(self) -> int:
        """Bytes the thumbnails take now."""
        return sum(size for _, size, _ in self._files())

    def _added(self, size: int, keep: Path) -> None:
        with self._lock:
            if self._total is None:
                self._total = self.size()  # counts the file just written too
            else:
                self._total += size
            if self._total <= self.max_bytes:
                return
            files = self._files()
            total = sum(size for _, size, _ in files)
            for _, file_size, path in files:
                if total <= self.max_bytes * EVICT_TO:
                    break
                if path == keep:
                    continue  # the page is about to send it
                path.unlink(missing_ok=True)
                total -= file_size
            self._total = total
