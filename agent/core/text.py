"""Text for people to read: progress lines on stderr, byte counts, values cut to fit a line."""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from typing import Any


def say(message: str) -> None:
    """A progress line on stderr, so that stdout stays the command's answer."""
    print(message, file=sys.stderr, flush=True)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as one line of text any terminal or page can print. A file name that is not valid UTF-8
    reaches Python with its odd bytes as surrogates, which printing refuses; here they become `\\xff`
    escapes, so the user sees which bytes they are (`a\\xff.png`). Control characters (a newline, a
    terminal escape) are escaped too: a name must not split its line or recolour the terminal.
    Ordinary names are shown unchanged."""
    try:
        text = os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        text = os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)


def human_bytes(n: float) -> str:
    """Steps of 1024, labelled as `ls -h` and most file browsers do: 512 -> "512 B", 1536 -> "1.5 KB";
    GB is the largest."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def shorten(value: Any, limit: int, marker: str = "...", one_line: bool = True) -> str:
    """`value` (a string, else its JSON) in at most `limit` characters, ending in `marker` when cut;
    `one_line` first turns every run of whitespace, line breaks included, into one space."""
    text = value if isinstance(value, str) else json.dumps(value)
    if one_line:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - len(marker)] + marker
