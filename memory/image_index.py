"""The image library: index folders of photos with CLIP into Chroma, search them by text or image.

`ImageIndex(settings, encoders)` is built by `AppContext.image_index`, which hands it the CLIP. Indexing is incremental (only new or
changed files are embedded, deleted ones removed), deduplicated by content hash, crash-safe (see
`memory.library_manifest` for the invariant) and pipelined: worker threads read, hash, decode and
preprocess the next batches while the model embeds the current one.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.disk_full import DiskFullError, disk_full_error, free_bytes
from agent.core.errors import ModalgraphError, StorageError, ToolInputError, one_line
from agent.core.file_lock import exclusive_lock
from agent.core.text import shown_path
from memory.chroma_store import ChromaStore, CollectionInfo, EmbeddingModel, ModelMismatchError, Neighbour
from memory.image_files import (
    FileTooLargeError,
    FileVanishedError,
    ImageDecodeError,
    ImageFile,
    ScanResult,
    TooManyPixelsError,
    decode_image,
    iter_chunks,
    read_and_hash,
    read_exif,
    scan_names,
    walk_folder,
)
from memory.index_limits import IndexLimits
from memory.library_manifest import FileRow, LibraryManifest, PhotoRow, RootStatus, SkippedRow
from memory.library_roots import manifest_path
from memory.match_check import SAMPLE_SIZE, Calibration, calibrate, judge
from memory.perceptual_hash import perceptual_hash
from memory.photo_filters import PhotoFilters
from memory.photo_metadata import META_VERSION, PhotoMetadata, add_places, read_photo_metadata
from memory.photo_pages import Cursor, ManifestPageReader, PageReader
from memory.record_sql import UnsupportedFilterError, where_sql
from memory.stored_paths import PATH_BYTES_KEY, is_utf8, path_from_metadata, path_metadata

if TYPE_CHECKING:
    import numpy as np

    from agent.core.settings import Settings
    from memory.image_encoder import EncoderSource, ImageEncoder


@dataclass(frozen=True)
class IndexProgress:
    """One progress event: `done` of `total` files handled, `embedded` of them newly embedded."""

    phase: str
    done: int
    total: int
    embedded: int = 0


ProgressCallback = Callable[[IndexProgress], None]


@dataclass(frozen=True)
class SkippedFile:
    """A file not indexed, and why. `path` is exact (it may hold surrogates, see
    `memory.stored_paths`): show it through `agent.core.text.shown_path`."""

    path: str
    reason: str


@dataclass
class IndexReport:
    roots: list[str]
    model_id: str
    scanned: int = 0
    unchanged: int = 0
    embedded: int = 0
    reused: int = 0
    removed: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    skipped_unchanged: int = 0  # of `skipped`: known bad files, not decoded again
    unreadable_dirs: list[tuple[str, str]] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0  # loading the model, included in `seconds`
    embed_seconds: float = 0.0  # the model's forward passes, included in `seconds`
    cancelled: bool = False
    metadata_filled: int = 0  # photos indexed before whose metadata this run read (no re-embedding)
    vanished: list[str] = field(default_factory=list)  # found, then gone before they could be read

    @property
    def processed(self) -> int:
        return self.embedded + self.reused + len(self.skipped) - self.skipped_unchanged

    @property
    def images_per_second(self) -> float:
        """Files handled per second of indexing, not counting the model's loading."""
        busy = self.seconds - self.load_seconds
        return self.processed / busy if busy > 0 else 0.0


@dataclass(frozen=True)
class SearchHit:
    path: str
    score: float
    size: int | None
    hash: str
    width: int | None = None
    height: int | None = None
    other_paths: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # the record's photo metadata

    @property
    def taken(self) -> str | None:
        value = self.meta.get("taken")
        return value if isinstance(value, str) else None

    @property
    def taken_guess(self) -> bool:
        return bool(self.meta.get("taken_guess"))

    @property
    def taken_words(self) -> str:
        """ "June 14, 2019" (the photo's local date), or "" without one."""
        if not self.taken:
            return ""
        try:
            day = datetime.fromisoformat(self.taken)
        except ValueError:
            return self.taken
        return f"{day:%B} {day.day}, {day.year}"

    @property
    def place(self) -> str:
        """ "Intendente, Lisbon, Portugal": the nearest town or quarter, its county (else its region)
        when that is another name, and the country."""
        area = self.meta.get("county") or self.meta.get("region")
        parts = [self.meta.get("city"), area, self.meta.get("country")]
        return ", ".join(str(p) for p in dict.fromkeys(parts) if p)

    @property
    def camera(self) -> str:
        make, model = self.meta.get("camera_make") or "", self.meta.get("camera_model") or ""
        # Many models repeat the make ("Canon" + "Canon EOS 5D"): say it once.
        return str(
            model if make and str(model).lower().startswith(str(make).lower()) else f"{make} {model}"
        ).strip()

    def details(self) -> dict[str, Any]:
        """When, where and with what, for `--json` and tool data."""
        found = {
            "taken": self.taken,
            "taken_is_file_date": self.taken_guess,
            "place": self.place or None,
            "city": self.meta.get("city"),
            "region": self.meta.get("region"),
            "country": self.meta.get("country"),
            "latitude": self.meta.get("latitude"),
            "longitude": self.meta.get("longitude"),
            "camera": self.camera or None,
            "width": self.width,
            "height": self.height,
        }
        return found


@dataclass
class SearchOutcome:
    """What a search found. `no_match`: a text query whose best photos are not photos of it; they
    are then in `closest`, not in `hits`. `visual`: ranked by likeness (else newest first)."""

    hits: list[SearchHit]
    closest: list[SearchHit] = field(default_factory=list)
    no_match: bool = False
    visual: bool = True


@dataclass
class LibraryStatus:
    store: str
    model_id: str | None
    model_problem: str | None
    collection: str | None
    vectors: int
    roots: list[RootStatus]
    other_collections: list[CollectionInfo]
    skipped: list[SkippedFile] = field(default_factory=list)  # every root's, with the reasons
    # Photos indexed, but with a metadata field left empty, and why (broken EXIF, GPS at (0, 0)).
    metadata_problems: list[SkippedFile] = field(default_factory=list)


