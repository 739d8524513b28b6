"""Cutting long text into pieces a speech engine takes in one call, at sentence boundaries."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# A sentence ends at . ! ? ; or a line break, followed by space: where a pause sounds natural.
_SENTENCE_END = re.compile(r"(?<=[.!?;:…])\s+|\n\s*")
DEFAULT_CHUNK_CHARS = 1000


def has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _pack(pieces: Iterable[str], limit: int) -> list[str]:
    """The pieces, in order, joined by spaces into as few strings of at most `limit` characters as
    greedy packing gives; a piece is never cut here."""
    packed: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > limit:
            packed.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    if current:
        packed.append(current)
    return packed


def _split_long(sentence: str, limit: int) -> list[str]:
    """A "sentence" longer than `limit` (a list, a URL, text without punctuation): cut at spaces,
    and a single word longer than `limit` is cut where it must be."""

    def words() -> Iterator[str]:
        for word in sentence.split():
            while len(word) > limit:
                yield word[:limit]
                word = word[limit:]
            yield word

    return _pack(words(), limit)


def speech_chunks(text: str, limit: int = DEFAULT_CHUNK_CHARS) -> list[str]:
    """Whole sentences packed greedily into chunks of at most `limit` characters, in order.

    Chunks without a letter or digit (stray punctuation) are dropped: engines either say nothing
    or read the symbols out, and edge-tts fails on them.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    for raw in _SENTENCE_END.split(text):
        sentence = " ".join(raw.split())
        if sentence:
            pieces.extend(_split_long(sentence, limit) if len(sentence) > limit else [sentence])
    return [chunk for chunk in _pack(pieces, limit) if has_words(chunk)]
