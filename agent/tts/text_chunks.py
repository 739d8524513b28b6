"""Cutting long text into pieces a speech engine takes in one call, at sentence boundaries."""

from __future__ import annotations

import re

# A sentence ends at . ! ? ; or a line break, followed by space: where a pause sounds natural.
_SENTENCE_END = re.compile(r"(?<=[.!?;:…])\s+|\n\s*")
DEFAULT_CHUNK_CHARS = 1000


def has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _split_long(sentence: str, limit: int) -> list[str]:
    """A "sentence" longer than `limit` (a list, a URL, text without punctuation): cut at spaces,
    and a single word longer than `limit` is cut where it must be."""
    pieces: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def speech_chunks(text: str, limit: int = DEFAULT_CHUNK_CHARS) -> list[str]:
    """Whole sentences packed greedily into chunks of at most `limit` characters, in order.

    Chunks without a letter or digit (stray punctuation) are dropped: engines either say nothing
    or read the symbols out, and edge-tts fails on them.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    current = ""
    for raw in _SENTENCE_END.split(text):
        sentence = " ".join(raw.split())
        if not sentence:
            continue
        for piece in _split_long(sentence, limit) if len(sentence) > limit else [sentence]:
            if current and len(current) + 1 + len(piece) > limit:
                chunks.append(current)
                current = piece
            else:
                current = f"{current} {piece}" if current else piece
    if current:
        chunks.append(current)
    return [chunk for chunk in chunks if has_words(chunk)]
