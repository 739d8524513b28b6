"""An advisory, exclusive, cross-process lock on a file: one builder or puller at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(
    lock_path: Path, busy: Exception | None = None, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Wait for, then hold, the lock on `lock_path` (created with its folder); with `busy`, do not wait
    but raise `busy` when another holds it; with `on_wait`, call it once before waiting, so that the
    user knows why nothing happens. The lock is per open file, so two threads of one process exclude
    each other too, and the OS drops it when its holder dies. Where the OS has no advisory locks
    (Windows) this does nothing: the callers' atomic renames still keep results whole."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if busy is not None:
                raise busy from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
