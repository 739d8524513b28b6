"""Build-once cache folders for trained and generated models (the shapes world, its models, tiny LLMs).

A folder is built under a lock, so two processes asking for it at once build it once, and into a
sibling temporary folder that is renamed into place when complete, so a killed build never leaves
a folder that looks done (the next build removes the leftover).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from agent.core.file_lock import exclusive_lock


def cached_build(
    final: Path,
    build: Callable[[Path], object],
    done: Callable[[Path], bool],
) -> Path:
    """`final`, after `build(temporary folder)` made it, unless `done(final)` says it already exists."""
    if done(final):
        return final
    with exclusive_lock(final.parent / f".{final.name}.lock"):
        if done(final):  # another process built it while this one waited
            return final
        building = final.parent / f".building-{final.name}"
        shutil.rmtree(building, ignore_errors=True)
        build(building)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(building, final)
    return final
