"""Moving duplicates aside into a folder the user names, and back: never deleting anything.

Every move is written to a journal in that folder (`JOURNAL_NAME`, one JSON line per file, flushed
to disk before the file moves), so `undo_moves` can put each file back where it was, even after a
crash half-way. The index follows: moved files leave it at once (their vectors go when no other
file shows the same content), and files put back are indexed again.

The folder must lie outside the indexed folders: otherwise the next `modalgraph index` would index
the moved copies again, and they would be found as duplicates again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agent.core.errors import StorageError, ToolInputError
from agent.core.text import shown_path

if TYPE_CHECKING:
    from memory.duplicates import DuplicateGroup
    from memory.image_index import ImageIndex, ProgressCallback

JOURNAL_NAME = "modalgraph-moved.jsonl"


@dataclass
class MoveReport:
    moved: list[tuple[str, str]] = field(default_factory=list)  # (from, to)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    vectors_dropped: int = 0  # content no indexed file shows any more
    journal: str = ""


@dataclass
class UndoReport:
    restored: list[tuple[str, str]] = field(default_factory=list)  # (from the folder, back to)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): left in the folder
    reindexed: int = 0  # files indexed again


def move_duplicates(index: ImageIndex, groups: Sequence[DuplicateGroup], folder: Path) -> MoveReport:
    """Move every group's `others` into `folder` (created if needed), each under its path relative
    to its library root, keeping the best copy in place. A file that cannot move is reported and
    stays where it is."""
    folder = _target_folder(index, folder)
    roots = [Path(r) for r in index.manifest.roots()]
    report = MoveReport(journal=str(folder / JOURNAL_NAME))
    with index.lock(), open(folder / JOURNAL_NAME, "a", encoding="utf-8") as journal:
        for group in groups:
            for member in group.others:
                source = Path(member.path)
                target = _free_name(folder / _relative(source, roots))
                try:
                    _record(journal, {"from": str(source), "to": str(target), "hash": member.hash})
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _move(source, target)
                except OSError as exc:
                    report.failed.append((str(source), exc.strerror or str(exc)))
                    continue
                report.moved.append((str(source), str(target)))
        if report.moved:
            report.vectors_dropped = index.forget_files([source for source, _ in report.moved])
    return report


def undo_moves(index: ImageIndex, folder: Path, progress: ProgressCallback | None = None) -> UndoReport:
    """Put back every file the journal in `folder` lists, then index them again. A file whose
    place is taken again, or that cannot move, is reported and left, and the journal keeps its
    entry; one found neither in the folder nor at its old place is reported once and dropped."""
    folder = Path(folder).expanduser()
    journal_path = folder / JOURNAL_NAME
    if not journal_path.is_file():
        raise ToolInputError(f"nothing to undo: {shown_path(journal_path)} not found")
    entries = _read_journal(journal_path)
    report = UndoReport()
    left: list[dict[str, str]] = []
    with index.lock():
        for entry in reversed(entries):  # the last move first: a name reused later is freed first
            source, target = Path(entry["to"]), Path(entry["from"])
            if not source.exists():
                if not target.exists():  # a move that failed or never ran, or a file since deleted
                    report.failed.append((str(source), "not found here nor at its old place"))
                continue  # else already back: an undo interrupted before it rewrote the journal
            if target.exists():
                left.append(entry)
                report.failed.append((str(source), f"{shown_path(target)} exists again: left here"))
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _move(source, target)
            except OSError as exc:
                left.append(entry)
                report.failed.append((str(source), exc.strerror or str(exc)))
                continue
            report.restored.append((str(source), str(target)))
        _rewrite_journal(journal_path, list(reversed(left)))
    if report.restored:
        folders = sorted({str(Path(target).parent) for _, target in report.restored})
        result = index.index(folders, progress=progress)
        report.reindexed = result.embedded + result.reused
    return report


def _target_folder(index: ImageIndex, folder: Path) -> Path:
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ToolInputError(f"{shown_path(folder)} is a file: give a folder to move duplicates into")
    for root in index.manifest.roots():
        if folder.is_relative_to(root):
            raise ToolInputError(
                f"{shown_path(folder)} is inside the indexed folder {shown_path(root)}: the next "
                "index run would add the moved copies back; choose a folder outside the library"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {shown_path(folder)}: {exc.strerror or exc}") from None
    return folder


def _relative(source: Path, roots: Sequence[Path]) -> Path:
    """The file's place under the folder: its root's name, then its path inside the root."""
    for root in roots:
        if source.is_relative_to(root):
            return Path(root.name or "library") / source.relative_to(root)
    return Path(source.name)


def _free_name(target: Path) -> Path:
    """`target`, or `name (2).jpg` and so on when that name is taken."""
    candidate, n = target, 2
    while candidate.exists() or candidate.is_symlink():
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        n += 1
    return candidate


def _move(source: Path, target: Path) -> None:
    """Rename, or copy then delete across disks (shutil.move keeps the dates: the index and the
    ranking read the file's mtime)."""
    if target.exists():
        raise FileExistsError(17, "target exists", str(target))
    shutil.move(str(source), str(target))


def _record(journal: TextIO, entry: dict[str, str]) -> None:
    """One journal line, on disk before the move it describes."""
    journal.write(json.dumps(entry) + "\n")
    journal.flush()
    os.fsync(journal.fileno())


def _read_journal(path: Path) -> list[dict[str, str]]:
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise ToolInputError(
                f"{shown_path(path)} line {n} is not a journal entry: fix or remove it"
            ) from None
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("from"), str)
            or not isinstance(entry.get("to"), str)
        ):
            raise ToolInputError(f"{shown_path(path)} line {n} is not a journal entry: fix or remove it")
        entries.append(entry)
    return entries


def _rewrite_journal(path: Path, entries: list[dict[str, str]]) -> None:
    """The entries not undone, replacing the journal atomically; no journal when none is left."""
    if not entries:
        path.unlink(missing_ok=True)
        return
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    os.replace(temporary, path)