@dataclass
class _Prepared:
    """A file after the worker thread: hashed, and decoded unless its content is already indexed."""

    file: ImageFile
    digest: str = ""
    pixels: Any = None
    width: int | None = None
    height: int | None = None
    meta: PhotoMetadata | None = None
    phash: str | None = None
    error: str | None = None
    vanished: bool = False  # deleted or moved between the scan and the read


# Below this much free space on the index's disk, no further batch is written (see `_check_room`).
_MIN_FREE_BYTES = 512 * 1024
# Photos whose metadata is read and stored per Chroma update during a backfill.
_METADATA_BATCH = 256


def _workers() -> int:
    """Decode threads: half the cores, the model's threads need the rest. PIL releases the GIL while
    decoding, so these run truly in parallel with the forward pass; more would only make torch's
    threads wait for a core."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


class ImageIndex:
    """Index and search the user's photos. Cheap to build: nothing loads until a method needs it."""

    def __init__(self, settings: Settings, encoders: EncoderSource) -> None:
        self.settings = settings
        self.encoders = encoders
        self.store = ChromaStore(settings)
        self._manifest: LibraryManifest | None = None
        self._calibration_lock = threading.Lock()
        self._calibration_key: tuple[str, int] | None = None
        self._calibration_value: Calibration | None = None

    @property
    def manifest(self) -> LibraryManifest:
        if self._manifest is None:
            self._manifest = LibraryManifest(manifest_path(self.settings))
        return self._manifest

    def close(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None

    def embedding_model(self) -> EmbeddingModel:
        """The configured CLIP as the collection sees it; reads files only, loads no weights."""
        return self.encoders.embedding_model()

    def encoder(self) -> ImageEncoder:
        return self.encoders.load()

    # ================================================================= indexing

    def index(
        self,
        folders: Sequence[str | Path] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int | None = None,
    ) -> IndexReport:
        """Index `folders` (default: every folder indexed before); returns what was done.

        Unusable files never stop the run: they are listed in `report.skipped`, each with a reason.
        """

        def plan(name: str, report: IndexReport) -> tuple[list[ImageFile], list[str]]:
            # Registers new folders: only once this run holds the lock, so that a run refused
            # because another is busy leaves no empty folder behind.
            targets = self._targets(folders)
            report.roots = sorted({root for root, _ in targets})
            todo: list[ImageFile] = []
            finished_roots: list[str] = []
            for root, folder in targets:
                if self._root_missing(name, root, folder):
                    report.missing_roots.append(folder)
                    continue
                todo += self._plan_folder(name, root, folder, report)
                if folder == root:  # a walk of a subfolder does not refresh the whole root
                    finished_roots.append(root)
            return todo, finished_roots

        return self._run(plan, progress, cancel, batch_size)

    def index_changes(
        self,
        paths: Iterable[str | Path],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int | None = None,
    ) -> IndexReport:
        """Bring the index up to date with these changed paths (files or folders, added, changed or
        gone), as a watcher reports them, without walking the rest of the library: a path that
        exists is indexed like `index` would (a folder with all it holds), a path that is gone leaves
        the index with everything under it. A moved file's content is known: it is not embedded
        again. Paths outside the indexed folders, and hidden ones, are passed over."""
        changed = [Path(p) for p in paths]

        def plan(name: str, report: IndexReport) -> tuple[list[ImageFile], list[str]]:
            todo: list[ImageFile] = []
            for root, inside in _by_root(changed, self.manifest.roots()).items():
                report.roots.append(root)
                if self._root_missing(name, root, root):
                    report.missing_roots.append(root)
                elif Path(root) in inside:  # the root itself changed (made readable again, say)
                    todo += self._plan_folder(name, root, root, report)
                else:
                    todo += self._plan_changes(name, root, inside, report)
            return todo, []

        return self._run(plan, progress, cancel, batch_size)

    def _run(
        self,
        plan: Callable[[str, IndexReport], tuple[list[ImageFile], list[str]]],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        batch_size: int | None,
    ) -> IndexReport:
        """One index run: under the lock, `plan` forgets what is gone and returns (files to embed,
        roots walked whole); those files are embedded batch by batch, each batch committed."""
        notify = progress or (lambda _event: None)
        cancel = cancel or threading.Event()
        batch_size = batch_size or self.settings.clip_batch_size
        started = time.perf_counter()
        model = self.embedding_model()  # first: a missing model must not leave a folder registered
        with self._exclusive():
            report = IndexReport(roots=[], model_id=model.model_id)
            collection = self.store.open(model, create=True)
            name = model.collection_name
            self._recover(collection, name)

            notify(IndexProgress("scanning", 0, 0))
            todo, finished_roots = plan(name, report)
            if todo and not cancel.is_set():
                # Read only when something is to be embedded: an unchanged library's check need not
                # hold every hash (4 MB of Python strings at 20,000 photos).
                known = self.manifest.known_hashes(name)
                self._embed_files(todo, collection, name, known, batch_size, report, notify, cancel)
            self._drop_orphans(collection, name)
            if not report.cancelled and not cancel.is_set():
                self._fill_metadata(collection, name, report, notify, cancel)
            if not report.cancelled:
                for root in sorted(set(finished_roots)):
                    self.manifest.finish_root(name, root, model.model_id)
        report.skipped.sort(key=lambda s: s.path)
        report.seconds = time.perf_counter() - started
        return report

    def _root_missing(self, collection: str, root: str, folder: str) -> bool:
        """Whether a folder to walk is not there to judge: gone, or an empty folder where indexed
        photos were (see `looks_unmounted`). Its records are kept either way: reading "no files" as
        "every photo deleted" would empty the index, then embed the whole drive again once it is back."""
        path = Path(folder)
        if not path.is_dir():
            return True
        return _is_empty(path) and self._holds_records(collection, root, folder)

    def looks_unmounted(self, folder: str | Path) -> bool:
        """Whether `folder` is an empty folder under which photos are indexed: the mount point of a
        drive that is not mounted, as far as anything can tell (a user who deletes every photo of a
        folder is told its records are kept, and `--forget` drops them)."""
        path = Path(folder)
        if not path.is_dir() or not _is_empty(path):
            return False
        name = self.embedding_model().collection_name
        root = next((r for r in self.manifest.roots() if path.is_relative_to(r)), None)
        return root is not None and self._holds_records(name, root, str(path))

    def _holds_records(self, collection: str, root: str, folder: str) -> bool:
        if folder == root:
            return self.manifest.has_files(collection, root)
        return bool(self.manifest.rows_in_folder(collection, root, folder, below=True)[0])

    def _targets(self, folders: Sequence[str | Path] | None) -> list[tuple[str, str]]:
        """(root, folder to walk) pairs. A folder inside an indexed root is walked as part of it; a
        folder that contains indexed roots absorbs them."""
        roots = self.manifest.roots()
        if not folders:
            if not roots:
                raise ToolInputError("no folders indexed yet: run `modalgraph index FOLDER`")
            return [(root, root) for root in roots]
        walk: list[Path] = []
        for folder in self.check_folders(folders):
            if not any(folder.is_relative_to(r) for r in roots):
                inner = [r for r in roots if Path(r).is_relative_to(folder)]
                self.manifest.add_root(str(folder), absorbed=inner)
                roots = self.manifest.roots()
            walk.append(folder)
        # A folder inside another one being walked adds nothing: its files are seen by the outer walk.
        walk = [f for f in walk if not any(f != g and f.is_relative_to(g) for g in walk)]
        targets = []
        for folder in dict.fromkeys(walk):
            root = next(r for r in roots if folder.is_relative_to(r))
            targets.append((root, str(folder)))
        return targets

    @staticmethod
    def check_folders(folders: Sequence[str | Path]) -> list[Path]:
        """The folders resolved, or a one-line error naming the first that is not a folder."""
        checked = []
        for raw in folders:
            folder = Path(raw).expanduser()
            try:
                folder = folder.resolve(strict=True)
            except (OSError, RuntimeError):
                raise ToolInputError(f"folder not found: {shown_path(raw)}") from None
            if not folder.is_dir():
                raise ToolInputError(
                    f"not a folder: {shown_path(raw)} (give the folder that holds your photos)"
                )
            checked.append(folder)
        return checked

    def _plan_folder(self, collection: str, root: str, folder: str, report: IndexReport) -> list[ImageFile]:
        """Scan one folder: forget deleted files now, record what cannot be indexed, return new and
        changed files to embed. One listed folder at a time, each against its own manifest rows, so
        the check of an unchanged library of any size holds one folder's entries."""
        todo: list[ImageFile] = []
        listed: set[str] = set()
        blocked: list[str] = []
        for path, part in walk_folder(Path(folder), [Path(r) for r in self.manifest.roots()]):
            listed.add(str(path))
            blocked += [str(p).rstrip(os.sep) + os.sep for p, _ in part.unreadable_dirs]
            known, previously_skipped = self.manifest.rows_in_folder(collection, root, str(path))
            todo += self._plan_scan(collection, root, part, known, previously_skipped, report)
        # What the walk listed no folder for: gone with its folder (or behind a link to a folder
        # walked already), unless it lies under a folder that could not be listed.
        prefix = folder.rstrip(os.sep) + os.sep
        gone = [
            (path, indexed)
            for path, indexed in self.manifest.paths_under(collection, root)
            if (folder == root or path.startswith(prefix))
            and os.path.dirname(path) not in listed
            and not path.startswith(tuple(blocked))
        ]
        self._forget(collection, gone, report)
        return todo

    def _plan_changes(
        self, collection: str, root: str, changed: list[Path], report: IndexReport
    ) -> list[ImageFile]:
        """Scan just the changed paths under one root, each with what it holds; see `index_changes`."""
        by_folder: dict[Path, set[str]] = {}
        for path in changed:
            by_folder.setdefault(path.parent, set()).add(path.name)
        library = [Path(r) for r in self.manifest.roots()]
        scan = ScanResult()
        for folder, names in sorted(by_folder.items()):
            part = scan_names(folder, names, Path(root), library)
            scan.files += part.files
            scan.skipped += part.skipped
            scan.unreadable_dirs += part.unreadable_dirs
        known, previously_skipped = self.manifest.rows_at(collection, root, [str(p) for p in changed])
        # Only a path that is not a plain file now (a folder, or gone) can have had files under it.
        for path in changed:
            if not path.is_file():
                files, skipped = self.manifest.rows_in_folder(collection, root, str(path), below=True)
                known.update(files)
                previously_skipped.update(skipped)
        return self._plan_scan(collection, root, scan, known, previously_skipped, report)

    def _plan_scan(
        self,
        collection: str,
        root: str,
        scan: ScanResult,
        known: dict[str, FileRow],
        previously_skipped: dict[str, SkippedRow],
        report: IndexReport,
    ) -> list[ImageFile]:
        """Sort what a scan found against the manifest rows of the same paths (`known`, and
        `previously_skipped`): forget the files it no longer finds, record what cannot be indexed,
        return new and changed files to embed."""
        report.unreadable_dirs += [(str(p), reason) for p, reason in scan.unreadable_dirs]
        report.scanned += len(scan.files)
        limits = IndexLimits.from_settings(self.settings)
        seen = set()
        todo = []
        skips: list[SkippedRow] = []
        for item in scan.files:
            path = str(item.path)
            seen.add(path)
            row = known.get(path)
            bad = previously_skipped.get(path)
            if row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns:
                report.unchanged += 1
            elif item.size > limits.max_bytes:
                # Decided from the size the scan saw: not a byte of the file is read.
                reason = limits.file_reason(item.size)
                skips += _listed(SkippedRow(path, root, reason, item.size, item.mtime_ns), bad, report)
            elif bad is not None and _same_file(bad, item) and not limits.outdated(bad.reason):
                # Still the same unreadable file: list it again, but do not decode it again. One
                # skipped for a cap whose value has changed since is looked at again.
                report.skipped.append(SkippedFile(path, bad.reason))
                report.skipped_unchanged += 1
            else:
                todo.append(ImageFile(item.path, Path(root), item.size, item.mtime_ns))
        for found in scan.skipped:
            path = str(found.path)
            seen.add(path)
            listed = SkippedRow(path, root, found.reason, found.size, found.mtime_ns)
            skips += _listed(listed, previously_skipped.get(path), report)
        if skips:
            # Recorded now, so that `--status` lists them too; a file indexed before under this
            # path (say, a photo now replaced by a link out of the library) loses its record.
            self.manifest.commit_batch(collection, [], skips)
        blocked = tuple(str(p).rstrip(os.sep) + os.sep for p, _ in scan.unreadable_dirs)
        gone = [
            (path, path in known)
            for path in [*known, *previously_skipped]
            if path not in seen and not path.startswith(blocked)
        ]
        self._forget(collection, gone, report)
        return todo

    def _forget(self, collection: str, gone: list[tuple[str, bool]], report: IndexReport) -> None:
        """Drop the rows of files that are gone: (path, whether it was indexed rather than skipped)."""
        if gone:
            self.manifest.forget_paths(collection, [path for path, _ in gone])
            report.removed += sum(1 for _, indexed in gone if indexed)

    def _recover(self, collection: Any, name: str) -> None:
        """Make the manifest's known hashes (`known_hashes`) those whose vectors are surely in
        Chroma. A run killed between marking a batch pending and finishing its upsert leaves pending
        hashes without vectors: those are forgotten here."""
        pending = set(self.manifest.orphaned_pending(name))
        if pending:
            present = self.store.existing_ids(collection, sorted(pending))
            missing = sorted(pending - present)
            if missing:
                self.manifest.clear_pending(name, missing)

    def _drop_orphans(self, collection: Any, name: str) -> None:
        """Delete vectors no file refers to any more (deleted or changed files, killed batches)."""
        orphans = self.manifest.orphaned_pending(name)
        if orphans:
            self.store.delete(collection, orphans)
            self.manifest.clear_pending(name, orphans)
        # What is left in `pending` is referenced by files and present in Chroma: nothing to undo.
        self.manifest.clear_pending(name)

    def _embed_files(
        self,
        todo: list[ImageFile],
        collection: Any,
        name: str,
        known: set[str],
        batch_size: int,
        report: IndexReport,
        notify: ProgressCallback,
        cancel: threading.Event,
    ) -> None:
        # Loaded on first need: a run that only finds moved, renamed or duplicated files (content
        # already embedded) never loads the model.
        encoder = _LazyEncoder(
            self.encoder, report, lambda: notify(IndexProgress("loading", done, len(todo)))
        )
        done = 0
        notify(IndexProgress("embedding", 0, len(todo)))
        limits = IndexLimits.from_settings(self.settings)

        def prepare(item: ImageFile) -> _Prepared:
            return _prepare(item, known, encoder, limits)

        with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="decode") as pool:
            for batch in _prefetched(pool, prepare, todo, batch_size, ahead=2):
                if cancel.is_set():
                    report.cancelled = True
                    break
                self._commit(batch, encoder, collection, name, known, report)
                done += len(batch)
                notify(IndexProgress("embedding", done, len(todo), report.embedded))

    def _commit(
        self,
        batch: list[_Prepared],
        encoder: _LazyEncoder,
        collection: Any,
        name: str,
        known: set[str],
        report: IndexReport,
    ) -> None:
        """Embed one batch and record it, in the order that keeps the manifest's invariant. A file
        whose record Chroma cannot take is skipped with the reason; the rest of the batch goes on."""
        _add_places([item.meta for item in batch if item.meta is not None])
        rows, skipped, fresh, vanished = _sort_batch(batch, known)
        if vanished:
            # Gone, not unreadable: no "skipped" row that would outlive the file; an indexed
            # file's record leaves with it.
            self.manifest.forget_paths(name, vanished)
            report.vanished += vanished
        failed = self._store_vectors(fresh, encoder, collection, name, report) if fresh else {}
        for row in [r for r in rows if r.hash in failed]:
            skipped.append(SkippedRow(row.path, row.root, failed[row.hash], row.size, row.mtime_ns))
        rows = [r for r in rows if r.hash not in failed]
        stored = [h for h in fresh if h not in failed]
        known.update(stored)
        report.embedded += len(stored)
        report.reused += len(rows) - len(stored)  # each stored hash has one first file in `rows`
        report.skipped += [SkippedFile(bad.path, bad.reason) for bad in skipped]
        photos = [_photo_row(digest, *fresh[digest]) for digest in stored]
        self.manifest.commit_batch(name, rows, skipped, photos)

    def _store_vectors(
        self,
        fresh: dict[str, tuple[_Prepared, dict[str, Any]]],
        encoder: _LazyEncoder,
        collection: Any,
        name: str,
        report: IndexReport,
    ) -> dict[str, str]:
        """Embed and upsert new content; returns {hash: reason} for records Chroma refused."""
        hashes = list(fresh)
        t0 = time.perf_counter()
        vectors = encoder.get().encode_prepared([fresh[h][0].pixels for h in hashes])
        report.embed_seconds += time.perf_counter() - t0
        metadatas = [fresh[h][1] for h in hashes]
        self._check_room()
        self.manifest.mark_pending(name, hashes)
        try:
            self.store.upsert(collection, hashes, vectors, metadatas)
        except DiskFullError:
            raise  # nothing any one file did: the run ends, everything committed is kept
        except StorageError as exc:
            return self._upsert_one_by_one(collection, hashes, vectors, metadatas, exc)
        return {}

    def _check_room(self) -> None:
        """Refuse a batch when the index's disk is all but full. Embedded Chroma, asked to write
        into the last few hundred KiB, can block inside its Rust writer instead of failing (seen
        with a batch's records and metadata overflowing a nearly full disk): ending the run here, with
        everything before it committed, is what a full disk must cost."""
        if self.settings.chroma_host:
            return  # a server's disk is not one this machine can measure
        free = free_bytes(self.settings.index_dir)
        if free is not None and free < _MIN_FREE_BYTES:
            raise disk_full_error(self.settings.index_dir)

    def _upsert_one_by_one(
        self,
        collection: Any,
        hashes: list[str],
        vectors: np.ndarray,
        metadatas: list[dict[str, Any]],
        batch_error: StorageError,
    ) -> dict[str, str]:
        """After a refused batch, find the records at fault. When every one fails the store itself
        is failing (a server gone, permissions), which ends the run like any storage error."""
        failed: dict[str, str] = {}
        for n, digest in enumerate(hashes):
            try:
                self.store.upsert(collection, [digest], vectors[n : n + 1], [metadatas[n]])
            except DiskFullError:
                raise
            except StorageError as exc:
                failed[digest] = f"cannot be stored in the index: {one_line(exc)}"
        if len(failed) == len(hashes):
            raise batch_error
        # Refused hashes stay pending without a file: `_drop_orphans` clears them at the end.
        return failed

    def _fill_metadata(
        self,
        collection: Any,
        name: str,
        report: IndexReport,
        notify: ProgressCallback,
        cancel: threading.Event,
    ) -> None:
        """Metadata for content indexed before it was read (an index from an older modalgraph, or
        older metadata fields): read from each photo's EXIF and merged into its Chroma record. The
        vector is not touched: nothing is embedded again."""
        lacking = self.manifest.lacking_metadata(name, META_VERSION)
        if not lacking:
            return
        limits = IndexLimits.from_settings(self.settings)
        notify(IndexProgress("metadata", 0, len(lacking)))
        with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="exif") as pool:
            for start in range(0, len(lacking), _METADATA_BATCH):
                if cancel.is_set():
                    report.cancelled = True
                    return
                rows = lacking[start : start + _METADATA_BATCH]
                metas = list(pool.map(lambda row: _read_metadata(row, limits), rows))
                _add_places(metas)
                records = [photo_record(meta, row.root) for meta, row in zip(metas, rows, strict=True)]
                self.store.update_metadata(collection, [row.hash for row in rows], records)
                self.manifest.save_photos(
                    name,
                    [
                        PhotoRow(row.hash, META_VERSION, record, [p for p in meta.problems if is_utf8(p)])
                        for row, meta, record in zip(rows, metas, records, strict=True)
                    ],
                )
                report.metadata_filled += len(rows)
                notify(IndexProgress("metadata", start + len(rows), len(lacking)))

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """One index run at a time per data dir: two would race on the same records."""
        busy = StorageError(
            f"another `modalgraph index` is running on {self.settings.index_dir}; wait for it to end"
        )
        return exclusive_lock(self.settings.index_dir / "index.lock", busy)

    def forget(self, folder: str | Path) -> int:
        """Remove a folder (an indexed root) and its records from every model's collection."""
        resolved = str(Path(folder).expanduser().resolve())
        if resolved not in self.manifest.roots():
            raise ToolInputError(
                f"{shown_path(folder)} is not an indexed folder; see `modalgraph index --status`"
            )
        with self._exclusive():
            pairs = self.manifest.remove_root(resolved)
            for collection_name in sorted({c for c, _digest in pairs}):
                orphans = self.manifest.orphaned_pending(collection_name)
                collection = self._collection_by_name(collection_name)
                if collection is not None:
                    self.store.delete(collection, orphans)
                self.manifest.clear_pending(collection_name, orphans)
        return len(pairs)

    def forget_files(self, paths: Sequence[str]) -> int:
        """Drop files that left the library (moved away by `library duplicates --move-to`) from every
        model's collection, now rather than at the next index run: a search must not show them.
        Vectors no remaining file refers to are deleted. The caller holds `lock()`."""
        dropped = 0
        for collection_name in self.manifest.collections():
            self.manifest.forget_paths(collection_name, paths)
            orphans = self.manifest.orphaned_pending(collection_name)
            collection = self._collection_by_name(collection_name)
            if collection is not None and orphans:
                self.store.delete(collection, orphans)
            self.manifest.clear_pending(collection_name, orphans)
            dropped += len(orphans)
        return dropped

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the index for a change made outside `index` (moving files): refused, with one line,
        while an index run is going."""
        return self._exclusive()

    def vectors(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored unit vectors of these content hashes (those the collection holds)."""
        _model, collection = self._searchable()
        return self.store.vectors(collection, list(hashes))

    def _collection_by_name(self, name: str) -> Any | None:
        try:
            return self.store.client.get_collection(name=name, embedding_function=None)
        except Exception:
            return None

    # ================================================================= search

    def search_text(self, query: str, k: int = 5) -> list[SearchHit]:
        """The k nearest photos to `query`, matching or not (see `search` for the honest version)."""
        return self.search(text=query, k=k, judge_match=False).hits

    def search_image(self, path: str | Path, k: int = 5) -> list[SearchHit]:
        """Images like the one at `path` (a trusted path: callers check LLM-chosen paths first).
        The file itself, if indexed, is left out: it is not a *similar* image, it is the same one."""
        return self.search(image=path, k=k).hits

    def search(
        self,
        text: str | None = None,
        image: str | Path | None = None,
        without: Sequence[str] = (),
        filters: PhotoFilters | None = None,
        k: int = 5,
        judge_match: bool = True,
    ) -> SearchOutcome:
        """Photos that look like `text` and/or `image`, minus `without` (rclip's query arithmetic:
        the normalised vectors are added and subtracted), among those `filters` let through.

        With no text and no image, the filtered photos newest first. A text query's hits are
        checked to be photos *of* the query (`memory.match_check`) unless `judge_match` is false:
        when none is, the outcome says "no match" and keeps the closest few apart.
        """
        if k < 1:
            raise ToolInputError("k must be at least 1")
        filters = filters or PhotoFilters()
        if text is not None:
            text = text.strip()
            if not text:
                raise ToolInputError("empty search text")
        without = [term.strip() for term in without]
        if any(not term for term in without):
            raise ToolInputError("empty term to exclude")
        if text is None and image is None:
            if without:
                raise ToolInputError("words to exclude need search text or an image to subtract them from")
            if filters.empty:
                raise ToolInputError("give search text, an example image or a filter")
            return SearchOutcome(self.newest(filters, k), visual=False)
        if image is not None:
            _check_query_image(Path(image))  # a typo in the path is said before anything loads
        model, collection = self._searchable()
        encoder = self.encoder()
        exclude: set[str] = set()
        parts = []
        if image is not None:
            vector, digest = self._image_vector(Path(image), encoder)
            parts.append(vector)
            exclude.add(digest)
        if text is not None:
            parts.append(encoder.encode_texts([text])[0])
        query = _combined(parts, encoder.encode_texts(list(without)) if without else None)
        hits = self.search_vector(
            query, k, model=model, collection=collection, exclude=exclude, where=filters.where()
        )
        if text is None or image is not None or not judge_match or not hits:
            return SearchOutcome(hits)
        return self._judged(text, parts[-1], hits, collection)

    def _image_vector(self, source: Path, encoder: ImageEncoder) -> tuple[np.ndarray, str]:
        _check_query_image(source)
        limits = IndexLimits.from_settings(self.settings)  # a query costs what an indexed file does
        try:
            data, digest = read_and_hash(source, limits.max_bytes)
            decoded = decode_image(source if data is None else data, encoder.image_side, limits.max_pixels)
        except ImageDecodeError as exc:
            reason = _skip_reason(exc, source.stat().st_size, limits)
            raise ToolInputError(f"cannot use {shown_path(source)} as a query image: {reason}") from None
        return encoder.encode_images([decoded.image])[0], digest

    def _judged(
        self, text: str, query_vector: np.ndarray, hits: list[SearchHit], collection: Any
    ) -> SearchOutcome:
        """Keep the hits that are photos of `text`; none: "no match", with the closest three."""
        import numpy as np

        calibration = self._calibration(collection)
        vectors = self.store.vectors(collection, [hit.hash for hit in hits])
        if calibration is None or len(vectors) != len({hit.hash for hit in hits}):
            return SearchOutcome(hits)  # nothing to judge with: the plain nearest photos
        images = np.stack([vectors[hit.hash] for hit in hits])
        verdicts = judge(calibration, text, query_vector, images)
        matched = [hit for hit, verdict in zip(hits, verdicts, strict=True) if verdict.matches]
        if matched:
            return SearchOutcome(matched)
        return SearchOutcome([], closest=hits[:3], no_match=True)

    def _calibration(self, collection: Any) -> Calibration | None:
        """The model's rivals and chance level on this library, measured once per library size."""
        key = (collection.name, self.store.count(collection))
        with self._calibration_lock:
            if self._calibration_key == key:
                return self._calibration_value
        try:
            captions, vectors = self.encoders.reference_captions()
        except (ValueError, AttributeError):
            return None  # a model that can read none of the captions (or an encoder without them)
        value = calibrate(captions, vectors, self.store.sample_vectors(collection, SAMPLE_SIZE))
        with self._calibration_lock:
            self._calibration_key, self._calibration_value = key, value
        return value

    def newest(self, filters: PhotoFilters, k: int) -> list[SearchHit]:
        """The k newest photos (by date taken) that the filters let through."""
        return self.newest_page(filters, k)[0]

    def newest_page(
        self, filters: PhotoFilters, k: int, after: Cursor | None = None
    ) -> tuple[list[SearchHit], Cursor | None]:
        """A page of the filtered photos, newest first: up to k after `after` (the cursor of the
        previous page), and the cursor of this page's end, None when nothing follows.

        Reads one page's records from the manifest (`memory.photo_pages`), not the whole library."""
        if k < 1:
            raise ToolInputError("k must be at least 1")
        model, reader = self._page_reader(filters.where())

        def to_hits(records: list[tuple[str, dict[str, Any]]], count: int) -> list[SearchHit]:
            neighbours = [Neighbour(id_, 0.0, meta) for id_, meta in records]
            return self._hits(neighbours, model.collection_name, count, frozenset())

        # One more than asked says whether another page follows.
        hits = reader.page(k + 1, after, to_hits)
        if len(hits) <= k:
            return hits, None
        last = hits[k - 1]
        return hits[:k], (last.taken or "", last.hash)

    def _page_reader(
        self, where: dict[str, Any] | None
    ) -> tuple[EmbeddingModel, ManifestPageReader | PageReader]:
        """The manifest's pages, which need neither Chroma nor its start-up. Chroma's for a shared
        server (records other machines indexed are not in this manifest), a filter SQL is not given,
        or a manifest without this model's photos (Chroma's collections then say what is wrong)."""
        model = self.embedding_model()
        if not self.settings.chroma_host and self.manifest.has_collection(model.collection_name):
            try:
                condition = None if where is None else where_sql(where)
            except UnsupportedFilterError:
                pass
            else:
                return model, ManifestPageReader(self.manifest, model.collection_name, condition)
        model, collection = self._searchable()
        return model, PageReader(self.store, collection, where)

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 5,
        *,
        model: EmbeddingModel | None = None,
        collection: Any = None,
        exclude: set[str] | frozenset[str] = frozenset(),
        where: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        if k < 1:
            raise ToolInputError("k must be at least 1")
        if model is None or collection is None:
            model, collection = self._searchable()
        # Ask for a few more: excluded hashes and records of since-deleted files are dropped below.
        neighbours = self.store.query(collection, model, vector, k + len(exclude) + 8, where=where)
        return self._hits(neighbours, model.collection_name, k, exclude)

    def _hits(
        self, neighbours: list[Neighbour], collection_name: str, k: int, exclude: set[str] | frozenset[str]
    ) -> list[SearchHit]:
        """Records as hits, best first: each with its files here (a record whose files are all gone
        is dropped), up to k."""
        hits: list[SearchHit] = []
        for start in range(0, len(neighbours), 4 * k):
            window = [n for n in neighbours[start : start + 4 * k] if n.id not in exclude]
            paths = self.manifest.paths_for(collection_name, [n.id for n in window])
            for neighbour in window:
                hit = _hit(neighbour, paths.get(neighbour.id) or [])
                if hit is not None:
                    hits.append(hit)
                    if len(hits) == k:
                        return hits
        return hits

    def _searchable(self) -> tuple[EmbeddingModel, Any]:
        """The configured model's collection, or a one-line error saying what to do."""
        model = self.embedding_model()
        collection = self.store.open(model, create=False)
        if collection is not None:
            return model, collection
        others = [c for c in self.store.collections() if c.count]
        if others:
            built = ", ".join(sorted({f"{c.model_id} ({c.dim}-d)" for c in others}))
            raise ModelMismatchError(
                f"the image index was built with {built}, not with the configured CLIP model "
                f"{model.model_id} ({model.dim}-d); vectors of different models cannot be compared: "
                "re-run `modalgraph index` to embed the library with this model, "
                "or set MODALGRAPH_MODEL_CLIP back"
            )
        raise ToolInputError(
            "the image library is empty: index your photos first with `modalgraph index FOLDER`"
        )

    # ================================================================= status

    def status(self) -> LibraryStatus:
        model: EmbeddingModel | None = None
        problem = None
        try:
            model = self.embedding_model()
        except ModalgraphError as exc:
            problem = str(exc)
        collections = self.store.collections()
        name = model.collection_name if model else None
        current = next((c for c in collections if c.name == name), None)
        return LibraryStatus(
            store=self.store.where,
            model_id=model.model_id if model else None,
            model_problem=problem,
            collection=name,
            vectors=current.count if current else 0,
            roots=self.manifest.root_status(name),
            other_collections=[c for c in collections if c.name != name],
            skipped=[SkippedFile(row.path, row.reason) for row in self.manifest.skipped_files(name)],
            metadata_problems=[
                SkippedFile(path, problem) for path, problem in self.manifest.metadata_problems(name)
            ],
        )


