"""The image library's manifest (SQLite): which files were indexed, under which content hash.

Chroma holds one record per content hash and model; this table maps every path to its hash, so
identical files are embedded once and all their paths are kept. It is also what makes indexing
resumable and crash-safe, through one invariant kept by `ImageIndex`:

  every hash in a Chroma collection is referenced by a row of `files`, or listed in `pending`.

A batch is committed as: add its new hashes to `pending` -> upsert the vectors into Chroma -> in
one transaction, write the batch's `files` rows and clear those hashes from `pending`. A SIGKILL
anywhere leaves either a finished batch or vectors whose hashes are in `pending`: the next run
reuses them (no re-embedding) and deletes any that no file refers to any more.

Paths are stored through `memory.stored_paths`: text when valid UTF-8, exact bytes otherwise. Every
method takes and returns paths as str; the conversion happens here, at the edge of SQLite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.disk_full import disk_full_error, is_disk_full
from agent.core.errors import StorageError
from memory.record_sql import SqlCondition
from memory.stored_paths import is_utf8, path_from_db, path_to_db

# 2: the `photos` table (when, where, with what). A version-1 manifest gains it on open, empty, and
# the next `modalgraph index` fills it without embedding anything again.
# 3: the `perceptual` table (each content's perceptual hash, for `library duplicates`). An older
# manifest gains it empty; `memory.duplicates` computes the missing hashes on first use.
SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS roots (
    path TEXT PRIMARY KEY,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    root TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    indexed_at REAL NOT NULL,
    PRIMARY KEY (collection, path)
);
CREATE INDEX IF NOT EXISTS files_by_hash ON files (collection, hash);
CREATE INDEX IF NOT EXISTS files_by_root ON files (collection, root);
CREATE TABLE IF NOT EXISTS pending (
    collection TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (collection, hash)
);
CREATE TABLE IF NOT EXISTS skipped (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    root TEXT NOT NULL,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (collection, path)
);
CREATE TABLE IF NOT EXISTS photos (
    collection TEXT NOT NULL,
    hash TEXT NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL,
    problems TEXT NOT NULL,
    PRIMARY KEY (collection, hash)
);
-- The library newest first (`newest_photos`): the date taken, "" without one, then the hash. An
-- index on the record itself, so it can never disagree with it; an older manifest gains it on
-- open, without a schema change.
CREATE INDEX IF NOT EXISTS photos_by_taken
    ON photos (collection, coalesce(json_extract(record, '$.taken'), ''), hash);
CREATE TABLE IF NOT EXISTS perceptual (
    collection TEXT NOT NULL,
    hash TEXT NOT NULL,
    phash TEXT NOT NULL,
    PRIMARY KEY (collection, hash)
);
CREATE TABLE IF NOT EXISTS root_runs (
    collection TEXT NOT NULL,
    root TEXT NOT NULL,
    model_id TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (collection, root)
);
"""


@dataclass(frozen=True, slots=True)  # slots: an index run's check holds one per photo of the library
class FileRow:
    path: str
    root: str
    hash: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class PhotoRow:
    """A content hash's photo metadata (as its Chroma record holds it) and the fields left empty,
    with why. `version` is `photo_metadata.META_VERSION` when it was read."""

    hash: str
    version: int
    record: dict[str, Any]
    problems: list[str]
    phash: str | None = None  # the perceptual hash (`memory.perceptual_hash`), when computed


@dataclass(frozen=True)
class SkippedRow:
    """A file that could not be indexed (undecodable, over a limit, a FIFO, a link out of the
    library), remembered with its reason: listed by `--status`, and not decoded again unchanged."""

    path: str
    root: str
    reason: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class RootStatus:
    root: str
    files: int
    unique: int
    skipped: int
    last_indexed: float | None
    model_id: str | None


