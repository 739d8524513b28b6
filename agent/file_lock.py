"""An advisory, exclusive, cross-process lock on a file: one builder or puller at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Wait for, then hold, the lock on `lock_path` (created with its folder). Where the OS has no
    advisory locks (Windows) this does nothing: the callers' atomic renames still keep results whole."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