class _LazyEncoder:
    """The CLIP encoder, loaded by whichever thread first needs it, once."""

    def __init__(
        self, load: Callable[[], ImageEncoder], report: IndexReport, on_load: Callable[[], None]
    ) -> None:
        self._load = load
        self._report = report
        self._on_load = on_load
        self._encoder: ImageEncoder | None = None
        self._lock = threading.Lock()

    def get(self) -> ImageEncoder:
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._on_load()
                    started = time.perf_counter()
                    self._encoder = self._load()
                    self._report.load_seconds = time.perf_counter() - started
        return self._encoder


def _prepare(item: ImageFile, known: set[str], encoder: _LazyEncoder, limits: IndexLimits) -> _Prepared:
    """What a worker thread does with one file: hash it, and decode it unless its content is known."""
    result = _Prepared(item)
    try:
        data, result.digest = read_and_hash(item.path, limits.max_bytes)
        if result.digest in known:
            return result  # identical content already embedded: no need to decode
        model = encoder.get()
        # A big file's bytes were not kept (memory stays flat): the decoder reads it from disk.
        decoded = decode_image(item.path if data is None else data, model.image_side, limits.max_pixels)
        result.width, result.height = decoded.width, decoded.height
        result.meta = read_photo_metadata(decoded.exif, decoded.stored_size, item.path, item.mtime_ns / 1e9)
        # From the pixels decoded anyway: `library duplicates` then never decodes the library again.
        result.phash = perceptual_hash(decoded.image)
        result.pixels = model.prepare(decoded.image)
    except FileVanishedError as exc:
        result.vanished, result.error = True, str(exc)
    except ImageDecodeError as exc:
        result.error = _skip_reason(exc, item.size, limits)
    except ModalgraphError:
        raise  # the model cannot load: that ends the run, it is not this file's fault
    except Exception as exc:  # a decoder bug on one odd file must not end the run
        result.error = f"cannot decode: {type(exc).__name__}: {exc}"
    return result


