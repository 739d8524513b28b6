"""A structural check of a GGUF file, cheap enough for every start.

The magic bytes alone let through a file cut short by a failed copy or a garbage body behind a
good header: llama.cpp then fails on the first turn (or `serve` starts and its page breaks), and
`models list` calls the file present. Walking the header, the metadata and the tensor table, then
checking that every tensor's data lies inside the file, finds those at start-up, without reading
the weights.
"""

from __future__ import annotations

import struct
from pathlib import Path

from agent.models.sources import GGUF_MAGIC

_MAX_COUNT = 10_000_000  # more tensors or metadata keys than any real model: the header is garbage
# ggml type id -> (elements per block, bytes per block), from ggml.h's type traits.
_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8),
    28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
}  # fmt: skip
# Metadata value type -> struct format of a scalar; 8 is a string, 9 an array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class _ShortRead(ValueError):
    """The bytes read so far end inside the header: read more of the file, or it is truncated."""

    def __init__(self) -> None:
        super().__init__("ends inside its header")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int | float | bool:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise _ShortRead
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value

    def count(self) -> int:
        value = int(self.take("Q"))
        if value > _MAX_COUNT:
            raise ValueError(f"implausible count {value} in its header")
        return value

    def string(self) -> bytes:
        length = int(self.take("Q"))
        if self.pos + length > len(self.data):
            raise _ShortRead
        self.pos += length
        return self.data[self.pos - length : self.pos]

    def value(self, kind: int) -> int | float | bool | bytes | None:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, length = int(self.take("I")), self.count()
            if item_kind in _SCALARS:  # skipped in one step: token scores are 150k floats
                self.pos += struct.calcsize("<" + _SCALARS[item_kind]) * length
                if self.pos > len(self.data):
                    raise _ShortRead
            elif item_kind == _STRING:  # the vocabulary and merges: 300k strings, walked tightly
                pos, data, unpack = self.pos, self.data, _U64.unpack_from
                try:
                    for _ in range(length):
                        pos += 8 + unpack(data, pos)[0]
                except struct.error:
                    raise _ShortRead from None
                if pos > len(data):
                    raise _ShortRead
                self.pos = pos
            else:
                for _ in range(length):
                    self.value(item_kind)
            return None
        raise ValueError(f"unknown metadata type {kind}")


def gguf_problem(path: Path, header_cap: int = 256 * 2**20) -> str | None:
    """What is wrong with `path` as a GGUF file ("truncated (…)", "damaged (…)"), or None when its
    structure holds together.

    Reads the metadata and tensor table (a vocabulary of 150k tokens is a few MB), growing the read
    until they fit, and never the weights themselves.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            data = handle.read(min(size, 4 * 2**20))
            while True:
                try:
                    return _check(_Reader(data), size)
                except _ShortRead:
                    if len(data) >= min(size, header_cap):
                        return (
                            "damaged: it ends inside its header"
                            if len(data) >= size
                            else (f"damaged: its header is larger than {header_cap // 2**20} MB")
                        )
                    data += handle.read(
                        min(size, header_cap) - len(data) if len(data) * 2 > header_cap else len(data)
                    )
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"


def _check(reader: _Reader, size: int) -> str | None:
    try:
        if reader.data[:4] != GGUF_MAGIC:
            return "not a GGUF file (bad magic)"
        reader.pos = 4
        version = int(reader.take("I"))
        if version not in (2, 3):
            return f"of an unsupported GGUF version ({version})"
        n_tensors, n_kv = reader.count(), reader.count()
        alignment = 32
        for _ in range(n_kv):
            key = reader.string()
            value = reader.value(int(reader.take("I")))
            if key == b"general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
        end = 0
        for _ in range(n_tensors):
            reader.string()
            dims = [int(reader.take("Q")) for _ in range(int(reader.take("I")))]
            kind, offset = int(reader.take("I")), int(reader.take("Q"))
            block, nbytes = _TYPE_SIZES.get(kind, (1, 0))
            elements = 1
            for dim in dims:
                elements *= dim
            end = max(end, offset + elements // block * nbytes)
        data_start = -(-reader.pos // alignment) * alignment
    except _ShortRead:
        raise
    except ValueError as exc:
        return f"damaged (it {exc})"
    if n_tensors == 0:
        return "damaged (it holds no tensors)"
    if data_start + end > size:
        return f"truncated (its tensors need {data_start + end} bytes, the file has {size})"
    return None
