"""File paths as SQLite and Chroma store them, losslessly, whatever bytes a file name holds.

On Linux a file name is bytes; one that is not valid UTF-8 (a camera's or an old system's encoding,
`a\\xff.png`) reaches Python as a str with surrogates (PEP 383), which SQLite text and Chroma
metadata refuse. Valid UTF-8 paths, the usual case and every path written before this module
existed, are stored as they always were: text. Only the others take a different form: the exact
bytes as a BLOB in SQLite, and base64 beside an escaped, readable copy in Chroma metadata. Decoding
gives back the same str, so `Path(decoded)` opens the same file. No migration is needed: old rows
are text and read back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from agent.core.text import shown_path

# The Chroma metadata key holding a non-UTF-8 path's bytes; "path" then holds the escaped form.
PATH_BYTES_KEY = "path_b64"


def is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_to_db(path: str) -> str | bytes:
    """What SQLite stores for `path`: the text itself when it is valid UTF-8, else its bytes (a BLOB,
    which never equals any text, so the two forms cannot collide)."""
    return path if is_utf8(path) else os.fsencode(path)


def path_from_db(value: str | bytes) -> str:
    """The path `path_to_db` stored."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def path_metadata(path: str) -> dict[str, str]:
    """Chroma metadata naming `path`: {"path": text}, plus the exact bytes when the text is escaped."""
    if is_utf8(path):
        return {"path": path}
    raw = os.fsencode(path)
    return {"path": shown_path(path), PATH_BYTES_KEY: base64.b64encode(raw).decode("ascii")}


def path_from_metadata(metadata: Mapping[str, object]) -> str | None:
    """The exact path a record's metadata names, or None when it names none usable."""
    encoded = metadata.get(PATH_BYTES_KEY)
    if isinstance(encoded, str):
        try:
            return os.fsdecode(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            return None
    recorded = metadata.get("path")
    return recorded if isinstance(recorded, str) else None