def _read_metadata(row: FileRow, limits: IndexLimits) -> PhotoMetadata:
    """A photo's metadata from its file header; the pixels are not decoded (but a PNG's EXIF may
    follow them, so one over the pixel cap is not read at all)."""
    path, mtime = Path(row.path), row.mtime_ns / 1e9
    try:
        exif, size = read_exif(path, limits.max_pixels)
    except ImageDecodeError as exc:
        meta = read_photo_metadata(None, (0, 0), path, mtime)
        meta.width = meta.height = meta.orientation = None
        meta.problems.append(f"metadata not read: {exc}")
        return meta
    return read_photo_metadata(exif, size, path, mtime)


def _skip_reason(exc: ImageDecodeError, size: int, limits: IndexLimits) -> str:
    """The one line shown for a file: a cap's reason names the setting that lets the file in."""
    if isinstance(exc, FileTooLargeError):
        return limits.file_reason(max(size, exc.size))  # it grew after the scan measured it
    if isinstance(exc, TooManyPixelsError):
        return limits.pixel_reason(exc.width, exc.height)
    return str(exc)


def _check_query_image(source: Path) -> None:
    """A query image must be one existing regular file; say which it is not."""
    shown = shown_path(source)
    if source.is_dir():
        raise ToolInputError(f"{shown} is a folder, not an image: give one image file to search by")
    if not source.exists():
        raise ToolInputError(f"image not found: {shown}")
    if not source.is_file():
        raise ToolInputError(f"{shown} is not a regular file: give one image file to search by")


