"""Paging the library newest first: every photo once, in order, and a page reads a few days, not all."""

from __future__ import annotations

import os
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from memory.photo_filters import PhotoFilters
from memory.photo_pages import Cursor, ManifestPageReader, PageReader, sort_key
from tests.exif_photos import save_photo


def _matches(meta: dict[str, Any], where: dict[str, Any] | None) -> bool:
    """Chroma's `where`, for the clauses the pages and these tests use."""
    if not where:
        return True
    if "$and" in where:
        return all(_matches(meta, clause) for clause in where["$and"])
    ((key, condition),) = where.items()
    value = meta.get(key)
    if isinstance(condition, dict):
        ((op, bound),) = condition.items()
        if value is None:
            return False
        return value >= bound if op == "$gte" else value <= bound
    return value == condition


class FakeStore:
    """Records in memory; counts how many records' metadata each page reads."""

    def __init__(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        self.records = records
        self.read = 0

    def count_matching(self, collection: Any, where: dict[str, Any] | None, limit: int) -> int:
        return min(limit, sum(1 for _, meta in self.records if _matches(meta, where)))

    def matching(self, collection: Any, where: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
        found = [(id_, dict(meta)) for id_, meta in self.records if _matches(meta, where)]
        self.read += len(found)
        return found


def _library(count: int, days: int, undated: int = 0, seed: int = 3) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        day = date(2016, 1, 1) + timedelta(days=rng.randrange(days))
        hour = rng.randrange(3)  # many photos share a day and some a minute: ties are broken by hash
        meta = {
            "taken": f"{day.isoformat()}T1{hour}:00:00",
            "taken_day": day.year * 10000 + day.month * 100 + day.day,
            "city_key": rng.choice(["lisbon", "paris"]),
        }
        records.append((f"{i:064x}", meta))
    records += [(f"{count + i:064x}", {"city_key": "lisbon"}) for i in range(undated)]
    rng.shuffle(records)
    return records


def all_pages(reader: PageReader | ManifestPageReader, k: int) -> list[str]:
    """Every page, as the web page asks for them: k + 1 says whether another follows."""
    ids: list[str] = []
    cursor: Cursor | None = None
    for _ in range(10_000):
        page = reader.page(k + 1, cursor, lambda records, n: records[:n])
        ids += [id_ for id_, _ in page[:k]]
        if len(page) <= k:
            return ids
        cursor = sort_key(page[k - 1])
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("k", [1, 7, 50])
def test_pages_give_every_photo_once_newest_first_undated_last(k: int) -> None:
    records = _library(400, days=900, undated=5)
    store = FakeStore(records)
    ids = all_pages(PageReader(store, None, None), k)  # type: ignore[arg-type]
    assert ids == [id_ for id_, _ in sorted(records, key=sort_key, reverse=True)]


def test_pages_keep_to_the_filter() -> None:
    records = _library(300, days=600, undated=4)
    where = {"city_key": "lisbon"}
    ids = all_pages(PageReader(FakeStore(records), None, where), 9)  # type: ignore[arg-type]
    expected = sorted((r for r in records if r[1]["city_key"] == "lisbon"), key=sort_key, reverse=True)
    assert ids == [id_ for id_, _ in expected]


def test_the_first_page_of_a_large_library_reads_a_few_days_not_everything() -> None:
    # 100k photos over ten years, the newest from two years before today's windows start.
    store = FakeStore(_library(100_000, days=3650))
    page = PageReader(store, None, None).page(25, None, lambda records, n: records[:n])  # type: ignore[arg-type]
    everything = sorted(store.records, key=sort_key, reverse=True)
    assert [id_ for id_, _ in page] == [id_ for id_, _ in everything[:25]]
    assert store.read < 200, store.read  # a day or two of photos, not 100,000


def _not_chroma(*args: object, **kwargs: object) -> None:
    raise AssertionError("a page opened Chroma")


def test_the_index_pages_its_photos_newest_first(
    shapes_world: Path, shapes_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = sorted((shapes_world / "heldout").iterdir())[:14]
    folder = tmp_path / "photos"
    taken = {}
    for i, source in enumerate(renders):
        from PIL import Image

        day = date(2020, 1, 1) + timedelta(days=37 * (i % 7))  # pairs share a day
        path = folder / f"IMG_{i:02d}.jpg"
        with Image.open(source) as image:
            save_photo(image, path, taken=f"{day:%Y:%m:%d} 12:00:0{i % 2}", gps=(38.7223, -9.1393))
        taken[str(path.resolve())] = (day, i % 2)
    # No EXIF date: the file's date stands in (a guess), and places it among the others.
    guessed = folder / "scan.jpg"
    with Image.open(renders[0]) as image:
        save_photo(image, guessed)
    noon = datetime(2020, 3, 1, 12, 0, 0).timestamp()
    os.utime(guessed, (noon, noon))
    taken[str(guessed.resolve())] = (date(2020, 3, 1), 0)
    app = AppContext(
        load_settings(data_dir=tmp_path / "data", device="cpu", models={"clip": str(shapes_clip_dir)})
    )
    try:
        index = app.image_index
        index.index([folder])
        (folder / "IMG_13.jpg").unlink()  # gone since indexing: still listed (the page greys it)
        monkeypatch.setattr(index.store, "open", _not_chroma)  # pages come from the manifest alone
        paths: list[str] = []
        cursor: Cursor | None = None
        while True:
            hits, cursor = index.newest_page(PhotoFilters(), 4, cursor)
            assert len(hits) == 4 or cursor is None
            paths += [hit.path for hit in hits]
            if cursor is None:
                break
        expected = sorted(taken, key=lambda p: taken[p], reverse=True)
        assert paths == expected
        whole, _ = index.newest_page(PhotoFilters(), 100)
        assert [hit.path for hit in whole] == expected  # pages cut one order, never reshuffle it
        assert [hit.path for hit in whole if hit.taken_guess] == [str(guessed.resolve())]
        older, _ = index.newest_page(PhotoFilters(end=date(2020, 3, 1)), 10)
        assert {hit.path for hit in older} == {p for p in expected if taken[p][0] <= date(2020, 3, 1)}
    finally:
        app.image_index.close()
