"""The Library tab's Duplicates view: the groups `memory.duplicates` finds, as rows of thumbnails.

Read-only: the page shows which copy would be kept and how alike the others are, and leaves moving
them to the CLI (`modalgraph library duplicates --move-to DIR`), which keeps a journal to undo it.
Each tile is a `GridPhoto`, like the grid's, so a click opens the same photo view; thumbnails come
from the thumbnail cache, never the originals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.text import shown_path
from agent.web.photo_grid import GridPhoto, _photos
from memory.duplicates import DuplicateGroup, DuplicateMember, DuplicateReport, find_duplicates
from memory.image_index import SearchHit

if TYPE_CHECKING:
    from agent.context import AppContext
    from agent.web.serving import ServedFiles

# Groups shown at once: each is a row of thumbnails made on the spot, and a library with thousands
# of groups is better read (and acted on) with the CLI.
MAX_GROUPS = 60
MOVE_HINT = (
    "Nothing is moved or deleted here. To set the copies aside (all but the kept one, undoable), "
    "run `modalgraph library duplicates --move-to FOLDER`."
)

Progress = Callable[[float, str], None]  # (fraction done, what is being done)


@dataclass  # not frozen: Gradio hashes a State's value to see it changed, and tiles hold dicts
class DuplicateRow:
    """One group on the page: its heading, and its tiles, the kept copy first."""

    heading: str
    tiles: list[GridPhoto]


@dataclass(frozen=True)
class DuplicatesView:
    note: str
    rows: list[DuplicateRow]


def member_caption(member: DuplicateMember, kept: bool) -> str:
    """ "keep · Holidays/IMG_1.jpg · 4032 × 3024 · 2019-06-14" for the kept copy; the others add how far
    their picture is from it: "… · 0 bits" (the same picture) to "… · 12 bits"."""
    parts = ["keep"] if kept else []
    path = Path(member.path)
    # With its folder: exact copies often share a name, and differ only in where they are.
    parts.append(shown_path(f"{path.parent.name}/{path.name}" if path.parent.name else path.name))
    parts.append(f"{member.width} × {member.height}" if member.width and member.height else "size unknown")
    parts.append(member.taken[:10] if member.taken else "no date")
    if not kept:
        parts.append(f"{member.distance} bit{'s' if member.distance != 1 else ''}")
    return " · ".join(parts)


def group_heading(number: int, group: DuplicateGroup) -> str:
    what = "exact copies" if group.kind == "exact" else "near-duplicates"
    count = len(group.members)
    return (
        f"**Group {number}** · {what} · {count} files · "
        f"keep: {shown_path(Path(group.keep.path).name)} (largest, earliest)"
    )


def report_note(report: DuplicateReport, shown: int) -> str:
    """What was found, in a sentence or two, and the line saying how to act on it."""
    groups = len(report.groups)
    if not groups:
        found = f"No duplicates among {report.photos} photos."
    else:
        copies = sum(len(g.others) for g in report.groups)
        found = (
            f"{groups} group{'s' if groups != 1 else ''} of duplicates among {report.photos} photos: "
            f"{copies} cop{'ies' if copies != 1 else 'y'} besides the kept ones"
            f" (near-duplicates differ in at most {report.threshold} of 64 hash bits)."
        )
        if shown < groups:
            found += f" The {shown} largest groups are shown; `modalgraph library duplicates` lists all."
    if report.not_compared:
        found += f" {len(report.not_compared)} photo(s) could not be compared (unreadable now)."
    return f"{found}\n\n{MOVE_HINT}" if groups else found


def _hit(member: DuplicateMember, record: dict[str, Any]) -> SearchHit:
    return SearchHit(
        member.path,
        0.0,  # no score: captions show one only for a ranking by likeness
        member.size,
        member.hash,
        member.width,
        member.height,
        meta=record,
    )


def group_rows(
    groups: list[DuplicateGroup], records: dict[str, dict[str, Any]], files: ServedFiles
) -> list[DuplicateRow]:
    """Rows of tiles for the groups; a member the page may not show is left out of its row, and a
    row left with one tile (nothing to compare it with) is dropped."""
    rows = []
    for number, group in enumerate(groups, 1):
        members = group.members
        photos, _ = _photos([_hit(m, records.get(m.hash, {})) for m in members], files)
        by_path = {m.path: m for m in members}
        tiles = [
            GridPhoto(
                p.path,
                p.hash,
                p.thumb,
                member_caption(by_path[p.path], p.path == group.keep.path),
                p.details,
                p.name,
            )
            for p in photos
        ]
        if len(tiles) > 1:
            rows.append(DuplicateRow(group_heading(number, group), tiles))
    return rows


def find_groups(app: AppContext, files: ServedFiles, progress: Progress) -> DuplicatesView:
    """Run the finder on the library and lay its largest groups out for the page."""
    index = app.image_index

    def on_progress(phase: str, done: int, total: int) -> None:
        label = "hashing photos indexed before" if phase == "hashing" else "comparing photos"
        progress(done / total if total else 0.0, label)

    files.refresh()  # a folder indexed from the CLI meanwhile: its photos may be shown
    report = find_duplicates(index, progress=on_progress)
    shown = report.groups[:MAX_GROUPS]
    hashes = sorted({m.hash for group in shown for m in group.members})
    records = index.manifest.photo_records_of(index.embedding_model().collection_name, hashes)
    return DuplicatesView(report_note(report, len(shown)), group_rows(shown, records, files))
