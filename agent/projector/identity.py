"""Content fingerprints of model files, cheap enough to take on every load.

A projector is only valid for the LLM and the generator it was trained with, and cached features and
targets are only valid for the model that made them. Paths move and names repeat, so the key is a
digest of the files' sizes, heads and tails (retraining or re-quantising changes them), which
survives copying a model elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

_SAMPLE = 1 << 20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".json")


def _digest_file(digest: hashlib._Hash, path: Path) -> None:
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
        _digest_file(digest, path)
    else:
        for item in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
            digest.update(str(item.relative_to(path)).encode())
            _digest_file(digest, item)
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' per-load "Loading weights" bars and notices are noise in a training log."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