def _is_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as listing:
            return next(listing, None) is None
    except OSError:
        return False  # unreadable: the scan says so, and forgets nothing under it


def _by_root(paths: Iterable[Path], roots: Sequence[str]) -> dict[str, list[Path]]:
    """Changed paths by the indexed root they lie in. Left out: paths outside every root, hidden
    ones (the scan passes over them too) and those inside another changed path, whose walk sees
    them."""
    found: dict[str, set[Path]] = {}
    for path in paths:
        root = next((r for r in roots if path.is_relative_to(r)), None)
        if root is None or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        found.setdefault(root, set()).add(path)
    grouped = {}
    for root, inside in sorted(found.items()):
        top = Path(root)
        grouped[root] = sorted(
            p for p in inside if p == top or not any(a in inside for a in p.parents if a.is_relative_to(top))
        )
    return grouped


def _same_file(row: SkippedRow, item: ImageFile) -> bool:
    return row.size == item.size and row.mtime_ns == item.mtime_ns


def _listed(row: SkippedRow, before: SkippedRow | None, report: IndexReport) -> list[SkippedRow]:
    """Report a file the scan will not index; returns the row to record, none when already recorded."""
    report.skipped.append(SkippedFile(row.path, row.reason))
    if row == before:
        report.skipped_unchanged += 1
        return []
    return [row]


