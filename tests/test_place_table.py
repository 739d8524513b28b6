"""The place table: folded once into a SQLite file in the cache folder, then opened by every later
process; rebuilt when the file is damaged; folded in memory where the folder cannot hold it."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import place_names
from memory.place_names import ANY, OWN, WELL_KNOWN, is_place, place_keys, place_within

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_tables() -> Iterator[None]:
    """This process forgets the table it opened, before and after the test."""
    place_names._table.cache_clear()
    yield
    place_names._table.cache_clear()


def _sample(count: int) -> list[str]:
    """Names of every kind, and words that are no place."""
    every, own, well_known = place_names._place_names()
    rng = random.Random(7)
    names = [*rng.sample(sorted(every), count), *rng.sample(sorted(own), count // 4)]
    names += rng.sample(sorted(well_known), count // 4) + rng.sample(
        sorted(place_names._cities()[0]), count // 4
    )
    return [*names, "red cars", "kitchen table", "", "xyzzy"]


def _answers(table: object, names: list[str]) -> list[tuple[int, str | None]]:
    return [(table.kinds(name), table.city(name)) for name in names]  # type: ignore[attr-defined]


def test_the_table_is_written_once_then_opened_and_answers_as_the_folding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_tables: None
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MODALGRAPH_CACHE_DIR", str(cache))
    names = _sample(2000)
    folded = _answers(place_names._MemoryTable(), names)
    assert any(kinds & WELL_KNOWN for kinds, _ in folded) and any(city for _, city in folded)

    place_names.load_place_names()
    table = place_names._table()
    assert isinstance(table, place_names._SqliteTable)
    [path] = cache.glob("places-*.sqlite")
    assert not list(cache.glob("*.partial"))
    assert _answers(table, names) == folded

    # Another process opens the file instead of folding the tables again.
    written = path.stat().st_mtime_ns
    probe = (
        "from memory import place_names as p; p.load_place_names(); "
        "print(type(p._table()).__name__, p.place_keys('Oporto'), p.is_place('Strand', well_known=True))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["_SqliteTable", "('oporto',", "'porto')", "False"]
    assert path.stat().st_mtime_ns == written


def test_a_damaged_table_is_built_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_tables: None
) -> None:
    monkeypatch.setenv("MODALGRAPH_CACHE_DIR", str(tmp_path))
    path = place_names._table_path()
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)  # a header, and nothing behind it
    # What processes that exited mid-build left: an hour-old file goes, a build under way stays.
    abandoned, building = tmp_path / f"{path.name}.1.2.partial", tmp_path / f"{path.name}.3.4.partial"
    abandoned.write_bytes(b"half")
    building.write_bytes(b"half")
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    assert place_keys("Lisboa") == ("lisboa", "lisbon")
    assert isinstance(place_names._table(), place_names._SqliteTable)
    assert path.stat().st_size > 1_000_000
    assert not abandoned.exists() and building.exists()


def test_a_cache_folder_that_cannot_be_written_folds_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_tables: None
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MODALGRAPH_CACHE_DIR", str(blocker / "cache"))  # under a file: never a folder
    assert isinstance(place_names._table(), place_names._MemoryTable)
    assert place_keys("東京") == ("東京", "tokyo") and is_place("Bavaria")
    assert place_within("Porto do Verão") == "Porto"
    assert place_names._table().kinds("porto") & (ANY | OWN) == ANY | OWN
