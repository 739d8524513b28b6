"""Content-addressed artifact store: generated and attached files live here; state holds references."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from agent.core.disk_full import disk_full_error, is_disk_full
from agent.core.errors import StorageError


class Artifact(BaseModel):
    """A reference to a file: what graph state, checkpoints and answers carry instead of bytes."""

    path: str
    mime: str
    sha256: str | None = None
    meta: dict[str, object] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """image, audio, video or text: the part of the mime type a front end switches on."""
        return self.mime.split("/", 1)[0]


def guess_mime(path: str | Path) -> str:
    mime, _ = mimetypes.guess_type(str(path))
    return mime or "application/octet-stream"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _storage_error(exc: OSError, target: Path) -> StorageError:
    if is_disk_full(exc, target.parent):
        return disk_full_error(target.parent)
    return StorageError(f"cannot write {target}: {exc.strerror or exc}")


class ArtifactStore:
    """Files named by their sha256 under `root/ab/abcdef....ext`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _target(self, digest: str, suffix: str) -> Path:
        return self.root / digest[:2] / f"{digest}{suffix}"

    def contains(self, path: str | Path) -> bool:
        try:
            return Path(path).resolve().is_relative_to(self.root.resolve())
        except OSError:
            return False

    def put_bytes(self, data: bytes, suffix: str, mime: str | None = None, **meta: object) -> Artifact:
        digest = hashlib.sha256(data).hexdigest()
        target = self._target(digest, suffix)
        if not target.exists():
            self._write_atomic(target, lambda handle: handle.write(data))
        return Artifact(path=str(target), mime=mime or guess_mime(target), sha256=digest, meta=dict(meta))

    def put_file(self, source: Path, mime: str | None = None, **meta: object) -> Artifact:
        digest = sha256_file(source)
        target = self._target(digest, source.suffix.lower())
        if not target.exists():

            def copy(handle: object) -> None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, handle)  # type: ignore[arg-type]

            self._write_atomic(target, copy)
        return Artifact(path=str(target), mime=mime or guess_mime(target), sha256=digest, meta=dict(meta))

    def _write_atomic(self, target: Path, write: object) -> None:
        # A temp file in the same folder, then rename: a crash or a full disk never leaves half a file.
        tmp_name = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                write(handle)  # type: ignore[operator]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
            tmp_name = None
        except OSError as exc:
            raise _storage_error(exc, target) from None
        finally:
            if tmp_name and os.path.exists(tmp_name):
                os.unlink(tmp_name)