def _sort_batch(
    batch: list[_Prepared], known: set[str]
) -> tuple[list[FileRow], list[SkippedRow], dict[str, tuple[_Prepared, dict[str, Any]]], list[str]]:
    """A prepared batch as (file rows, skipped rows, new content by hash with its Chroma metadata,
    paths gone since the scan)."""
    rows: list[FileRow] = []
    skipped: list[SkippedRow] = []
    fresh: dict[str, tuple[_Prepared, dict[str, Any]]] = {}
    vanished: list[str] = []
    for item in batch:
        path, root = str(item.file.path), str(item.file.root)
        if item.vanished:
            vanished.append(path)
            continue
        size, mtime_ns = item.file.size, item.file.mtime_ns
        # `known` only grows during a run, so a file the worker did not decode is in it.
        new = item.error is None and item.digest not in known and item.digest not in fresh
        meta: dict[str, Any] = {}
        if new:
            try:
                meta = _metadata(item)
            except ValueError as exc:  # one odd file: skipped, never the end of the run
                item.error = f"cannot be stored in the index: {exc}"
        if item.error is not None:
            skipped.append(SkippedRow(path, root, item.error, size, mtime_ns))
            continue
        rows.append(FileRow(path, root, item.digest, size, mtime_ns))
        if new:
            fresh[item.digest] = (item, meta)
    return rows, skipped, fresh, vanished


