"""HEIC/HEIF and AVIF photos are indexed with their EXIF; camera RAW files are listed as skipped."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from agent.context import AppContext
from memory import image_files
from memory.image_files import ImageDecodeError, decode_image, read_exif
from memory.photo_filters import PhotoFilters
from memory.photo_metadata import read_photo_metadata
from tests.exif_photos import CITIES, exif_for

pillow_heif = pytest.importorskip("pillow_heif")


def _save(image: Image.Image, path: Path, **exif: object) -> Path:
    """HEIC through pillow-heif, AVIF through Pillow's own plugin, each with an EXIF block."""
    image_files.register_heif()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, exif=exif_for(**exif).tobytes(), quality=90)  # type: ignore[arg-type]
    return path


def _format_of(path: Path) -> str:
    with Image.open(path) as image:
        return str(image.format)


@pytest.fixture
def phone_folder(tmp_path: Path, sample_photos: dict) -> Path:
    folder = tmp_path / "phone"
    _save(
        sample_photos["chelsea"],
        folder / "IMG_0001.HEIC",
        taken="2022:07:14 09:30:00",
        gps=CITIES["lisbon"],
        camera=("Apple", "iPhone 14 Pro"),
        orientation=6,
    )
    _save(
        sample_photos["coffee"],
        folder / "IMG_0002.avif",
        taken="2023:01:02 20:15:00",
        gps=CITIES["tokyo"],
        camera=("Google", "Pixel 8"),
    )
    good = (folder / "IMG_0001.HEIC").read_bytes()
    (folder / "broken.heic").write_bytes(good[: len(good) // 3])
    for name in ("IMG_1.CR2", "DSC_2.NEF", "DSC_3.arw", "IMG_4.dng"):
        (folder / name).write_bytes(b"II*\x00 raw sensor data")
    return folder


def test_heic_and_avif_are_written_as_such(phone_folder: Path) -> None:
    assert _format_of(phone_folder / "IMG_0001.HEIC") == "HEIF"
    assert _format_of(phone_folder / "IMG_0002.avif") == "AVIF"


@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "IMG_0002.avif"])
def test_exif_of_heic_and_avif_is_read(phone_folder: Path, name: str) -> None:
    exif, size = read_exif(phone_folder / name)
    meta = read_photo_metadata(exif, size, phone_folder / name)
    assert meta.taken is not None and meta.taken_source == "exif-original"
    assert meta.camera_make in ("Apple", "Google") and meta.latitude is not None
    # The HEIC was saved turned (orientation 6): its upright shape is portrait, as the chelsea
    # photo (451x300) turned a quarter is.
    expected = "portrait" if name.endswith("HEIC") else "landscape"
    assert meta.orientation == expected


def test_heic_and_avif_are_indexed_searchable_with_date_place_and_camera(
    library_app: AppContext, phone_folder: Path, sample_photos: dict
) -> None:
    index = library_app.image_index
    report = index.index([phone_folder])
    assert report.embedded == 2
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"broken.heic", "IMG_1.CR2", "DSC_2.NEF", "DSC_3.arw", "IMG_4.dng"}
    assert skipped["IMG_1.CR2"] == "RAW photo (CR2): not decoded; export it as JPEG or HEIC to index it"
    assert "(ARW)" in skipped["DSC_3.arw"] and "(DNG)" in skipped["IMG_4.dng"]
    assert skipped["broken.heic"].startswith("corrupt HEIC/HEIF image")
    assert all("\n" not in reason for reason in skipped.values())

    # Found by date, place and camera, with their details.
    iphone = index.search(filters=PhotoFilters.from_words(after="2022", camera="iphone"), k=5).hits
    assert [Path(h.path).name for h in iphone] == ["IMG_0001.HEIC"]
    assert iphone[0].taken == "2022-07-14T09:30:00" and "Lisbon" in iphone[0].place
    assert (iphone[0].width, iphone[0].height) == (300, 451)  # upright
    pixel = index.search(filters=PhotoFilters.from_words(place="tokyo", file_type="avif"), k=5).hits
    assert [Path(h.path).name for h in pixel] == ["IMG_0002.avif"] and pixel[0].camera == "Google Pixel 8"

    # Found by likeness: a JPEG of the same picture finds the AVIF first.
    query = phone_folder.parent / "query.jpg"
    sample_photos["coffee"].save(query, "JPEG", quality=80)
    assert Path(index.search(image=query, k=1).hits[0].path).name == "IMG_0002.avif"

    # The index is consistent, and a second run decodes none of the bad files again.
    again = index.index([phone_folder])
    assert again.embedded == 0 and again.skipped_unchanged == 5
    status = index.status()
    assert status.vectors == 2 and {Path(s.path).name for s in status.skipped} == set(skipped)


def test_a_corrupt_heic_says_so_in_one_line(phone_folder: Path) -> None:
    data = (phone_folder / "broken.heic").read_bytes()
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data)
    assert str(caught.value).startswith("corrupt HEIC/HEIF image: ") and "\n" not in str(caught.value)


def test_without_pillow_heif_a_heic_names_the_package(
    phone_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow may have the opener already (registered by an earlier test): a corrupt file still
    # reaches the reason, which is where the missing package is named.
    monkeypatch.setattr(image_files, "_heif_registered", False)
    with pytest.raises(ImageDecodeError, match="pillow-heif is not installed"):
        decode_image((phone_folder / "broken.heic").read_bytes())


def test_a_corrupt_avif_is_named(sample_photos: dict) -> None:
    buffer = io.BytesIO()
    sample_photos["rocket"].save(buffer, "AVIF")
    with pytest.raises(ImageDecodeError, match="AVIF"):
        decode_image(buffer.getvalue()[:200])
