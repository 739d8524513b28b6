"""Filters on what the index knows of a photo (when, where, with what, which folder), as Chroma `where`.

They go into the Chroma query itself, never applied to the top k afterwards: a filter applied after
the nearest neighbours were taken starves (ask for 5 photos from Lisbon, get the 2 of the top 5 that
happen to be from Lisbon). Every text value is compared folded (`photo_metadata.fold`), so "lisboa",
"LISBON" and "Île-de-France" match the way people type them.

Dates are whole days, both ends included: `start=2019-01-01, end=2019-12-31` is "in 2019". They are
compared on `taken_day` (YYYYMMDD), the photo's own local date.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from agent.core.errors import ToolInputError
from memory.photo_metadata import fold
from memory.place_names import place_keys

Orientation = Literal["landscape", "portrait", "square"]
ORIENTATIONS: tuple[Orientation, ...] = ("landscape", "portrait", "square")

# File types with several suffixes.
FILE_TYPE_GROUPS = (
    ("jpg", "jpeg", "jpe", "jfif"),
    ("tif", "tiff"),
    ("heic", "heif"),
    ("bmp", "dib"),
)
PLACE_FIELDS = ("city_key", "county_key", "region_key", "country_key", "country_code_key")
_DAY = re.compile(r"^\s*(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?\s*$")


def parse_day(text: str, *, end: bool = False) -> date:
    """A day from `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; a year or month means its first day, or its
    last with `end`. Raises ToolInputError with the accepted forms."""
    match = _DAY.match(text)
    if match is None:
        raise ToolInputError(f"not a date: {text!r} (give YYYY-MM-DD, YYYY-MM or YYYY)")
    year, month, day = int(match[1]), match[2], match[3]
    try:
        if month is None:
            return date(year, 12, 31) if end else date(year, 1, 1)
        if day is None:
            last = calendar.monthrange(year, int(month))[1]
            return date(year, int(month), last if end else 1)
        return date(year, int(month), int(day))
    except ValueError:
        raise ToolInputError(f"not a date: {text!r} (no such day)") from None


def _day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def file_types(text: str) -> list[str]:
    suffix = fold(text).lstrip(".")
    for group in FILE_TYPE_GROUPS:
        if suffix in group:
            return list(group)
    return [suffix]


@dataclass(frozen=True)
class PhotoFilters:
    """What a photo must be to count, besides looking like the query. Empty fields do not filter."""

    start: date | None = None  # taken on or after this day
    end: date | None = None  # taken on or before this day
    place: str | None = None  # a city, county, region or country; "Lisbon, Portugal" needs both
    folder: str | None = None  # the name of a folder on the way to the photo
    camera: str | None = None  # words of the camera's make and model: "iphone", "canon eos"
    orientation: Orientation | None = None
    file_type: str | None = None  # "jpg", "png", "heic", ...

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ToolInputError(f"the date range is empty: {self.start} is after {self.end}")
        if self.orientation is not None and self.orientation not in ORIENTATIONS:
            raise ToolInputError(f"orientation must be one of {', '.join(ORIENTATIONS)}")
        for name in ("place", "folder", "camera", "file_type"):
            value = getattr(self, name)
            if value is not None and not fold(value).strip(" ,/\\."):
                raise ToolInputError(f"empty {name.replace('_', ' ')} filter")

    @classmethod
    def from_words(
        cls,
        after: str | None = None,
        before: str | None = None,
        place: str | None = None,
        folder: str | None = None,
        camera: str | None = None,
        orientation: str | None = None,
        file_type: str | None = None,
    ) -> PhotoFilters:
        """Filters as people type them (command-line flags, the web page's fields): blank means
        no filter, and `before` excludes its own day, as the word says ("before 2020" ends on
        2019-12-31)."""

        def given(value: str | None) -> str | None:
            return value.strip() if value and value.strip() else None

        after, before, orientation = given(after), given(before), given(orientation)
        if orientation is not None and orientation not in ORIENTATIONS:
            raise ToolInputError(f"orientation must be one of {', '.join(ORIENTATIONS)}")
        return cls(
            start=parse_day(after) if after else None,
            end=parse_day(before) - timedelta(days=1) if before else None,
            place=given(place),
            folder=given(folder),
            camera=given(camera),
            orientation=orientation,  # type: ignore[arg-type]
            file_type=given(file_type),
        )

    @property
    def empty(self) -> bool:
        return self == PhotoFilters()

    def where(self) -> dict[str, Any] | None:
        """The Chroma `where` clause; None when nothing filters."""
        clauses: list[dict[str, Any]] = []
        if self.start:
            clauses.append({"taken_day": {"$gte": _day_number(self.start)}})
        if self.end:
            clauses.append({"taken_day": {"$lte": _day_number(self.end)}})
        if self.place:
            for part in (p for p in self.place.split(",") if fold(p).strip()):
                keys = place_keys(part)
                clauses.append({"$or": [{name: key} for name in PLACE_FIELDS for key in keys]})
        if self.folder:
            names = [fold(p) for p in re.split(r"[/\\]+", self.folder) if fold(p).strip()]
            clauses += [{"folder_names": {"$contains": name}} for name in names]
        if self.camera:
            clauses += [{"camera_words": {"$contains": word}} for word in fold(self.camera).split()]
        if self.orientation:
            clauses.append({"orientation": self.orientation})
        if self.file_type:
            clauses.append({"file_type": {"$in": file_types(self.file_type)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def describe(self) -> str:
        """In words, for answers: "from Lisbon, taken 2019-06-01 to 2019-08-31"."""
        parts = []
        if self.place:
            parts.append(f"from {self.place}")
        if self.start and self.end:
            parts.append(
                f"taken on {self.start}" if self.start == self.end else f"taken {self.start} to {self.end}"
            )
        elif self.start:
            parts.append(f"taken on or after {self.start}")
        elif self.end:
            parts.append(f"taken on or before {self.end}")
        if self.folder:
            parts.append(f"in folder {self.folder!r}")
        if self.camera:
            parts.append(f"taken with {self.camera!r}")
        if self.orientation:
            parts.append(f"in {self.orientation}")
        if self.file_type:
            parts.append(f"of type {self.file_type}")
        return ", ".join(parts)