def _metadata(item: _Prepared) -> dict[str, Any]:
    """The Chroma record's metadata, checked value by value: Chroma refuses a whole batch over one
    value it cannot convert, so a bad value must be caught here, for its own file alone."""
    meta: dict[str, Any] = {
        **(photo_record(item.meta, str(item.file.root)) if item.meta is not None else {}),
        **path_metadata(str(item.file.path)),
        "size": item.file.size,
        "mtime": item.file.mtime_ns / 1e9,
    }
    if item.width is not None and item.height is not None:
        meta["width"], meta["height"] = item.width, item.height
    for key, value in meta.items():
        _check_metadata_value(key, value)
    return meta


def photo_record(meta: PhotoMetadata, root: str) -> dict[str, Any]:
    """The photo's metadata as stored: values of a non-UTF-8 file or folder name are left out (the
    path itself is kept exactly by `path_metadata`), since neither Chroma nor SQLite text holds them."""
    record: dict[str, Any] = {}
    for key, value in meta.as_record(root).items():
        if isinstance(value, str) and not is_utf8(value):
            continue
        if isinstance(value, list):
            value = [v for v in value if is_utf8(v)]
            if not value:
                continue
        record[key] = value
    return record


def _photo_row(digest: str, item: _Prepared, record: dict[str, Any]) -> PhotoRow:
    problems = item.meta.problems if item.meta is not None else []
    return PhotoRow(
        digest, META_VERSION, _photo_fields(record), [p for p in problems if is_utf8(p)], item.phash
    )


