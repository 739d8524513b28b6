"""Duplicate photos in the library: exact copies, and near-duplicates (bursts, resized, re-encoded or
lightly edited copies), as typed groups for the CLI and the web page.

Exact copies are files with one content hash (the manifest maps every path to its hash). Near
duplicates need two tests to agree, so that two different photos of one beach stay apart:

- the perceptual hashes (`memory.perceptual_hash`, computed at index time) differ in at most
  `threshold` of 64 bits: this is what tells a copy from another photo of the same scene;
- the CLIP vectors' cosine is at least `min_cosine`: a gate against the rare hash collision of two
  unrelated pictures (a dark sky and a dark room), since CLIP sees content, not a pixel layout.

Groups are the connected pairs (a burst A~B~C is one group even when A and C differ more). Nothing
here deletes a file; moving copies aside and back is `memory.duplicate_moves`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.core.errors import ToolInputError
from memory.image_files import ImageDecodeError, decode_image
from memory.index_limits import IndexLimits
from memory.library_manifest import FileRow
from memory.perceptual_hash import HASH_BITS, distance, distances, hash_array, perceptual_hash

if TYPE_CHECKING:
    import numpy as np

    from memory.image_index import ImageIndex

# Defaults from `bench/duplicates.py` on sample photos and their copies: resized, re-encoded and
# re-toned copies and burst frames are 0-12 bits from their original, 5% crops up to 18; different
# photos, views of one scene shifted by a third of the frame included, 20 or more (a stereo pair,
# one scene from two points centimetres apart, is 6: a burst, to the hash). 12 keeps a margin on both
# sides. The cosine gate is loose on purpose: it only has to keep unrelated pictures apart.
DEFAULT_THRESHOLD = 12
DEFAULT_MIN_COSINE = 0.85
# Photos compared per step of the all-pairs hash comparison: bounds its memory (rows x photos).
_CHUNK = 256
# Vectors read from the store per request.
_VECTOR_BATCH = 500

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class DuplicateMember:
    """One file of a group. `distance` (bits) and `cosine` compare its content with the kept one's
    (0 and 1.0 for the kept file and its exact copies; cosine None when a vector is missing)."""

    path: str
    hash: str
    size: int
    width: int | None
    height: int | None
    taken: str | None
    distance: int
    cosine: float | None


@dataclass(frozen=True)
class DuplicateGroup:
    """Files showing one picture. `keep` is the best copy: the largest resolution, then the earliest
    date, then the oldest file; `others` are the rest, what `--move-to` would move."""

    kind: Literal["exact", "near"]
    keep: DuplicateMember
    others: tuple[DuplicateMember, ...]

    @property
    def members(self) -> tuple[DuplicateMember, ...]:
        return (self.keep, *self.others)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "keep": _member_dict(self.keep),
            "others": [_member_dict(m) for m in self.others],
        }


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]
    photos: int  # distinct contents compared
    threshold: int
    min_cosine: float
    # Content that could not be compared (no perceptual hash and its file cannot be decoded now).
    not_compared: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    hashes_computed: int = 0  # perceptual hashes computed now, for photos indexed before they existed

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.as_dict() for g in self.groups],
            "photos": self.photos,
            "threshold": self.threshold,
            "min_cosine": self.min_cosine,
            "not_compared": [{"path": p, "reason": r} for p, r in self.not_compared],
            "hashes_computed": self.hashes_computed,
        }


def _member_dict(member: DuplicateMember) -> dict[str, Any]:
    return {
        "path": member.path,
        "size": member.size,
        "width": member.width,
        "height": member.height,
        "taken": member.taken,
        "distance": member.distance,
        "cosine": None if member.cosine is None else round(member.cosine, 4),
    }


def find_duplicates(
    index: ImageIndex,
    threshold: int = DEFAULT_THRESHOLD,
    min_cosine: float = DEFAULT_MIN_COSINE,
    progress: ProgressCallback | None = None,
) -> DuplicateReport:
    """Every group of duplicates in the configured model's index, largest group first.

    Photos indexed before perceptual hashes were stored get theirs now (decoded once, then stored).
    """
    if not 0 <= threshold < HASH_BITS:
        raise ToolInputError(f"the threshold is a number of differing bits, 0 to {HASH_BITS - 1}")
    notify = progress or (lambda _phase, _done, _total: None)
    name = index.embedding_model().collection_name
    manifest = index.manifest
    files = manifest.all_files(name)
    if not files:
        raise ToolInputError(
            "the image library is empty: index your photos first with `modalgraph index FOLDER`"
        )
    by_hash: dict[str, list[FileRow]] = {}
    for row in files:
        by_hash.setdefault(row.hash, []).append(row)
    phashes = manifest.perceptual_hashes(name)
    report = DuplicateReport([], len(by_hash), threshold, min_cosine)
    _fill_missing(index, name, by_hash, phashes, report, notify)

    hashed = sorted(h for h in by_hash if h in phashes)
    pairs = _close_pairs(hashed, [phashes[h] for h in hashed], threshold, notify)
    cosines = _cosines(index, pairs)
    linked = [(a, b) for a, b in pairs if cosines.get((a, b), -1.0) >= min_cosine]
    components = _components(linked, [h for h, rows in by_hash.items() if len(rows) > 1])
    records = manifest.photo_records(name)
    for component in components:
        report.groups.append(_group(component, by_hash, phashes, records, index, cosines))
    report.groups.sort(key=lambda g: (-len(g.members), g.keep.path))
    return report


def _fill_missing(
    index: ImageIndex,
    name: str,
    by_hash: dict[str, list[FileRow]],
    phashes: dict[str, str],
    report: DuplicateReport,
    notify: ProgressCallback,
) -> None:
    """Perceptual hashes for content indexed before they were stored: decoded from its first file,
    then stored, so the next run finds them."""
    missing = sorted(h for h in by_hash if h not in phashes)
    if not missing:
        return
    limits = IndexLimits.from_settings(index.settings)
    computed: dict[str, str] = {}
    notify("hashing", 0, len(missing))
    for n, digest in enumerate(missing, 1):
        row = by_hash[digest][0]
        try:
            # 64 pixels a side is plenty for a 32x32 hash, and lets a JPEG decode at 1/8 scale.
            decoded = decode_image(Path(row.path), 64, limits.max_pixels)
            computed[digest] = perceptual_hash(decoded.image)
        except ImageDecodeError as exc:
            report.not_compared.append((row.path, str(exc)))
        if len(computed) >= 256 or n == len(missing):
            index.manifest.save_perceptual(name, computed)
            phashes.update(computed)
            report.hashes_computed += len(computed)
            computed = {}
        notify("hashing", n, len(missing))


def _close_pairs(
    hashes: list[str], values: list[str], threshold: int, notify: ProgressCallback
) -> list[tuple[str, str]]:
    """(a, b) pairs, a before b, whose perceptual hashes differ in at most `threshold` bits. All
    pairs are compared (a chunk of rows against the rows after it, as uint64 XOR and popcount):
    `bench/duplicates.py` times it at library scale."""
    import numpy as np

    array = hash_array(values)
    found: list[tuple[str, str]] = []
    total = len(hashes)
    for start in range(0, total, _CHUNK):
        rows = array[start : start + _CHUNK]
        near = distances(rows[:, None], array[None, start:]) <= threshold
        for i, j in zip(*np.nonzero(near), strict=True):
            a, b = start + int(i), start + int(j)
            if a < b:
                found.append((hashes[a], hashes[b]))
        notify("comparing", min(start + _CHUNK, total), total)
    return found


def _cosines(index: ImageIndex, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The CLIP cosine of each pair (vectors are unit length); a pair whose vector is missing from
    the store is left out, so it is not linked."""
    wanted = sorted({h for pair in pairs for h in pair})
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), _VECTOR_BATCH):
        vectors.update(index.vectors(wanted[start : start + _VECTOR_BATCH]))
    return {(a, b): float(vectors[a] @ vectors[b]) for a, b in pairs if a in vectors and b in vectors}


