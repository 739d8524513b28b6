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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.disk_full import DiskFullError
from agent.core.errors import ModalgraphError, StorageError, ToolInputError, one_line
from agent.core.file_lock import exclusive_lock
from agent.core.text import shown_path
from memory.chroma_store import ChromaStore, CollectionInfo, EmbeddingModel, ModelMismatchError
from memory.image_files import (
    FileTooLargeError,
    ImageDecodeError,
    ImageFile,
    TooManyPixelsError,
    decode_image,
    iter_chunks,
    read_and_hash,
    scan_folder,
)
from memory.index_limits import IndexLimits
from memory.library_manifest import FileRow, LibraryManifest, RootStatus, SkippedRow
from memory.library_roots import manifest_path
from memory.stored_paths import is_utf8, path_from_metadata, path_metadata

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


@dataclass
class _Prepared:
    """A file after the worker thread: hashed, and decoded unless its content is already indexed."""

    file: ImageFile
    digest: str = ""
    pixels: Any = None
    width: int | None = None
    height: int | None = None
    error: str | None = None


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
        notify = progress or (lambda _event: None)
        cancel = cancel or threading.Event()
        batch_size = batch_size or self.settings.clip_batch_size
        started = time.perf_counter()
        model = self.embedding_model()  # first: a missing model must not leave a folder registered
        with self._exclusive():
            # Registers new folders: only once this run holds the lock, so that a run refused
            # because another is busy leaves no empty folder behind.
            targets = self._targets(folders)
            report = IndexReport(roots=sorted({root for root, _ in targets}), model_id=model.model_id)
            collection = self.store.open(model, create=True)
            name = model.collection_name
            known = self._recover(collection, name)

            notify(IndexProgress("scanning", 0, 0))
            todo: list[ImageFile] = []
            finished_roots: list[str] = []
            for root, folder in targets:
                if not Path(folder).is_dir():
                    report.missing_roots.append(folder)
                    continue
                todo += self._plan_folder(name, root, folder, report)
                if folder == root:  # a walk of a subfolder does not refresh the whole root
                    finished_roots.append(root)

            if todo and not cancel.is_set():
                self._embed_files(todo, collection, name, known, batch_size, report, notify, cancel)
            self._drop_orphans(collection, name)
            if not report.cancelled:
                for root in sorted(set(finished_roots)):
                    self.manifest.finish_root(name, root, model.model_id)
        report.skipped.sort(key=lambda s: s.path)
        report.seconds = time.perf_counter() - started
        return report

    def _targets(self, folders: Sequence[str | Path] | None) -> list[tuple[str, str]]:
        """(root, folder to walk) pairs. A folder inside an indexed root is walked as part of it; a
        folder that contains indexed roots absorbs them."""
        roots = self.manifest.roots()
        if not folders:
            if not roots:
                raise ToolInputError("no folders indexed yet: run `modalgraph index FOLDER`")
            return [(root, root) for root in roots]
        walk: list[Path] = []
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

    def _plan_folder(self, collection: str, root: str, folder: str, report: IndexReport) -> list[ImageFile]:
        """Scan one folder: forget deleted files now, record what cannot be indexed, return new and
        changed files to embed."""
        scan = scan_folder(Path(folder), [Path(r) for r in self.manifest.roots()])
        report.unreadable_dirs += [(str(p), reason) for p, reason in scan.unreadable_dirs]
        prefix = folder.rstrip(os.sep) + os.sep
        known = {
            path: row
            for path, row in self.manifest.files_under(collection, root).items()
            if folder == root or path.startswith(prefix)
        }
        previously_skipped = {
            path: row
            for path, row in self.manifest.skipped_under(collection, root).items()
            if folder == root or path.startswith(prefix)
        }
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
        blocked = [str(p).rstrip(os.sep) + os.sep for p, _ in scan.unreadable_dirs]
        gone = [
            path
            for path in [*known, *previously_skipped]
            if path not in seen and not any(path.startswith(b) for b in blocked)
        ]
        if gone:
            self.manifest.forget_paths(collection, gone)
            report.removed += sum(1 for p in gone if p in known)
        return todo

    def _recover(self, collection: Any, name: str) -> set[str]:
        """Hashes whose vectors are surely in Chroma. A run killed between marking a batch pending and
        finishing its upsert leaves pending hashes without vectors: those are forgotten here."""
        known = self.manifest.known_hashes(name)
        pending = set(self.manifest.orphaned_pending(name))
        if pending:
            present = self.store.existing_ids(collection, sorted(pending))
            missing = sorted(pending - present)
            if missing:
                self.manifest.clear_pending(name, missing)
                known -= set(missing)
        return known

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
        rows, skipped, fresh = _sort_batch(batch, known)
        failed = self._store_vectors(fresh, encoder, collection, name, report) if fresh else {}
        for row in [r for r in rows if r.hash in failed]:
            skipped.append(SkippedRow(row.path, row.root, failed[row.hash], row.size, row.mtime_ns))
        rows = [r for r in rows if r.hash not in failed]
        stored = [h for h in fresh if h not in failed]
        known.update(stored)
        report.embedded += len(stored)
        report.reused += len(rows) - len(stored)  # each stored hash has one first file in `rows`
        report.skipped += [SkippedFile(bad.path, bad.reason) for bad in skipped]
        self.manifest.commit_batch(name, rows, skipped)

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
        self.manifest.mark_pending(name, hashes)
        try:
            self.store.upsert(collection, hashes, vectors, metadatas)
        except DiskFullError:
            raise  # nothing any one file did: the run ends, everything committed is kept
        except StorageError as exc:
            return self._upsert_one_by_one(collection, hashes, vectors, metadatas, exc)
        return {}

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

    def _collection_by_name(self, name: str) -> Any | None:
        try:
            return self.store.client.get_collection(name=name, embedding_function=None)
        except Exception:
            return None

    # ================================================================= search

    def search_text(self, query: str, k: int = 5) -> list[SearchHit]:
        query = query.strip()
        if not query:
            raise ToolInputError("empty search text")
        model, collection = self._searchable()
        vector = self.encoder().encode_texts([query])[0]
        return self.search_vector(vector, k, model=model, collection=collection)

    def search_image(self, path: str | Path, k: int = 5) -> list[SearchHit]:
        """Images like the one at `path` (a trusted path: callers check LLM-chosen paths first).
        The file itself, if indexed, is left out: it is not a *similar* image, it is the same one."""
        source = Path(path)
        _check_query_image(source)
        model, collection = self._searchable()
        limits = IndexLimits.from_settings(self.settings)  # a query costs what an indexed file does
        try:
            data, digest = read_and_hash(source, limits.max_bytes)
            encoder = self.encoder()
            decoded = decode_image(source if data is None else data, encoder.image_side, limits.max_pixels)
        except ImageDecodeError as exc:
            reason = _skip_reason(exc, source.stat().st_size, limits)
            raise ToolInputError(f"cannot use {shown_path(source)} as a query image: {reason}") from None
        vector = encoder.encode_images([decoded.image])[0]
        return self.search_vector(vector, k, model=model, collection=collection, exclude={digest})

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 5,
        *,
        model: EmbeddingModel | None = None,
        collection: Any = None,
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> list[SearchHit]:
        if k < 1:
            raise ToolInputError("k must be at least 1")
        if model is None or collection is None:
            model, collection = self._searchable()
        # Ask for a few more: excluded hashes and records of since-deleted files are dropped below.
        neighbours = self.store.query(collection, model, vector, k + len(exclude) + 8)
        paths = self.manifest.paths_for(model.collection_name, [n.id for n in neighbours])
        hits = []
        for neighbour in neighbours:
            if neighbour.id in exclude:
                continue
            found = paths.get(neighbour.id) or []
            if not found:
                # A shared Chroma server may hold records this machine never indexed: use the
                # record's own path when it exists here.
                recorded = path_from_metadata(neighbour.metadata)
                if recorded is None or not os.path.isfile(recorded):
                    continue
                found = [recorded]
            try:
                size: int | None = os.stat(found[0]).st_size
            except OSError:
                size = _int_or_none(neighbour.metadata.get("size"))
            hits.append(
                SearchHit(
                    path=found[0],
                    score=round(neighbour.score, 4),
                    size=size,
                    hash=neighbour.id,
                    width=_int_or_none(neighbour.metadata.get("width")),
                    height=_int_or_none(neighbour.metadata.get("height")),
                    other_paths=tuple(found[1:]),
                )
            )
            if len(hits) == k:
                break
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
        result.pixels = model.prepare(decoded.image)
    except ImageDecodeError as exc:
        result.error = _skip_reason(exc, item.size, limits)
    except ModalgraphError:
        raise  # the model cannot load: that ends the run, it is not this file's fault
    except Exception as exc:  # a decoder bug on one odd file must not end the run
        result.error = f"cannot decode: {type(exc).__name__}: {exc}"
    return result


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
) -> tuple[list[FileRow], list[SkippedRow], dict[str, tuple[_Prepared, dict[str, Any]]]]:
    """A prepared batch as (file rows, skipped rows, new content by hash with its Chroma metadata)."""
    rows: list[FileRow] = []
    skipped: list[SkippedRow] = []
    fresh: dict[str, tuple[_Prepared, dict[str, Any]]] = {}
    for item in batch:
        path, root = str(item.file.path), str(item.file.root)
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
    return rows, skipped, fresh


def _metadata(item: _Prepared) -> dict[str, Any]:
    """The Chroma record's metadata, checked value by value: Chroma refuses a whole batch over one
    value it cannot convert, so a bad value must be caught here, for its own file alone."""
    meta: dict[str, Any] = {
        **path_metadata(str(item.file.path)),
        "size": item.file.size,
        "mtime": item.file.mtime_ns / 1e9,
    }
    if item.width is not None and item.height is not None:
        meta["width"], meta["height"] = item.width, item.height
    for key, value in meta.items():
        _check_metadata_value(key, value)
    return meta


def _check_metadata_value(key: str, value: object) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, str) and is_utf8(value):
        return
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise ValueError(f"its {key} {value!r} is not a value Chroma can store")


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
