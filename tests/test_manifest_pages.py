"""The library newest first from the manifest's SQLite: keyset pages in order, filters that select
what Chroma's `where` selects, and an index on the date taken that old manifests gain on open."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from memory.library_manifest import FileRow, LibraryManifest, PhotoRow
from memory.photo_filters import PhotoFilters
from memory.photo_pages import ManifestPageReader, sort_key
from memory.record_sql import UnsupportedFilterError, where_sql
from tests.test_photo_pages import all_pages

COLLECTION = "photos_test"
CITIES = ("lisbon", "paris", "tokyo")
CAMERAS = (["apple", "iphone", "pro"], ["canon", "eos"])


def _record(rng: random.Random, i: int) -> dict[str, Any]:
    """A record as indexing stores it: dated by EXIF, dated by the file's mtime (a guess), or undated."""
    record: dict[str, Any] = {
        "file_type": rng.choice(["jpg", "png", "heic"]),
        "orientation": rng.choice(["landscape", "portrait"]),
        "folder_names": sorted({"photos", rng.choice(["holidays", "family", "work"])}),
        "city_key": rng.choice(CITIES),
        "camera_words": rng.choice(CAMERAS),
        "meta_version": 1,
    }
    kind = i % 10
    if kind == 9:
        return record  # no date at all
    day = date(2015, 1, 1) + timedelta(days=rng.randrange(2500))
    # Several photos share a minute: the hash settles their order.
    record["taken"] = f"{day.isoformat()}T{rng.randrange(2):02d}:00:00"
    record["taken_day"] = day.year * 10000 + day.month * 100 + day.day
    if kind == 8:
        record["taken_guess"] = True
        record["taken_source"] = "file-mtime"
    return record


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LibraryManifest, dict[str, dict]]]:
    """600 photos: dated, guessed, undated; some content at two paths; 12 files indexed before their
    metadata was read (no record); one record whose files are gone (still pending)."""
    rng = random.Random(7)
    manifest = LibraryManifest(tmp_path_factory.mktemp("manifest") / "manifest.db")
    records: dict[str, dict[str, Any]] = {}
    rows, photos = [], []
    for i in range(600):
        digest = f"{rng.getrandbits(256):064x}"
        records[digest] = _record(rng, i)
        rows.append(FileRow(f"/lib/photos/{i}.jpg", "/lib", digest, 1000 + i, i))
        if i % 50 == 0:
            rows.append(FileRow(f"/lib/photos/copy-{i}.jpg", "/lib", digest, 1000 + i, i))
        photos.append(PhotoRow(digest, 1, records[digest], []))
    for i in range(12):
        digest = f"{rng.getrandbits(256):064x}"
        records[digest] = {}
        rows.append(FileRow(f"/lib/old/{i}.jpg", "/lib", digest, 10, i))
    manifest.commit_batch(COLLECTION, rows, [], photos)
    gone = next(d for d, r in records.items() if r.get("taken"))
    manifest.forget_paths(COLLECTION, [row.path for row in rows if row.hash == gone])
    del records[gone]
    yield manifest, records
    manifest.close()


@pytest.mark.parametrize("k", [1, 7, 24, 1000])
def test_pages_are_newest_first_each_photo_once_guessed_dates_in_place(
    library: tuple[LibraryManifest, dict[str, dict]], k: int
) -> None:
    manifest, records = library
    ids = all_pages(ManifestPageReader(manifest, COLLECTION, None), k)
    assert ids == [d for d, _ in sorted(records.items(), key=sort_key, reverse=True)]
    # Guessed dates sit among the EXIF dates by their date, not at the end with the undated.
    taken = [records[d].get("taken", "") for d in ids]
    assert taken == sorted(taken, reverse=True)
    guessed = [i for i, d in enumerate(ids) if records[d].get("taken_guess")]
    undated = [i for i, d in enumerate(ids) if not records[d].get("taken")]
    assert guessed and undated and max(guessed) < min(undated)
    assert any(not records[ids[i - 1]].get("taken_guess") for i in guessed[1:])  # interleaved


