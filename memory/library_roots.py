"""The folders the user has indexed, read cheaply (stdlib sqlite3 only) for the path guard.

The image index keeps its manifest in `index_dir/library.sqlite`; this module reads just the
`roots` table so that checking a path never imports Chroma or torch.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from memory.stored_paths import path_from_db

if TYPE_CHECKING:
    from agent.core.settings import Settings

MANIFEST_NAME = "library.sqlite"


def manifest_path(settings: Settings) -> Path:
    return settings.index_dir / MANIFEST_NAME


def load_library_roots(settings: Settings) -> list[Path]:
    """Indexed folders, as absolute resolved paths; empty when nothing was indexed yet."""
    path = manifest_path(settings)
    if not path.is_file():
        return []
    try:
        # Read-only URI: the guard must never create or lock the manifest.
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            rows = conn.execute("SELECT path FROM roots ORDER BY path").fetchall()
    except sqlite3.Error:
        # A manifest from before the roots table existed, or one being created right now.
        return []
    return [Path(path_from_db(row[0])) for row in rows]
