"""Finding image files under a folder and decoding them safely for the CLIP encoder.

Scanning must never hang or crash on what real photo folders hold: symlink loops, unreadable
folders, files that vanish mid-scan, FIFOs (never opened: opening one blocks). What it cannot use
is listed with a one-line reason (`ScanResult.skipped`). Decoding must never be fatal: a corrupt,
truncated, empty or non-image file becomes an `ImageDecodeError` with a one-line reason that the
index reports. Memory stays bounded whatever the file: big files are hashed in chunks and decoded
from disk, and an image's pixel count is checked from its header before any pixel is decoded.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import threading
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error
from typing import TYPE_CHECKING, BinaryIO

from agent.core.errors import one_line

if TYPE_CHECKING:
    from PIL import Image

# Formats indexed; matched on the suffix, so a text file renamed `.png` is tried and reported as
# not an image, while `.txt` or `.mp4` files are ignored silently. HEIC/HEIF (what phones save) is
# decoded by pillow-heif, AVIF by Pillow itself (11.2 and later).
IMAGE_SUFFIXES = frozenset(
    {
        *(".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"),
        *(".heic", ".heif", ".hif", ".avif"),
    }
)
# Camera RAW files: listed as skipped with `raw_reason` rather than passed over, since a user who
# shoots RAW would otherwise wonder where half the library went. Pillow would decode some of them
# (a DNG is a TIFF) into the small embedded preview at best, so none is tried.
RAW_SUFFIXES = frozenset(
    {
        *(".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf"),
        *(".rw2", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".mrw", ".iiq", ".rwl"),
    }
)
# ISO base media "ftyp" brands of HEIF stills and of AVIF, to name the format of a file that fails.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


# Files up to this size are read whole, once, for both the hash and the decoder (one read of a
# slow external disk instead of two); bigger ones are hashed in chunks and decoded from disk.
WHOLE_READ_BYTES = 32 * 2**20
READ_CHUNK_BYTES = 2**20

# Reasons the scan gives for what it lists but does not index.
LINK_OUTSIDE = "links outside the library folder"
SYMLINK_LOOP = "symlink loop"
BROKEN_LINK = "broken link (its target is missing)"
_FILE_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


class ImageDecodeError(Exception):
    """A file that cannot be used as an image; the message is the reason shown to the user."""


class FileVanishedError(ImageDecodeError):
    """A file that was found, then deleted (or moved) before it could be read."""

    def __init__(self) -> None:
        super().__init__("gone before it could be read (deleted or moved)")


class FileTooLargeError(ImageDecodeError):
    """A file over the caller's size limit; raised before more than the limit is read."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"too large: over {size} bytes")


