"""The thumbnail cache: made once and reused (renames too), small, bounded, refusing paths outside."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from memory.thumbnails import PhotoRefusedError, ThumbnailCache, ThumbnailUnavailableError


def photo(
    path: Path, size: tuple[int, int] = (1200, 800), colour: tuple[int, int, int] = (200, 40, 40)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return tmp_path / "Pictures"


def cache(tmp_path: Path, library: Path, max_bytes: int = 2**30) -> ThumbnailCache:
    return ThumbnailCache(tmp_path / "thumbs", lambda: [library], max_bytes=max_bytes)


def test_a_thumbnail_is_small_upright_made_once_and_reused_after_a_rename(
    tmp_path: Path, library: Path
) -> None:
    thumbs = cache(tmp_path, library)
    original = photo(library / "a.jpg", (1200, 800))
    first = thumbs.thumbnail(original)
    with Image.open(first) as image:
        assert image.size == (256, 171)
    made = first.stat().st_mtime_ns
    renamed = original.rename(library / "renamed.jpg")
    assert thumbs.thumbnail(renamed) == first  # same content, same thumbnail
    assert len(list((tmp_path / "thumbs").glob("??/*.jpg"))) == 1
    # With the index's content hash, a cached thumbnail is found without reading the photo.
    digest = first.name.split("-")[0]
    renamed.unlink()
    assert thumbs.thumbnail(renamed, digest) == first
    assert first.stat().st_mtime_ns >= made


def test_a_stale_hash_gets_the_thumbnail_of_what_the_file_holds_now(tmp_path: Path, library: Path) -> None:
    thumbs = cache(tmp_path, library)
    path = photo(library / "a.jpg", colour=(200, 40, 40))
    red = thumbs.thumbnail(path)
    photo(path, colour=(40, 40, 200))
    blue = thumbs.thumbnail(path, "0" * 64)  # a hash the index knew, before the edit
    assert blue != red
    with Image.open(blue) as image:
        r, _g, b = image.convert("RGB").getpixel((10, 10))
        assert b > r


def test_paths_outside_the_library_are_refused_before_reading(tmp_path: Path, library: Path) -> None:
    thumbs = cache(tmp_path, library)
    photo(library / "in.jpg")
    outside = photo(tmp_path / "secret.jpg")
    for forged in (
        str(outside),
        f"{library}/../secret.jpg",
        str(library / "in.jpg") + "/../../secret.jpg",
    ):
        with pytest.raises(PhotoRefusedError):
            thumbs.thumbnail(forged)
    link = library / "link.jpg"
    link.symlink_to(outside)
    with pytest.raises(PhotoRefusedError):
        thumbs.thumbnail(link)
    (library / "notes.txt").write_text("not a photo")
    with pytest.raises(PhotoRefusedError):
        thumbs.thumbnail(library / "notes.txt")
    with pytest.raises(PhotoRefusedError, match="not a content hash"):
        thumbs.thumbnail(library / "in.jpg", "../../etc/passwd")
    assert not list((tmp_path / "thumbs").glob("??/*.jpg"))


def test_a_corrupt_or_vanished_photo_says_so_in_one_line(tmp_path: Path, library: Path) -> None:
    thumbs = cache(tmp_path, library)
    library.mkdir()
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ThumbnailUnavailableError, match=r"no preview of broken\.jpg"):
        thumbs.thumbnail(library / "broken.jpg")
    with pytest.raises(ThumbnailUnavailableError, match="gone"):
        thumbs.thumbnail(library / "vanished.jpg")
    with Image.open(thumbs.placeholder()) as image:
        assert max(image.size) <= 256


def test_the_cache_is_bounded_and_drops_the_least_recently_used(tmp_path: Path, library: Path) -> None:
    probe = cache(tmp_path / "probe", library)
    one = probe.thumbnail(photo(library / "p0.jpg", colour=(0, 0, 0))).stat().st_size
    thumbs = cache(tmp_path, library, max_bytes=one * 5)
    made = []
    for i in range(12):
        made.append(thumbs.thumbnail(photo(library / f"p{i}.jpg", colour=(20 * i, 10, 10))))
        time.sleep(0.01)  # distinct use times
        if i >= 1:
            thumbs.thumbnail(library / "p0.jpg")  # kept in use: never the one to go
    assert thumbs.size() <= one * 5 * 1.5
    assert made[0].is_file() and made[-1].is_file()
    assert not made[1].is_file()  # the oldest unused one went


def test_many_threads_asking_for_one_thumbnail_all_get_a_whole_file(tmp_path: Path, library: Path) -> None:
    thumbs = cache(tmp_path, library)
    path = photo(library / "a.jpg", (2400, 1600))
    results: list[Path] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(thumbs.thumbnail(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1
    with Image.open(results[0]) as image:
        image.load()
    assert not list((tmp_path / "thumbs").rglob(".tmp-*"))  # no temp file left behind
