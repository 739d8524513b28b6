"""A 64-bit perceptual hash of a photo (pHash): near-identical pictures get hashes a few bits apart.

The photo is shrunk to 32x32 grey, its 2-D DCT taken, and each of the 8x8 lowest frequencies gives
one bit: above the median of the 64, or not. Resizing, re-encoding and a brightness change barely
move these coefficients; another photo of the same scene (another framing, another moment) moves
many. Written here with numpy rather than taken from the `imagehash` package: the hashes are stored
in the index, so their exact definition must not change with a dependency's upgrade, and this is
all of it (`imagehash` would also bring PyWavelets and SciPy for hashes we do not use).

Hashes travel as 16 hex digits (SQLite and JSON hold them exactly; a 64-bit int may not fit).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL import Image

HASH_BITS = 64
_SIDE = 32  # the shrunk photo's side
_LOW = 8  # the low-frequency block's side: 8x8 = 64 bits


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `m @ x @ m.T` is the 2-D DCT of an n x n block."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


def perceptual_hash(image: Image.Image) -> str:
    """The photo's pHash as 16 hex digits. `image` is upright (the hash compares what a viewer sees)."""
    from PIL import Image

    grey = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    dct = _dct_matrix(_SIDE)
    low = (dct @ pixels @ dct.T)[:_LOW, :_LOW].ravel()
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hash_array(hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes as a uint64 array, for `distances`."""
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def distances(one: np.uint64 | np.ndarray, many: np.ndarray) -> np.ndarray:
    """Bits that differ between `one` (or each of a column of hashes) and each of `many`."""
    xor = np.bitwise_xor(one, many)
    if hasattr(np, "bitwise_count"):  # numpy 2.0 and later; uint8 counts keep big blocks small
        return np.bitwise_count(xor)
    as_bytes = np.ascontiguousarray(xor).view(np.uint8).reshape((*xor.shape, 8))
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1, dtype=np.uint8)


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