class TooManyPixelsError(ImageDecodeError):
    """An image whose decode would need more pixels than the caller allows, known from its header."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        super().__init__(f"too many pixels to decode: {width}x{height}")


@dataclass(frozen=True, slots=True)  # slots: a scan holds one per photo of the library
class ImageFile:
    """A candidate file found by the scan, with the stat fields that decide whether it changed."""

    path: Path
    root: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanSkip:
    """Something the scan found but will not index, with the stat fields of the entry itself (not
    of a link's target), so that an unchanged one is recognised next time."""

    path: Path
    reason: str
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[ImageFile] = field(default_factory=list)
    skipped: list[ScanSkip] = field(default_factory=list)
    # Folders that could not be listed: their files are neither indexed nor treated as deleted.
    unreadable_dirs: list[tuple[Path, str]] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def raw_reason(name: str) -> str | None:
    """Why a camera RAW file is not indexed, or None for any other file."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in RAW_SUFFIXES:
        return None
    return f"RAW photo ({suffix[1:].upper()}): not decoded; export it as JPEG or HEIC to index it"


def real_path(path: Path) -> Path:
    """`path` with every symlink resolved: what the library rule judges (see `scan_folder`)."""
    return Path(os.path.realpath(path))


def scan_folder(root: Path, library: Sequence[Path] = ()) -> ScanResult:
    """All image-suffixed files under `root`, following symlinks but visiting each real folder once.

    A file belongs to the library only if its real path (symlinks resolved) lies inside `root` or
    one of the `library` folders: the same rule as the tools' path guard, so nothing is indexed
    that they would refuse to read. Links leading elsewhere, FIFOs and other special files, symlink
    loops and broken links are listed in `skipped` with a reason; a FIFO is never opened. Hidden
    files and folders (".thumbnails", "._IMG.JPG" resource forks) are skipped silently, as are
    files without an image suffix. Paths are reported under `root` as the user sees them.
    """
    result = ScanResult()
    # (path as the user sees it, its real path): a folder's real path gives its plain entries' real
    # paths without resolving each one, which would cost a few system calls per photo.
    _walk([(root, real_path(root))], set(), root, _inside_rule(root, library), result)
    return result


def scan_names(folder: Path, names: Collection[str], root: Path, library: Sequence[Path] = ()) -> ScanResult:
    """The entries called `names` in `folder` (inside `root`), judged as `scan_folder` judges them,
    with the folders among them walked whole: what a watcher needs for a few changed paths, without
    walking the rest of the library. A name not in the result is gone (or hidden, or not an image)."""
    result = ScanResult()
    inside = _inside_rule(root, library)
    visited: set[tuple[int, int]] = set()
    try:
        info = folder.stat()
        # Neither the folder nor its root is walked again through a link inside a new subfolder.
        visited.add((info.st_dev, info.st_ino))
        with os.scandir(folder) as listing:
            entries = sorted((e for e in listing if e.name in names), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return result  # the folder went with its entries: all of them are gone
    except OSError as exc:
        result.unreadable_dirs.append((folder, exc.strerror or str(exc)))
        return result
    with suppress(OSError):
        info = root.stat()
        visited.add((info.st_dev, info.st_ino))
    real = real_path(folder)
    subfolders: list[tuple[Path, Path]] = []
    for entry in entries:
        if not entry.name.startswith("."):
            _scan_entry(entry, real, root, inside, result, subfolders)
    _walk(list(reversed(subfolders)), visited, root, inside, result)
    return result


def _inside_rule(root: Path, library: Sequence[Path]) -> Callable[[Path], bool]:
    allowed = [real_path(folder) for folder in (root, *library)]

    def inside(path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in allowed)

    return inside


def walk_folder(root: Path, library: Sequence[Path] = ()) -> Iterator[tuple[Path, ScanResult]]:
    """`scan_folder` one folder at a time: each folder the walk lists (as the user sees its path),
    with what `scan_folder` would report of the entries directly in it. A check of a large library
    then holds one folder's entries, not the library's."""
    yield from _walk_folders([(root, real_path(root))], set(), root, _inside_rule(root, library))


def _walk(
    stack: list[tuple[Path, Path]],
    visited: set[tuple[int, int]],
    root: Path,
    inside: Callable[[Path], bool],
    result: ScanResult,
) -> None:
    """Walk the (folder, real path) pairs on `stack` and every folder below them into `result`."""
    for _folder, part in _walk_folders(stack, visited, root, inside):
        result.files += part.files
        result.skipped += part.skipped
        result.unreadable_dirs += part.unreadable_dirs


def _walk_folders(
    stack: list[tuple[Path, Path]],
    visited: set[tuple[int, int]],
    root: Path,
    inside: Callable[[Path], bool],
) -> Iterator[tuple[Path, ScanResult]]:
    while stack:
        folder, real = stack.pop()
        part = ScanResult()
        entries = _list_folder(folder, visited, part)
        subfolders: list[tuple[Path, Path]] = []
        for entry in entries:
            if not entry.name.startswith("."):
                _scan_entry(entry, real, root, inside, part, subfolders)
        # Reversed so the stack pops folders in name order: a stable order makes resumes predictable.
        stack.extend(reversed(subfolders))
        yield folder, part


def _list_folder(folder: Path, visited: set[tuple[int, int]], result: ScanResult) -> list[os.DirEntry[str]]:
    """The folder's entries by name; none when it was walked already or cannot be listed."""
    try:
        info = folder.stat()
    except OSError as exc:
        result.unreadable_dirs.append((folder, exc.strerror or str(exc)))
        return []
    # (device, inode) identifies the real folder: a second link to a folder already walked, or a
    # link back up the tree, is skipped instead of walked again (or forever).
    key = (info.st_dev, info.st_ino)
    if key in visited:
        return []
    visited.add(key)
    try:
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        result.unreadable_dirs.append((folder, exc.strerror or str(exc)))
        return []


def _scan_entry(
    entry: os.DirEntry[str],
    real_folder: Path,
    root: Path,
    inside: Callable[[Path], bool],
    result: ScanResult,
    subfolders: list[tuple[Path, Path]],
) -> None:
    """Sort one folder entry into a file to index, a subfolder to walk, a listed skip, or nothing."""
    try:
        info = entry.stat(follow_symlinks=True)  # stat never opens: a FIFO cannot block it
    except OSError as exc:
        reason = _unusable_entry_reason(entry, exc)
        if reason is not None:
            result.skipped.append(_scan_skip(entry, reason))
        return
    real = real_path(Path(entry.path)) if _is_link(entry) else real_folder / entry.name
    if stat.S_ISDIR(info.st_mode):
        if inside(real):
            subfolders.append((Path(entry.path), real))
        else:
            result.skipped.append(_scan_skip(entry, LINK_OUTSIDE))
    elif not is_image_name(entry.name):
        raw = raw_reason(entry.name)
        if raw is not None and inside(real) and stat.S_ISREG(info.st_mode):
            result.skipped.append(_scan_skip(entry, raw))
        return  # not offered as a photo: `.txt` files and the like are not worth a line
    elif not inside(real):
        result.skipped.append(_scan_skip(entry, LINK_OUTSIDE))
    elif not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "special file")
        result.skipped.append(_scan_skip(entry, f"not a regular file ({kind})"))
    else:
        result.files.append(ImageFile(Path(entry.path), root, info.st_size, info.st_mtime_ns))


