"""A planted duplicates library: real sample photos, their copies, and different photos of one scene.

Used by tests/test_duplicates.py and bench/duplicates.py. Every file's truth is its `scene`: files
of one scene are duplicates of each other; a `distinct` file is a different photo of a scene that
looks like another one (another framing of the same view), which must not be grouped with it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance

from tests.exif_photos import save_photo


@dataclass(frozen=True)
class Planted:
    path: Path
    scene: str  # files sharing a scene are duplicates; a scene of one file has none
    variant: str  # "original", "resized", "jpeg-q35", "crop-3%", "brighter", "exact-copy", ...


def _reencoded(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _crop(image: Image.Image, share: float) -> Image.Image:
    """`share` of each side cut away."""
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    return image.crop((dx, dy, w - dx, h - dy))


# Copies a duplicate finder should group with their original.
COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resized": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "jpeg-q35": lambda im: _reencoded(im, 35),
    "crop-3%": lambda im: _crop(im, 0.03),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
    "burst": lambda im: _crop(im, 0.01).rotate(1.0, resample=Image.Resampling.BICUBIC),
}


def _framings(image: Image.Image) -> dict[str, Image.Image]:
    """Different photos of one scene: overlapping views shifted by a third of the frame, as two
    shots of the same beach a step apart would be. Each is a scene of its own."""
    w, h = image.size
    view = (round(w * 0.7), round(h * 0.85))
    return {
        "view-left": image.crop((0, 0, *view)),
        "view-right": image.crop((w - view[0], h - view[1], w, h)),
    }


def build_planted(
    photos: dict[str, Image.Image],
    out: Path,
    copies: dict[str, Callable[[Image.Image], Image.Image]] = COPIES,
) -> list[Planted]:
    """Write, under `out`: each photo but the last two with every copy in `copies` (JPEG originals
    dated 2020, copies 2021, so the original is the one to keep); the first photo also as an exact
    copy in another folder; the last two photos each as two framings (distinct scenes)."""
    names = sorted(photos)
    planted: list[Planted] = []
    for name in names[:-2]:
        image = photos[name].convert("RGB")
        original = save_photo(image, out / name / "original.jpg", taken="2020:05:01 10:00:00")
        planted.append(Planted(original, name, "original"))
        for variant, make in copies.items():
            path = save_photo(make(image), out / name / f"{variant}.jpg", taken="2021:05:01 10:00:00")
            planted.append(Planted(path, name, variant))
    first = names[0]
    copy = out / "backup" / f"{first}.jpg"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes((out / first / "original.jpg").read_bytes())
    planted.append(Planted(copy, first, "exact-copy"))
    for name in names[-2:]:
        for variant, image in _framings(photos[name].convert("RGB")).items():
            path = save_photo(image, out / name / f"{variant}.jpg", taken="2020:05:01 10:00:00")
            planted.append(Planted(path, f"{name}/{variant}", "distinct"))
    return planted