def _photo_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The photo-metadata part of a Chroma record: what the manifest keeps a copy of."""
    return {k: v for k, v in record.items() if k not in _FILE_FIELDS}


def _add_places(items: list[PhotoMetadata]) -> None:
    """Places for a batch; a geocoder that cannot load costs the places, never the batch."""
    try:
        add_places(items)
    except Exception as exc:
        for meta in items:
            if meta.latitude is not None:
                meta.problems.append(f"place unknown: the offline geocoder failed ({one_line(exc)})")


# Record fields about one file rather than the photo's content.
_FILE_FIELDS = frozenset({"path", PATH_BYTES_KEY, "size", "mtime"})


def _check_metadata_value(key: str, value: object) -> None:
    if isinstance(value, list) and value and all(isinstance(v, str) and is_utf8(v) for v in value):
        return
    if isinstance(value, bool):
        return
    if isinstance(value, str) and is_utf8(value):
        return
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise ValueError(f"its {key} {value!r} is not a value Chroma can store")


def _hit(neighbour: Neighbour, found: list[str]) -> SearchHit | None:
    if not found:
        # A shared Chroma server may hold records this machine never indexed: use the record's
        # own path when it exists here.
        recorded = path_from_metadata(neighbour.metadata)
        if recorded is None or not os.path.isfile(recorded):
            return None
        found = [recorded]
    try:
        size: int | None = os.stat(found[0]).st_size
    except OSError:
        size = _int_or_none(neighbour.metadata.get("size"))
    return SearchHit(
        path=found[0],
        score=round(neighbour.score, 4),
        size=size,
        hash=neighbour.id,
        width=_int_or_none(neighbour.metadata.get("width")),
        height=_int_or_none(neighbour.metadata.get("height")),
        other_paths=tuple(found[1:]),
        meta=neighbour.metadata,
    )


def _combined(parts: list[np.ndarray], subtract: np.ndarray | None) -> np.ndarray:
    """rclip's query arithmetic on unit vectors: the sum of what to find, minus what to leave out,
    normalised again."""
    import numpy as np

    vector = np.sum(parts, axis=0)
    if subtract is not None:
        vector = vector - subtract.sum(axis=0)
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:
        raise ToolInputError("the words to exclude cancel the query out: nothing is left to search for")
    return (vector / norm).astype(np.float32)


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def _prefetched(
    pool: ThreadPoolExecutor,
    work: Callable[[ImageFile], _Prepared],
    items: list[ImageFile],
    batch_size: int,
    ahead: int,
) -> Iterator[list[_Prepared]]:
    """Batches of prepared files, with up to `ahead` further batches being prepared meanwhile.

    Bounded so that memory stays flat on a 100k-photo folder: at most (ahead + 1) batches of
    preprocessed pixels exist at once.
    """
    queue: deque[list[Future[_Prepared]]] = deque()
    try:
        for batch in iter_chunks(items, batch_size):
            queue.append([pool.submit(work, item) for item in batch])
            if len(queue) > ahead:
                yield [future.result() for future in queue.popleft()]
        while queue:
            yield [future.result() for future in queue.popleft()]
    finally:
        # Stopped early (cancelled, or an error): do not decode batches nobody will embed.
        for futures in queue:
            for future in futures:
                future.cancel()