def _unusable_entry_reason(entry: os.DirEntry[str], exc: OSError) -> str | None:
    """Why an entry that cannot be stat'ed is listed, or None to pass over it in silence."""
    if exc.errno == errno.ELOOP:
        return SYMLINK_LOOP  # listed whatever its name: it may have been meant as a folder
    if not is_image_name(entry.name):
        return None
    if exc.errno == errno.ENOENT:
        # A link to a missing target is worth a line; a file deleted since the listing is not.
        return BROKEN_LINK if _is_link(entry) else None
    return f"cannot read: {exc.strerror or exc}"


def _is_link(entry: os.DirEntry[str]) -> bool:
    """Whether the entry may be a symlink; when unsure, yes: resolving a plain file costs a little
    time, while taking a link for a plain file could let a file outside the library in."""
    try:
        return entry.is_symlink()
    except OSError:
        return True


def _scan_skip(entry: os.DirEntry[str], reason: str) -> ScanSkip:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:  # gone since the listing; the reason still stands for this scan
        return ScanSkip(Path(entry.path), reason, 0, 0)
    return ScanSkip(Path(entry.path), reason, info.st_size, info.st_mtime_ns)


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, refused unless it is a regular file. Opened non-blocking, so that a
    FIFO put where a photo was (after the scan) is refused at once instead of hanging the worker."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileVanishedError from None
    except OSError as exc:
        raise ImageDecodeError(f"cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode), "special file")
            raise ImageDecodeError(f"not a regular file ({kind})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _read(handle: BinaryIO, size: int) -> bytes:
    try:
        return handle.read(size)
    except OSError as exc:  # a failing disk, or one unplugged mid-read
        raise ImageDecodeError(f"cannot read: {exc.strerror or exc}") from None


def read_and_hash(path: Path, max_bytes: int | None = None) -> tuple[bytes | None, str]:
    """The file's sha256, and its bytes when it is small enough to keep (`WHOLE_READ_BYTES`): then
    one read serves both the content key and the decoder. A bigger file is hashed in chunks and its
    bytes are not returned (None): decode it from its path. Reading stops with `FileTooLargeError`
    as soon as more than `max_bytes` were read (a file may grow after the scan measured it)."""
    keep = WHOLE_READ_BYTES if max_bytes is None else min(WHOLE_READ_BYTES, max_bytes)
    with open_regular(path) as handle:
        head = _read(handle, keep + 1)
        total = len(head)
        _check_size(total, max_bytes)
        digest = hashlib.sha256(head)
        if total <= keep:
            return head, digest.hexdigest()
        del head
        while chunk := _read(handle, READ_CHUNK_BYTES):
            total += len(chunk)
            _check_size(total, max_bytes)
            digest.update(chunk)
    return None, digest.hexdigest()


def _check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise FileTooLargeError(size)


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
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_bomb_warning_silenced = False
_heif_lock = threading.Lock()
_heif_registered: bool | None = None  # None: not tried yet


def register_heif() -> bool:
    """Teach Pillow HEIC/HEIF through pillow-heif, once per process, on the first decode: importing
    it loads libheif, which `--help` and searches never need. False when it is not installed."""
    global _heif_registered
    if _heif_registered is None:
        with _heif_lock:
            if _heif_registered is None:
                try:
                    import pillow_heif
                except ImportError:
                    _heif_registered = False
                else:
                    pillow_heif.register_heif_opener()
                    _heif_registered = True
    return _heif_registered


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
    """An upright RGB image, possibly shrunk, the pixel size of the original (upright), and the
    file's EXIF block (read anyway for the orientation, so the photo's metadata costs no second read)."""

    image: Image.Image
    width: int
    height: int
    exif: Image.Exif | None = None
    stored_size: tuple[int, int] = (0, 0)  # as the file stores it, before the EXIF rotation


def _load_sub_blocks(exif: Image.Exif) -> None:
    """Read the Exif and GPS sub-blocks now, while the file is open: Pillow reads them on first use
    (a TIFF's from the file itself) and keeps them, and the file is closed once decoded."""
    for tag in (_EXIF_IFD, _GPS_IFD):
        try:
            exif.get_ifd(tag)
        except Exception:  # broken EXIF costs the photo's metadata (reported there), never the photo
            return


def decode_image(source: bytes | Path, min_side: int = 224, max_pixels: int | None = None) -> DecodedImage:
    """Decode `source` (a file's bytes, or its path: read as needed) into an upright RGB image whose
    shorter side is at least `min_side` (when the original is that large) but not much more: big
    photos are shrunk early, so that a 40-megapixel file costs a few megabytes rather than hundreds.

    GIF, animated WebP and multi-page TIFF give their first frame. EXIF orientation is applied.
    Images over PIL's decompression-bomb limit (about 179 MP) are refused, and so, with
    `TooManyPixelsError`, is one whose decode needs more than `max_pixels` pixels: known from the
    header (a JPEG's reduced decoding size counts), before any pixel is decoded.
    """
    if isinstance(source, bytes) and not source:
        raise ImageDecodeError("empty file (0 bytes)")
    stream = io.BytesIO(source) if isinstance(source, bytes) else open_regular(source)
    with stream:
        return _decode(stream, min_side, max_pixels)


def _decode(stream: BinaryIO, min_side: int, max_pixels: int | None) -> DecodedImage:
    from PIL import Image, UnidentifiedImageError

    _silence_bomb_warning()
    register_heif()
    try:
        image = Image.open(stream)
        width, height = image.size
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT, still at least min_side.
            image.draft("RGB", (min_side, min_side))
        if max_pixels is not None and image.size[0] * image.size[1] > max_pixels:
            raise TooManyPixelsError(*image.size)
        # Only after the pixel check: a PNG's getexif() decodes the whole image, since its EXIF
        # chunk may follow the pixels.
        exif = image.getexif()
        orientation = exif.get(_EXIF_ORIENTATION)
        _load_sub_blocks(exif)
        stored_size = (width, height)
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
        return DecodedImage(image, width, height, exif, stored_size)
    except UnidentifiedImageError:
        raise ImageDecodeError(_unidentified_reason(stream)) from None
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


def read_exif(path: Path, max_pixels: int | None = None) -> tuple[Image.Exif | None, tuple[int, int]]:
    """A file's EXIF block and stored pixel size, from its header: no pixel is decoded, except a
    PNG's whose EXIF chunk follows the pixels (so one over `max_pixels` is refused first)."""
    from PIL import Image, UnidentifiedImageError

    _silence_bomb_warning()
    register_heif()
    try:
        with open_regular(path) as stream:
            try:
                image = Image.open(stream)
            except UnidentifiedImageError:
                raise ImageDecodeError(_unidentified_reason(stream)) from None
            with image:
                size = image.size
                if max_pixels is not None and size[0] * size[1] > max_pixels:
                    raise TooManyPixelsError(*size)
                exif = image.getexif()
                _load_sub_blocks(exif)
                return exif, size
    except ImageDecodeError:
        raise
    except Exception as exc:  # PIL reports broken headers with many types
        raise ImageDecodeError(f"corrupt image: {one_line(exc)}") from None


def _unidentified_reason(stream: BinaryIO) -> str:
    """Why Pillow recognised no format: a HEIF or AVIF container is named, with libheif's own
    reason for a broken HEIC (Pillow only says "cannot identify"); anything else is not an image."""
    try:
        stream.seek(0)
        head = stream.read(32)
    except OSError:
        head = b""
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if brand in _AVIF_BRANDS:
        from PIL import features

        if not features.check("avif"):
            return "AVIF image, but this Pillow cannot decode AVIF: upgrade Pillow to 11.2 or later"
        return "corrupt AVIF image"
    if brand not in _HEIF_BRANDS:
        return "not an image (unrecognised format)"
    if not register_heif():
        return "HEIC/HEIF image, but pillow-heif is not installed: `pip install pillow-heif` to index it"
    import pillow_heif

    try:
        stream.seek(0)
        pillow_heif.open_heif(stream).load()
    except Exception as exc:  # libheif's reason, whatever its type
        return f"corrupt HEIC/HEIF image: {one_line(exc)}"
    return "corrupt HEIC/HEIF image"


def iter_chunks(items: list[ImageFile], size: int) -> Iterator[list[ImageFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
