"""Telling a full disk apart from other storage failures, so the user is told plainly.

SQLite reports a full disk as "database or disk is full", or as a bare "disk I/O error" when the
write-ahead log cannot grow; Chroma wraps it in "Error in compaction". Advice meant for a corrupt
file ("move it aside") would throw healthy data away here, so a full disk gets its own error.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from agent.core.errors import StorageError

# Below this much free space, an ambiguous I/O failure is taken for a full disk.
NEARLY_FULL_BYTES = 16 * 2**20
_FULL_WORDS = ("disk is full", "no space left", "database or disk is full")


class DiskFullError(StorageError):
    """No room left where modalgraph writes; nothing committed before it is lost."""


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, where: Path) -> bool:
    """Whether `exc`, raised while writing under `where`, comes from a full disk."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    if any(word in text for word in _FULL_WORDS):
        return True
    free = free_bytes(where)
    return free is not None and free < NEARLY_FULL_BYTES


def disk_full_error(where: Path) -> DiskFullError:
    free = free_bytes(where)
    left = f" ({free // 1024} KiB free)" if free is not None else ""
    return DiskFullError(
        f"the disk holding {where} is full{left}; free some space and try again "
        "(what was saved before is intact)"
    )
