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


# The metadata library: every held-out shapes render, re-saved as a JPEG with a date, a city and a
# camera, spread so that each colour x shape has photos in several cities and years.
LIBRARY_CITIES = ("paris", "lisbon", "tokyo", "new york")
LIBRARY_YEARS = (2019, 2020, 2021)
LIBRARY_CAMERAS = (("Apple", "iPhone 12 Pro"), ("Canon", "Canon EOS 80D"))


def build_metadata_library(world_dir: Path, out: Path) -> list[dict[str, object]]:
    """Write the library under `out` (in `<city>/` folders): 8 renders of each colour x shape (its 4
    held-out ones and 4 more), the j-th of them in city j % 4 and year (j + j // 4) % 3, so each has
    photos in every city and more than one year. Returns one record per photo with the truth the
    tests compare against: path, colour, shape, city, year, day, camera make."""
    import json

    by_combo: dict[tuple[str, str], list[dict[str, object]]] = {}
    rows = [json.loads(line) for line in (world_dir / "captions.jsonl").read_text().splitlines()]
    for row in sorted(rows, key=lambda r: not r["heldout"]):
        combo = by_combo.setdefault((row["colour"], row["shape"]), [])
        if len(combo) < 8:
            combo.append(row)
    records = []
    n = 0
    for (colour, shape), renders in sorted(by_combo.items()):
        for j, row in enumerate(renders):
            city = LIBRARY_CITIES[j % len(LIBRARY_CITIES)]
            year = LIBRARY_YEARS[(j + j // 4) % len(LIBRARY_YEARS)]
            month, day = 1 + n % 12, 1 + n % 28
            camera = LIBRARY_CAMERAS[j % 3 % 2]
            path = out / city.replace(" ", "-") / f"IMG_{n:04d}.jpg"
            with Image.open(world_dir / str(row["path"])) as image:
                save_photo(
                    image,
                    path,
                    taken=f"{year}:{month:02d}:{day:02d} 12:00:00",
                    gps=CITIES[city],
                    camera=camera,
                )
            records.append(
                {
                    "path": str(path),
                    "colour": colour,
                    "shape": shape,
                    "city": city,
                    "year": year,
                    "day": f"{year}-{month:02d}-{day:02d}",
                    "make": camera[0],
                }
            )
            n += 1
    return records
