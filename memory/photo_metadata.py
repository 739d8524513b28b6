"""When, where and with what a photo was taken, read from its EXIF at index time.

Everything here is best effort and never fatal: a field that cannot be trusted (broken EXIF, GPS at
(0, 0), a date in the future) is left empty and the reason is kept in `problems`, which the index
reports beside the file. Places come from GPS through an offline GeoNames reverse geocoder whose
data ships in its package (`reverse_geocode`), so nothing reaches the network.

Dates are kept as the photo's own local time (what the camera's clock said), because "photos from
June 2019" means June where the photo was taken; `taken_day` (YYYYMMDD as an int) is what range
filters compare. The offset is kept when the camera wrote one and left empty when it did not.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL import Image

# EXIF tags (IFD0, the Exif IFD and the GPS IFD).
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 271, 272, 274, 306
_ORIGINAL, _DIGITIZED = 36867, 36868
_OFFSET, _OFFSET_ORIGINAL, _OFFSET_DIGITIZED = 36880, 36881, 36882
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4
_EXIF_DATE = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_FORMAT = re.compile(r"^[+-]\d{2}:\d{2}$")
# A camera clock a day fast is common; more than that in the future is a wrong date, not a photo.
_FUTURE_SLACK = timedelta(days=1)
_EARLIEST_YEAR = 1826  # the first photograph

# Bumped when the stored fields change: `modalgraph index` then fills the new ones into every record,
# from the files' EXIF, without embedding anything again.
META_VERSION = 1

DateSource = Literal["exif-original", "exif-digitized", "exif-datetime", "file-mtime"]


@dataclass
class PhotoMetadata:
    """What the index stores beside a photo's vector (flat values only: Chroma metadata is flat)."""

    file_name: str
    folder: str
    file_type: str  # the suffix without its dot, lower case: "jpg", "png", "heic"
    width: int | None = None
    height: int | None = None
    orientation: Literal["landscape", "portrait", "square"] | None = None
    taken: str | None = None  # "2019-06-14T18:03:00", local time as the camera recorded it
    taken_offset: str | None = None  # "+01:00" when the camera wrote one
    taken_day: int | None = None  # 20190614: what date filters compare
    taken_source: DateSource | None = None
    taken_guess: bool = False  # from the file's mtime: no EXIF date
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    county: str | None = None
    region: str | None = None
    country: str | None = None
    country_code: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_record(self, root: str | None = None) -> dict[str, Any]:
        """The non-empty fields, flat, as Chroma stores them, plus folded copies for filtering:

        - `*_key`: the place, camera and folder, case- and accent-folded, for equality filters;
        - `camera_words`: every word of make and model, so "iphone" finds an "Apple iPhone 12 Pro";
        - `folder_names`: each folder on the way from the library root (itself included) down to the
          photo, so "holidays" finds `Photos/Holidays/2019/a.jpg`.
        """
        record = {k: v for k, v in asdict(self).items() if v is not None and k != "problems"}
        for key in ("city", "county", "region", "country", "country_code", "camera_make", "camera_model"):
            value = getattr(self, key)
            if value:
                record[f"{key}_key"] = fold(value)
        words = fold(f"{self.camera_make or ''} {self.camera_model or ''}").split()
        if words:
            record["camera_words"] = sorted(set(words))
        names = folder_names(self.folder, root)
        if names:  # Chroma refuses an empty list
            record["folder_names"] = names
        record["meta_version"] = META_VERSION
        return record


def folder_names(folder: str, root: str | None) -> list[str]:
    """Folded names of the folders from `root` (itself included) down to `folder`; every one of
    `folder`'s when it is not under `root`."""
    path = PurePath(folder)
    if root is not None and path.is_relative_to(root):
        base = PurePath(root)
        parts = [base.name, *path.relative_to(base).parts]
    else:
        parts = list(path.parts[1:] if path.is_absolute() else path.parts)
    return sorted({fold(part) for part in parts if part and fold(part)})


