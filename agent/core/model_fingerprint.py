"""Content fingerprints of model files, cheap enough to take on every load.

Whatever is only valid for the model that made it (an index's vectors, a projector, cached features
and targets) is keyed by a digest of the model files' names, sizes, heads and tails: paths move and
names repeat, retraining or re-quantising changes the bytes, and copying a model elsewhere does not.
Hashing whole checkpoints would cost seconds on every load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_SAMPLE = 1 << 20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".json")


def digest_file(digest: hashlib._Hash, path: Path) -> None:
    """Add one file's name, size, first and last MiB to `digest`."""
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_SAMPLE))
        handle.seek(max(0, size - _SAMPLE))
        digest.update(handle.read(_SAMPLE))


def fingerprint_path(path: Path) -> str:
    """16 hex digits for a model file, or for the weights and configs of a model folder."""
    digest = hashlib.sha256()
    if path.is_file():
        digest_file(digest, path)
    else:
        for item in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
            digest.update(str(item.relative_to(path)).encode())
            digest_file(digest, item)
    return digest.hexdigest()[:16]
