"""Write photos with EXIF dates, GPS and cameras (Pillow writes EXIF), for the metadata tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

# Real places: (latitude, longitude).
CITIES = {
    "paris": (48.8566, 2.3522),
    "lisbon": (38.7223, -9.1393),
    "tokyo": (35.6762, 139.6503),
    "new york": (40.7128, -74.0060),
    "são paulo": (-23.5505, -46.6333),
}


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return float(degrees), float(minutes), seconds


def exif_for(
    taken: str | None = None,
    offset: str | None = None,
    gps: tuple[float, float] | None = None,
    camera: tuple[str, str] | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    """`taken` as EXIF writes it: "2021:04:30 18:30:05"."""
    exif = Image.Exif()
    if camera:
        exif[271], exif[272] = camera
    if orientation:
        exif[274] = orientation
    if taken:
        ifd = exif.get_ifd(0x8769)
        ifd[36867] = taken
        if offset:
            ifd[36881] = offset
    if gps:
        lat, lon = gps
        info = exif.get_ifd(0x8825)
        info[1], info[2] = ("N" if lat >= 0 else "S"), _dms(lat)
        info[3], info[4] = ("E" if lon >= 0 else "W"), _dms(lon)
    return exif


def save_photo(image: Image.Image, path: Path, **exif: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None
    image.convert("RGB").save(path, format=fmt, exif=exif_for(**exif))  # type: ignore[arg-type]
    return path