def _components(pairs: Sequence[tuple[str, str]], singles: Sequence[str]) -> list[list[str]]:
    """Connected hashes (union-find), each group's hashes sorted; `singles` are groups of their own
    unless linked (content with several files is a group even without a near twin)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    for single in singles:
        root(single)
    groups: dict[str, list[str]] = {}
    for member in parent:
        groups.setdefault(root(member), []).append(member)
    return [sorted(g) for g in groups.values()]


def _rank(row: FileRow, record: dict[str, Any]) -> tuple[int, str, int, str]:
    """Sort key, best first: most pixels, earliest date (undated last), oldest file, path."""
    width, height = record.get("width") or 0, record.get("height") or 0
    taken = record.get("taken") if isinstance(record.get("taken"), str) else None
    return (-(int(width) * int(height)), taken or "\uffff", row.mtime_ns, row.path)


def _group(
    component: list[str],
    by_hash: dict[str, list[FileRow]],
    phashes: dict[str, str],
    records: dict[str, dict[str, Any]],
    index: ImageIndex,
    cosines: dict[tuple[str, str], float],
) -> DuplicateGroup:
    rows = sorted(
        (row for digest in component for row in by_hash[digest]),
        key=lambda row: _rank(row, records.get(row.hash, {})),
    )
    best = rows[0]
    missing = [
        (min(best.hash, r.hash), max(best.hash, r.hash))
        for r in rows
        if r.hash != best.hash and (min(best.hash, r.hash), max(best.hash, r.hash)) not in cosines
    ]
    if missing:  # members linked through a third photo: their likeness to the kept one is shown too
        cosines = {**cosines, **_cosines(index, sorted(set(missing)))}

    def member(row: FileRow) -> DuplicateMember:
        record = records.get(row.hash, {})
        same = row.hash == best.hash
        pair = (min(best.hash, row.hash), max(best.hash, row.hash))
        bits = 0 if same else distance(phashes[best.hash], phashes[row.hash])
        return DuplicateMember(
            path=row.path,
            hash=row.hash,
            size=row.size,
            width=_int(record.get("width")),
            height=_int(record.get("height")),
            taken=record.get("taken") if isinstance(record.get("taken"), str) else None,
            distance=bits,
            cosine=1.0 if same else cosines.get(pair),
        )

    kind: Literal["exact", "near"] = "exact" if len(component) == 1 else "near"
    return DuplicateGroup(kind, member(best), tuple(member(r) for r in rows[1:]))


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None
