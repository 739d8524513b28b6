"""The smallest whole GGUF file: a v3 header, no metadata, one 4-float tensor. Tests use it where
they need a file the catalogue accepts as a GGUF but no real model behind it."""

from __future__ import annotations

import struct


def tiny_gguf(trailer: bytes = b"") -> bytes:
    name = b"t"
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 0)
    tensor = (
        struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 4, 0, 0)
    )  # 1 dim of 4, F32, offset 0
    body = header + tensor
    body += b"\0" * (-len(body) % 32)  # the default alignment of the data section
    return body + struct.pack("<4f", 0, 0, 0, 0) + trailer