class LibraryManifest:
    """One SQLite file, opened per use; WAL mode so searches can read while an index run writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed batch survives power loss as well as a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"the library manifest {path} was written by a newer modalgraph; upgrade modalgraph"
                )
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            if is_disk_full(exc, path.parent):
                raise disk_full_error(path.parent) from None
            raise StorageError(f"cannot open the library manifest {path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._abandon()
            if is_disk_full(exc, self.path.parent):
                raise disk_full_error(self.path.parent) from None
            raise StorageError(f"cannot write the library manifest {self.path}: {exc}") from None

    def _abandon(self) -> None:
        """Roll back what a failed COMMIT left open: SQLite keeps some failed transactions active
        (and rolls others back itself), and the next BEGIN must not find one."""
        if self._conn.in_transaction:
            # An error here means SQLite rolled back already: nothing of the batch was written.
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    # ----------------------------------------------------------------- roots

    def roots(self) -> list[str]:
        return sorted(path_from_db(r[0]) for r in self._conn.execute("SELECT path FROM roots"))

    def add_root(self, root: str, absorbed: Sequence[str] = ()) -> None:
        """Register `root`; folders inside it that were roots themselves become part of it."""
        stored = path_to_db(root)
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO roots (path, added_at) VALUES (?, ?)", (stored, time.time()))
            for inner in map(path_to_db, absorbed):
                conn.execute("DELETE FROM roots WHERE path = ?", (inner,))
                conn.execute("UPDATE files SET root = ? WHERE root = ?", (stored, inner))
                conn.execute("UPDATE skipped SET root = ? WHERE root = ?", (stored, inner))
                conn.execute("DELETE FROM root_runs WHERE root = ?", (inner,))

    def remove_root(self, root: str) -> list[tuple[str, str]]:
        """Forget a root in every collection; returns the (collection, hash) pairs it held, now pending."""
        stored = path_to_db(root)
        with self.transaction() as conn:
            pairs = conn.execute(
                "SELECT DISTINCT collection, hash FROM files WHERE root = ?", (stored,)
            ).fetchall()
            conn.executemany("INSERT OR IGNORE INTO pending (collection, hash) VALUES (?, ?)", pairs)
            for table in ("files", "skipped", "root_runs"):
                conn.execute(f"DELETE FROM {table} WHERE root = ?", (stored,))
            conn.execute("DELETE FROM roots WHERE path = ?", (stored,))
        return [(c, h) for c, h in pairs]

    # ----------------------------------------------------------------- files

    def files_under(self, collection: str, root: str) -> dict[str, FileRow]:
        rows = self._conn.execute(
            "SELECT path, hash, size, mtime_ns FROM files WHERE collection = ? AND root = ?",
            (collection, path_to_db(root)),
        )
        found = {}
        for stored, digest, size, mtime_ns in rows:
            path = path_from_db(stored)
            found[path] = FileRow(path, root, digest, size, mtime_ns)
        return found

    # An index run's check reads the manifest one folder at a time, so that it holds one folder's
    # rows, not the library's: the primary key (collection, path) keeps a folder's files together.

    def rows_in_folder(
        self, collection: str, root: str, folder: str, *, below: bool = False
    ) -> tuple[dict[str, FileRow], dict[str, SkippedRow]]:
        """The file and skipped rows of what lies directly in `folder`; everywhere under it with
        `below`."""
        prefix = folder.rstrip(os.sep) + os.sep
        past = chr(ord(os.sep) + 1)  # the first string past every path that starts with `prefix`
        raw = os.fsencode(prefix)
        # Text paths and the BLOBs of undecodable ones (`stored_paths`) sort apart: one range each.
        # Only the text range is cut to direct children in SQL; BLOB paths are rare and cut below.
        files: dict[str, FileRow] = {}
        skipped: dict[str, SkippedRow] = {}
        if is_utf8(prefix):  # else every path under it is undecodable too, so a BLOB
            files, skipped = self._rows(
                collection,
                root,
                "path >= ? AND path < ?" + ("" if below else " AND instr(substr(path, ?), ?) = 0"),
                (prefix, prefix[:-1] + past, *(() if below else (len(prefix) + 1, os.sep))),
            )
        blob_files, blob_skipped = self._rows(
            collection, root, "path >= ? AND path < ?", (raw, raw[:-1] + os.fsencode(past))
        )
        for found, more in ((files, blob_files), (skipped, blob_skipped)):
            found.update((p, row) for p, row in more.items() if below or os.sep not in p[len(prefix) :])
        return files, skipped

    def rows_at(
        self, collection: str, root: str, paths: Sequence[str]
    ) -> tuple[dict[str, FileRow], dict[str, SkippedRow]]:
        """The file and skipped rows of exactly these paths (those that have one)."""
        files: dict[str, FileRow] = {}
        skipped: dict[str, SkippedRow] = {}
        stored = [path_to_db(p) for p in paths]
        for start in range(0, len(stored), 500):  # under SQLite's limit on bound parameters
            chunk = stored[start : start + 500]
            more_files, more_skipped = self._rows(
                collection, root, f"path IN ({','.join('?' * len(chunk))})", chunk
            )
            files.update(more_files)
            skipped.update(more_skipped)
        return files, skipped

    def _rows(
        self, collection: str, root: str, where: str, args: Sequence[Any]
    ) -> tuple[dict[str, FileRow], dict[str, SkippedRow]]:
        files: dict[str, FileRow] = {}
        skipped: dict[str, SkippedRow] = {}
        scope = (collection, path_to_db(root), *args)
        for stored, digest, size, mtime_ns in self._conn.execute(
            f"SELECT path, hash, size, mtime_ns FROM files WHERE collection = ? AND root = ? AND {where}",
            scope,
        ):
            path = path_from_db(stored)
            files[path] = FileRow(path, root, digest, size, mtime_ns)
        for stored, reason, size, mtime_ns in self._conn.execute(
            f"SELECT path, reason, size, mtime_ns FROM skipped WHERE collection = ? AND root = ? AND {where}",
            scope,
        ):
            path = path_from_db(stored)
            skipped[path] = SkippedRow(path, root, reason, size, mtime_ns)
        return files, skipped

    def paths_under(self, collection: str, root: str) -> Iterator[tuple[str, bool]]:
        """(path, whether it is an indexed file rather than a skipped one) for every row of `root`,
        read as they are used: the check's last pass, for folders that are gone."""
        for table in ("files", "skipped"):
            rows = self._conn.execute(
                f"SELECT path FROM {table} WHERE collection = ? AND root = ?", (collection, path_to_db(root))
            )
            for (stored,) in rows:
                yield path_from_db(stored), table == "files"

    def has_files(self, collection: str, root: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM files WHERE collection = ? AND root = ? LIMIT 1", (collection, path_to_db(root))
        ).fetchone()
        return row is not None

    def has_collection(self, collection: str) -> bool:
        """Whether any file is indexed in `collection` (one seek in the primary key)."""
        row = self._conn.execute("SELECT 1 FROM files WHERE collection = ? LIMIT 1", (collection,)).fetchone()
        return row is not None

    def known_hashes(self, collection: str) -> set[str]:
        """Hashes whose vectors are in Chroma: referenced by a file, or pending (upserted, maybe)."""
        rows = self._conn.execute(
            "SELECT hash FROM files WHERE collection = ? UNION SELECT hash FROM pending WHERE collection = ?",
            (collection, collection),
        )
        return {row[0] for row in rows}

    def paths_for(self, collection: str, hashes: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {h: [] for h in hashes}
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT hash, path FROM files WHERE collection = ? AND hash IN ({marks}) ORDER BY path",
                (collection, *chunk),
            )
            for digest, path in rows:
                found[digest].append(path_from_db(path))
        return found

    def mark_pending(self, collection: str, hashes: Iterable[str]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO pending (collection, hash) VALUES (?, ?)",
                [(collection, h) for h in hashes],
            )

    def commit_batch(
        self,
        collection: str,
        rows: Sequence[FileRow],
        skipped: Sequence[SkippedRow],
        photos: Sequence[PhotoRow] = (),
    ) -> None:
        """Record a finished batch: its files (vectors already in Chroma), its unreadable files and
        the metadata of its new content.

        A changed file's old hash goes to `pending`, to be deleted from Chroma if nothing else uses it.
        """
        now = time.time()
        with self.transaction() as conn:
            _save_photos(conn, collection, photos)
            for row in rows:
                path = path_to_db(row.path)
                old = _hash_of(conn, collection, path)
                if old is not None and old != row.hash:
                    conn.execute(
                        "INSERT OR IGNORE INTO pending (collection, hash) VALUES (?, ?)", (collection, old)
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO files (collection, path, root, hash, size, mtime_ns, indexed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (collection, path, path_to_db(row.root), row.hash, row.size, row.mtime_ns, now),
                )
                conn.execute("DELETE FROM skipped WHERE collection = ? AND path = ?", (collection, path))
            conn.executemany(
                "DELETE FROM pending WHERE collection = ? AND hash = ?", [(collection, r.hash) for r in rows]
            )
            for bad in skipped:
                path = path_to_db(bad.path)
                # A file that was fine and is now corrupt: its old vector no longer describes it.
                _drop_file(conn, collection, path)
                conn.execute(
                    "INSERT OR REPLACE INTO skipped (collection, path, root, reason, size, mtime_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (collection, path, path_to_db(bad.root), bad.reason, bad.size, bad.mtime_ns),
                )

    def forget_paths(self, collection: str, paths: Sequence[str]) -> None:
        """Files that are gone: drop their rows; their hashes become pending."""
        with self.transaction() as conn:
            for path in map(path_to_db, paths):
                _drop_file(conn, collection, path)
                conn.execute("DELETE FROM skipped WHERE collection = ? AND path = ?", (collection, path))

    def orphaned_pending(self, collection: str) -> list[str]:
        """Pending hashes no file refers to: their vectors must leave Chroma."""
        rows = self._conn.execute(
            "SELECT hash FROM pending WHERE collection = ? AND hash NOT IN "
            "(SELECT hash FROM files WHERE collection = ?)",
            (collection, collection),
        )
        return [row[0] for row in rows]

    def clear_pending(self, collection: str, hashes: Sequence[str] | None = None) -> None:
        """Drop pending marks: the given ones (deleted from Chroma, so their metadata goes too), or
        all (each is referenced now)."""
        with self.transaction() as conn:
            if hashes is None:
                conn.execute("DELETE FROM pending WHERE collection = ?", (collection,))
            else:
                pairs = [(collection, h) for h in hashes]
                conn.executemany("DELETE FROM pending WHERE collection = ? AND hash = ?", pairs)
                conn.executemany("DELETE FROM photos WHERE collection = ? AND hash = ?", pairs)
                conn.executemany("DELETE FROM perceptual WHERE collection = ? AND hash = ?", pairs)

    # ----------------------------------------------------------------- duplicates

    def all_files(self, collection: str) -> list[FileRow]:
        """Every indexed file of the collection, by path."""
        rows = self._conn.execute(
            "SELECT path, root, hash, size, mtime_ns FROM files WHERE collection = ?", (collection,)
        )
        found = [
            FileRow(path_from_db(path), path_from_db(root), digest, size, mtime_ns)
            for path, root, digest, size, mtime_ns in rows
        ]
        return sorted(found, key=lambda row: row.path)

    def perceptual_hashes(self, collection: str) -> dict[str, str]:
        """{content hash: perceptual hash} for the content that has one."""
        rows = self._conn.execute("SELECT hash, phash FROM perceptual WHERE collection = ?", (collection,))
        return dict(rows.fetchall())

    def save_perceptual(self, collection: str, hashes: dict[str, str]) -> None:
        """Store perceptual hashes computed after indexing, for content still indexed."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO perceptual (collection, hash, phash) "
                "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM files WHERE collection = ? AND hash = ?)",
                [(collection, h, p, collection, h) for h, p in hashes.items()],
            )

    def photo_records(self, collection: str) -> dict[str, dict[str, Any]]:
        """{content hash: its photo metadata record} (size, date, place, camera)."""
        rows = self._conn.execute("SELECT hash, record FROM photos WHERE collection = ?", (collection,))
        return {digest: json.loads(record) for digest, record in rows}

    def photo_records_of(self, collection: str, hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of these hashes only: a page showing a few photos need not read them all."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT hash, record FROM photos WHERE collection = ? AND hash IN ({marks})",
                (collection, *chunk),
            )
            found.update((digest, json.loads(record)) for digest, record in rows)
        return found

    def newest_photos(
        self, collection: str, after: tuple[str, str] | None, limit: int, where: SqlCondition | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` (hash, photo record) of indexed content, newest first: by date taken (the
        record's `taken`, "" without one), then by hash, both descending; after `after`, the
        (taken, hash) of the previous page's last photo. `where` filters on the record.

        Keyset pagination on the `photos_by_taken` index: a page costs the same at the start and at
        the end of the library. Content indexed before its metadata was read (no record yet) counts
        as undated, unless a filter asks for something only a record can hold."""
        condition, params = ("", ()) if where is None else (f" AND {where.sql}", where.params)
        found: list[tuple[str, dict[str, Any]]] = []
        indexed = "EXISTS (SELECT 1 FROM files f WHERE f.collection = p.collection AND f.hash = p.hash)"
        if after is None or after[0]:
            # `<= ?` is the index's range; the tie on the same date is settled by the hash.
            bound = "" if after is None else f" AND {_TAKEN} <= ? AND ({_TAKEN} < ? OR p.hash < ?)"
            rows = self._conn.execute(
                f"SELECT p.hash, p.record FROM photos p WHERE p.collection = ? AND {_TAKEN} > ''{bound} "
                f"AND {indexed}{condition} ORDER BY {_TAKEN} DESC, p.hash DESC LIMIT ?",
                (collection, *(() if after is None else (after[0], after[0], after[1])), *params, limit),
            )
            found += [(digest, json.loads(record)) for digest, record in rows]
        if len(found) < limit:
            # The undated tail: rare, so its one query may read every file row once.
            tail = (
                f"SELECT p.hash AS hash, p.record AS record FROM photos p "
                f"WHERE p.collection = ? AND {_TAKEN} = '' AND {indexed}{condition}"
            )
            tail_params: list[Any] = [collection, *params]
            if where is None:
                tail += (
                    " UNION ALL SELECT DISTINCT f.hash, '{}' FROM files f WHERE f.collection = ? AND NOT "
                    "EXISTS (SELECT 1 FROM photos p WHERE p.collection = f.collection AND p.hash = f.hash)"
                )
                tail_params.append(collection)
            below = ""
            if after is not None and not after[0]:
                below = " WHERE hash < ?"
                tail_params.append(after[1])
            rows = self._conn.execute(
                f"SELECT hash, record FROM ({tail}){below} ORDER BY hash DESC LIMIT ?",
                (*tail_params, limit - len(found)),
            )
            found += [(digest, json.loads(record)) for digest, record in rows]
        return found

    # ----------------------------------------------------------------- photo metadata

    def save_photos(self, collection: str, photos: Sequence[PhotoRow]) -> None:
        with self.transaction() as conn:
            _save_photos(conn, collection, photos)

    def lacking_metadata(self, collection: str, version: int) -> list[FileRow]:
        """One file per indexed hash whose metadata is missing or older than `version`: the file
        to read it from (the first path, by name)."""
        rows = self._conn.execute(
            "SELECT f.path, f.root, f.hash, f.size, f.mtime_ns FROM files f "
            "LEFT JOIN photos p ON p.collection = f.collection AND p.hash = f.hash "
            "WHERE f.collection = ? AND (p.hash IS NULL OR p.version < ?) ORDER BY f.hash, f.path",
            (collection, version),
        )
        found: dict[str, FileRow] = {}
        for path, root, digest, size, mtime_ns in rows:
            if digest not in found:
                found[digest] = FileRow(path_from_db(path), path_from_db(root), digest, size, mtime_ns)
        return list(found.values())

    def metadata_problems(self, collection: str | None) -> list[tuple[str, str]]:
        """(path, problem) for every indexed file whose photo metadata has a field left empty."""
        rows = self._conn.execute(
            "SELECT f.path, p.problems FROM files f JOIN photos p "
            "ON p.collection = f.collection AND p.hash = f.hash "
            "WHERE f.collection = ? AND p.problems != '[]' ORDER BY f.path",
            (collection,),
        )
        return [(path_from_db(path), problem) for path, problems in rows for problem in json.loads(problems)]

    def skipped_under(self, collection: str, root: str) -> dict[str, SkippedRow]:
        rows = self._conn.execute(
            "SELECT path, reason, size, mtime_ns FROM skipped WHERE collection = ? AND root = ?",
            (collection, path_to_db(root)),
        )
        found = {}
        for stored, reason, size, mtime_ns in rows:
            path = path_from_db(stored)
            found[path] = SkippedRow(path, root, reason, size, mtime_ns)
        return found

    def skipped_files(self, collection: str | None) -> list[SkippedRow]:
        """Every file the collection's runs could not index, with its reason, by path."""
        rows = self._conn.execute(
            "SELECT path, root, reason, size, mtime_ns FROM skipped WHERE collection = ?", (collection,)
        )
        found = [
            SkippedRow(path_from_db(path), path_from_db(root), reason, size, mtime_ns)
            for path, root, reason, size, mtime_ns in rows
        ]
        return sorted(found, key=lambda row: row.path)

    def finish_root(self, collection: str, root: str, model_id: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO root_runs (collection, root, model_id, finished_at) "
                "VALUES (?, ?, ?, ?)",
                (collection, path_to_db(root), model_id, time.time()),
            )

    # ----------------------------------------------------------------- status

    def root_status(self, collection: str | None) -> list[RootStatus]:
        statuses = []
        for root in self.roots():
            stored = path_to_db(root)
            files, unique = self._conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT hash) FROM files WHERE collection = ? AND root = ?",
                (collection, stored),
            ).fetchone()
            skipped = self._conn.execute(
                "SELECT COUNT(*) FROM skipped WHERE collection = ? AND root = ?", (collection, stored)
            ).fetchone()[0]
            run = self._conn.execute(
                "SELECT finished_at, model_id FROM root_runs WHERE collection = ? AND root = ?",
                (collection, stored),
            ).fetchone()
            statuses.append(
                RootStatus(root, files, unique, skipped, run[0] if run else None, run[1] if run else None)
            )
        return statuses

    def collections(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT collection FROM files UNION SELECT collection FROM root_runs"
        )
        return sorted(row[0] for row in rows)