def test_a_page_continues_exactly_where_the_last_ended(
    library: tuple[LibraryManifest, dict[str, dict]],
) -> None:
    manifest, records = library
    reader = ManifestPageReader(manifest, COLLECTION, None)
    whole = [d for d, _ in reader.page(len(records), None, lambda r, n: r[:n])]
    for start in (0, 1, 250, len(whole) - 20):
        after = None if start == 0 else sort_key((whole[start - 1], records[whole[start - 1]]))
        page = [d for d, _ in reader.page(20, after, lambda r, n: r[:n])]
        assert page == whole[start : start + 20]


@pytest.mark.parametrize(
    "filters",
    [
        PhotoFilters(place="Lisboa"),
        PhotoFilters(start=date(2017, 3, 1), end=date(2018, 6, 30)),
        PhotoFilters(folder="photos/Holidays"),
        PhotoFilters(camera="iPhone"),
        PhotoFilters(file_type="HEIF", orientation="portrait"),
        PhotoFilters(place="paris", camera="canon eos", start=date(2016, 1, 1)),
    ],
)
def test_filters_select_what_chroma_selects(
    library: tuple[LibraryManifest, dict[str, dict]], chroma_library: Any, filters: PhotoFilters
) -> None:
    manifest, records = library
    where = filters.where()
    assert where is not None
    chosen = set(chroma_library.get(where=where, include=[])["ids"])
    assert chosen and len(chosen) < len(records)  # the filter does select
    reader = ManifestPageReader(manifest, COLLECTION, where_sql(where))
    ids = all_pages(reader, 9)
    expected = sorted(((d, r) for d, r in records.items() if d in chosen), key=sort_key, reverse=True)
    assert ids == [d for d, _ in expected]


@pytest.fixture(scope="module")
def chroma_library(library: tuple[LibraryManifest, dict[str, dict]]) -> Any:
    """The same records in Chroma: what its `where` selects is what the SQL must select."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    _, records = library
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("manifest_pages", embedding_function=None)
    ids = list(records)
    collection.add(
        ids=ids,
        embeddings=[[1.0, float(i)] for i in range(len(ids))],
        metadatas=[records[d] or {"meta_version": 0} for d in ids],
    )
    yield collection
    client.delete_collection("manifest_pages")


def test_a_filter_sql_cannot_say_is_refused_not_guessed() -> None:
    with pytest.raises(UnsupportedFilterError):
        where_sql({"city_key": {"$ne": "lisbon"}})
    with pytest.raises(UnsupportedFilterError):
        where_sql({"taken_guess": True})


def test_an_old_manifest_gains_the_date_index_and_pages_use_it(tmp_path: Path) -> None:
    path = tmp_path / "manifest.db"
    LibraryManifest(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX photos_by_taken")  # a manifest written before the index existed
    manifest = LibraryManifest(path)
    try:
        names = {r[0] for r in manifest._conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "photos_by_taken" in names
        conn = manifest._conn
        plans: list[str] = []

        class Planning:
            """The connection, saying how SQLite runs each page query."""

            def execute(self, sql: str, params: Any = ()) -> Any:
                if sql.startswith("SELECT p.hash"):
                    plans.append(" ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)))
                return conn.execute(sql, params)

        manifest._conn = Planning()  # type: ignore[assignment]
        manifest.newest_photos(COLLECTION, ("2020-01-01T00:00:00", "f" * 64), 5)
        manifest._conn = conn
        # A later page seeks into the index (a range on the date) and needs no sort: no row before
        # the cursor is read, as OFFSET would.
        assert plans and "USING INDEX photos_by_taken (collection=? AND <expr>" in plans[0], plans
        assert "TEMP B-TREE" not in plans[0], plans
    finally:
        manifest.close()