def fold(text: str) -> str:
    """Case- and accent-insensitive form for matching: "Île-de-France" -> "ile-de-france"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip().strip("\x00")
    return cleaned or None


def _exif_date(value: object, now: datetime) -> tuple[datetime | None, str | None]:
    """(the date, None) or (None, why it was refused); (None, None) when there is no date at all."""
    text = _text(value)
    if text is None or set(text) <= set("0: "):  # "0000:00:00 00:00:00" is how cameras say "unset"
        return None, None
    match = _EXIF_DATE.match(text)
    if match is None:
        return None, f"unreadable EXIF date {text!r}"
    try:
        taken = datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None, f"impossible EXIF date {text!r}"
    if taken > now + _FUTURE_SLACK:
        return None, f"EXIF date {text!r} is in the future"
    if taken.year < _EARLIEST_YEAR:
        return None, f"EXIF date {text!r} is before photography"
    return taken, None


def _offset(value: object) -> str | None:
    text = _text(value)
    return text if text and _OFFSET_FORMAT.match(text) else None


def _degrees(parts: object, ref: object) -> float | None:
    try:
        d, m, s = (float(x) for x in parts)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    return -value if _text(ref) in ("S", "W") else value


def _set_date(meta: PhotoMetadata, exif: Any, now: datetime, mtime: float | None) -> None:
    ifd = exif.get_ifd(_EXIF_IFD)
    candidates: list[tuple[DateSource, object, object]] = [
        ("exif-original", ifd.get(_ORIGINAL), ifd.get(_OFFSET_ORIGINAL)),
        ("exif-digitized", ifd.get(_DIGITIZED), ifd.get(_OFFSET_DIGITIZED)),
        ("exif-datetime", exif.get(_DATETIME), ifd.get(_OFFSET)),
    ]
    for source, raw, offset in candidates:
        taken, problem = _exif_date(raw, now)
        if problem:
            meta.problems.append(problem)
        if taken is not None:
            meta.taken, meta.taken_source = taken.isoformat(), source
            meta.taken_offset = _offset(offset)
            meta.taken_day = taken.year * 10000 + taken.month * 100 + taken.day
            return
    if mtime is not None:
        taken = datetime.fromtimestamp(mtime)
        meta.taken, meta.taken_source, meta.taken_guess = (
            taken.replace(microsecond=0).isoformat(),
            "file-mtime",
            True,
        )
        meta.taken_day = taken.year * 10000 + taken.month * 100 + taken.day


def _set_gps(meta: PhotoMetadata, exif: Any) -> None:
    gps = exif.get_ifd(_GPS_IFD)
    if not gps:
        return
    lat, lon = _degrees(gps.get(_LAT), gps.get(_LAT_REF)), _degrees(gps.get(_LON), gps.get(_LON_REF))
    if lat is None or lon is None:
        meta.problems.append("unreadable GPS position")
    elif not (-90 <= lat <= 90 and -180 <= lon <= 180):
        meta.problems.append(f"GPS position out of range ({lat:.4f}, {lon:.4f})")
    elif abs(lat) < 1e-6 and abs(lon) < 1e-6:
        meta.problems.append("GPS position (0, 0): a receiver with no fix, not a place")
    else:
        meta.latitude, meta.longitude = round(lat, 6), round(lon, 6)


def read_photo_metadata(
    exif: Image.Exif | None,
    size: tuple[int, int],
    path: Path,
    mtime: float | None = None,
    now: datetime | None = None,
) -> PhotoMetadata:
    """Metadata from a photo's EXIF block and pixel size (as stored, before EXIF rotation).

    Takes the block rather than the image: the decoder reads it once for the orientation, and on a
    PNG `getexif()` decodes every pixel, so asking twice would decode the photo twice.
    """
    meta = PhotoMetadata(
        file_name=path.name, folder=str(path.parent), file_type=path.suffix.lower().lstrip(".")
    )
    now = now or datetime.now()
    width, height = size
    if exif is not None:
        try:
            if exif.get(_ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width
            meta.camera_make, meta.camera_model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
            _set_date(meta, exif, now, mtime)
            _set_gps(meta, exif)
        except Exception as exc:  # a broken EXIF block must cost the fields, never the photo
            meta.problems.append(f"unreadable EXIF: {type(exc).__name__}: {exc}")
    if meta.taken is None and mtime is not None:
        _set_date(meta, _NoExif(), now, mtime)
    meta.width, meta.height = width, height
    meta.orientation = "square" if width == height else ("landscape" if width > height else "portrait")
    return meta


class _NoExif(dict):
    def get_ifd(self, tag: int) -> dict:
        return {}


_geocoder_lock = threading.Lock()


def add_places(items: list[PhotoMetadata]) -> None:
    """Fill city, county, region and country from GPS, for a batch at once (one KD-tree query).

    The nearest GeoNames place of 1,000 or more people is the city; its county and first-level
    region (state) come with it, so "Lisbon" matches a photo taken in Lisbon's Intendente quarter.
    """
    located = [m for m in items if m.latitude is not None and m.longitude is not None]
    if not located:
        return
    with _geocoder_lock:  # the first call loads the data (about 2 s); later ones are instant
        import reverse_geocode  # deferred: imports scipy and reads its GeoNames data

        places = reverse_geocode.search([(m.latitude, m.longitude) for m in located])
    for meta, place in zip(located, places, strict=True):
        meta.city = _text(place.get("city"))
        meta.county = _text(place.get("county"))
        meta.region = _text(place.get("state"))
        meta.country = _text(place.get("country"))
        meta.country_code = _text(place.get("country_code"))