# The sort key of `photos_by_taken`, written exactly as the index is, so SQLite uses the index.
_TAKEN = "coalesce(json_extract(record, '$.taken'), '')"


def _save_photos(conn: sqlite3.Connection, collection: str, photos: Sequence[PhotoRow]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO photos (collection, hash, version, record, problems) VALUES (?, ?, ?, ?, ?)",
        [
            (collection, p.hash, p.version, json.dumps(p.record, sort_keys=True), json.dumps(p.problems))
            for p in photos
        ],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO perceptual (collection, hash, phash) VALUES (?, ?, ?)",
        [(collection, p.hash, p.phash) for p in photos if p.phash is not None],
    )


def _hash_of(conn: sqlite3.Connection, collection: str, path: str | bytes) -> str | None:
    """The content hash recorded for a path (as stored), or None when the path has no row."""
    row = conn.execute(
        "SELECT hash FROM files WHERE collection = ? AND path = ?", (collection, path)
    ).fetchone()
    return row[0] if row else None


def _drop_file(conn: sqlite3.Connection, collection: str, path: str | bytes) -> None:
    """Drop a path's row (path as stored); its hash becomes pending, to be re-checked against the
    files that remain."""
    old = _hash_of(conn, collection, path)
    if old is not None:
        conn.execute("INSERT OR IGNORE INTO pending (collection, hash) VALUES (?, ?)", (collection, old))
        conn.execute("DELETE FROM files WHERE collection = ? AND path = ?", (collection, path))
