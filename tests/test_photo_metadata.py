"""Photo metadata at index time: dates, places, cameras; broken values leave the field empty."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from memory.photo_metadata import add_places, fold, read_photo_metadata
from tests.exif_photos import CITIES, save_photo

NOW = datetime(2026, 11, 29, 12, 0, 0)


def read(path: Path, mtime: float | None = None):
    with Image.open(path) as image:
        return read_photo_metadata(image.getexif(), image.size, path, mtime=mtime, now=NOW)


def test_date_place_camera_and_shape_are_read(tmp_path: Path) -> None:
    photo = save_photo(
        Image.new("RGB", (64, 48), "red"),
        tmp_path / "trip" / "IMG_0001.jpg",
        taken="2021:04:30 18:30:05",
        offset="+02:00",
        gps=CITIES["paris"],
        camera=("Canon", "Canon EOS R6"),
    )
    meta = read(photo)
    add_places([meta])
    assert (meta.taken, meta.taken_offset, meta.taken_day) == ("2021-04-30T18:30:05", "+02:00", 20210430)
    assert meta.taken_source == "exif-original" and not meta.taken_guess
    assert meta.city == "Paris" and meta.country == "France" and meta.region == "Île-de-France"
    assert (meta.camera_make, meta.camera_model) == ("Canon", "Canon EOS R6")
    assert (meta.width, meta.height, meta.orientation) == (64, 48, "landscape")
    assert (meta.folder, meta.file_name, meta.file_type) == (str(photo.parent), "IMG_0001.jpg", "jpg")
    record = meta.as_record()
    assert record["region_key"] == "ile-de-france" and record["city_key"] == "paris"
    assert meta.problems == []


def test_a_rotated_photo_reports_its_upright_shape(tmp_path: Path) -> None:
    photo = save_photo(Image.new("RGB", (64, 48)), tmp_path / "r.jpg", orientation=6)
    meta = read(photo)
    assert (meta.width, meta.height, meta.orientation) == (48, 64, "portrait")


def test_no_exif_date_falls_back_to_the_file_time_marked_as_a_guess(tmp_path: Path) -> None:
    photo = save_photo(Image.new("RGB", (40, 40)), tmp_path / "scan.png")
    mtime = datetime(2018, 3, 4, 5, 6, 7).timestamp()
    meta = read(photo, mtime=mtime)
    assert meta.taken == "2018-03-04T05:06:07" and meta.taken_guess and meta.taken_source == "file-mtime"
    assert meta.taken_day == 20180304 and meta.taken_offset is None and meta.orientation == "square"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"taken": "2099:01:01 00:00:00"}, "in the future"),
        ({"taken": "2021:13:45 00:00:00"}, "impossible EXIF date"),
        ({"taken": "yesterday-ish"}, "unreadable EXIF date"),
        ({"gps": (0.0, 0.0)}, "GPS position (0, 0)"),
    ],
)
def test_untrustworthy_values_leave_the_field_empty_with_a_reason(
    tmp_path: Path, fields: dict, problem: str
) -> None:
    photo = save_photo(Image.new("RGB", (40, 30)), tmp_path / "odd.jpg", **fields)
    meta = read(photo)
    add_places([meta])
    assert any(problem in p for p in meta.problems), meta.problems
    if "taken" in fields:
        assert meta.taken is None and meta.taken_day is None
    else:
        assert meta.latitude is None and meta.city is None and meta.country is None


def test_a_missing_time_zone_leaves_only_the_offset_empty(tmp_path: Path) -> None:
    meta = read(save_photo(Image.new("RGB", (40, 30)), tmp_path / "a.jpg", taken="2019:06:14 18:03:00"))
    assert meta.taken == "2019-06-14T18:03:00" and meta.taken_offset is None and meta.problems == []


def test_places_in_other_scripts_and_accents_fold_for_matching(tmp_path: Path) -> None:
    photos = [
        save_photo(Image.new("RGB", (40, 30)), tmp_path / f"{name}.jpg", gps=where)
        for name, where in CITIES.items()
    ]
    metas = [read(p) for p in photos]
    add_places(metas)
    regions = {m.file_name: (m.region, m.country_code) for m in metas}
    assert regions["tokyo.jpg"] == ("Tokyo", "JP")
    assert regions["lisbon.jpg"][1] == "PT" and "lisbon" in {fold(m.county or "") for m in metas} | {
        fold(m.region or "") for m in metas
    }
    assert fold("São Paulo") == "sao paulo" and regions["são paulo.jpg"][1] == "BR"


def test_no_exif_block_at_all_still_gives_the_shape_and_the_guessed_date(tmp_path: Path) -> None:
    meta = read_photo_metadata(None, (30, 40), tmp_path / "x.bmp", mtime=0.0, now=NOW)
    assert meta.orientation == "portrait" and meta.taken_guess and meta.file_type == "bmp"
