"""Duplicate finding, measured: precision and recall of `modalgraph library duplicates` on real
sample photos with planted copies and look-alikes.

    python bench/duplicates.py [--keep DIR]

The library (written to a temporary folder, or DIR):
- 8 sample photos (scikit-image, scikit-learn, matplotlib), each with 14 copies a library really
  holds: resized to 1/2 and 1/4, JPEG at quality 35 and 15, PNG, cropped by 2, 3, 5 and 8% a side,
  brighter, darker, more contrast, and two burst-like frames (a 1% crop turned 1 degree; a 3% shift
  turned 2 degrees). Each photo and its copies are one true group.
- Different photos of similar scenes, none of which may be grouped: two views of each of 5 more
  photos, shifted by a third of the frame (two shots of one beach a step apart); the left and right
  photos of a stereo pair (one scene from two places); three textures of one kind (brick, grass,
  gravel).

The library is indexed with `ImageIndex.index` (what `modalgraph index` runs) and grouped with
`memory.duplicates.find_duplicates`. Scores are over pairs of files: a pair is found when both files
end in one group. The CLIP is the tiny shapes-world model the tests train (no real CLIP can be
downloaded here); its cosine on real photos means little, so the perceptual hash carries the
precision and CLIP is only a gate: the "CLIP alone" row shows what it would do by itself.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageEnhance

Transform = Callable[[Image.Image], Image.Image]


def _crop(share: float) -> Transform:
    def cut(image: Image.Image) -> Image.Image:
        w, h = image.size
        dx, dy = round(w * share), round(h * share)
        return image.crop((dx, dy, w - dx, h - dy))

    return cut


def _shifted(share: float, degrees: float) -> Transform:
    def shift(image: Image.Image) -> Image.Image:
        w, h = image.size
        dx = round(w * share)
        return image.crop((dx, 0, w, h)).rotate(degrees, resample=Image.Resampling.BICUBIC)

    return shift


COPIES: dict[str, tuple[Transform, str]] = {
    "resized-50%": (lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), "jpg"),
    "resized-25%": (lambda im: im.resize((im.width // 4, im.height // 4), Image.Resampling.LANCZOS), "jpg"),
    "jpeg-q35": (lambda im: im, "q35"),
    "jpeg-q15": (lambda im: im, "q15"),
    "png": (lambda im: im, "png"),
    "crop-2%": (_crop(0.02), "jpg"),
    "crop-3%": (_crop(0.03), "jpg"),
    "crop-5%": (_crop(0.05), "jpg"),
    "crop-8%": (_crop(0.08), "jpg"),
    "brighter": (lambda im: ImageEnhance.Brightness(im).enhance(1.3), "jpg"),
    "darker": (lambda im: ImageEnhance.Brightness(im).enhance(0.75), "jpg"),
    "contrast": (lambda im: ImageEnhance.Contrast(im).enhance(1.3), "jpg"),
    "burst-1": (lambda im: _crop(0.01)(im).rotate(1.0, resample=Image.Resampling.BICUBIC), "jpg"),
    "burst-2": (_shifted(0.03, 2.0), "jpg"),
}


def _photos() -> tuple[dict[str, Image.Image], dict[str, Image.Image], dict[str, Image.Image]]:
    """(photos to copy, photos to shoot twice, distinct photos of one kind)."""
    from matplotlib import cbook
    from skimage import data
    from sklearn.datasets import load_sample_image

    def rgb(array: object) -> Image.Image:
        return Image.fromarray(array).convert("RGB")  # type: ignore[arg-type]

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = Image.open(handle).convert("RGB")
    originals = {
        "astronaut": rgb(data.astronaut()),
        "chelsea": rgb(data.chelsea()),
        "coffee": rgb(data.coffee()),
        "rocket": rgb(data.rocket()),
        "china": rgb(load_sample_image("china.jpg")),
        "flower": rgb(load_sample_image("flower.jpg")),
        "grace_hopper": hopper,
        "camera": rgb(data.camera()),
    }
    twice = {
        "retina": rgb(data.retina()),
        "hubble": rgb(data.hubble_deep_field()),
        "moon": rgb(data.moon()),
        "coins": rgb(data.coins()),
        "immunohistochemistry": rgb(data.immunohistochemistry()),
    }
    left, right, _disparity = data.stereo_motorcycle()
    kinds = {
        "motorcycle-left": rgb(left),
        "motorcycle-right": rgb(right),
        "brick": rgb(data.brick()),
        "grass": rgb(data.grass()),
        "gravel": rgb(data.gravel()),
    }
    return originals, twice, kinds


def _save(image: Image.Image, path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "png":
        image.save(path.with_suffix(".png"))
    else:
        image.save(path.with_suffix(".jpg"), "JPEG", quality=int(how[1:]) if how.startswith("q") else 90)


def build_library(out: Path) -> dict[str, str]:
    """Write the library; returns {file name relative to `out`, without suffix: its true group}."""
    originals, twice, kinds = _photos()
    truth: dict[str, str] = {}
    for name, image in originals.items():
        _save(image, out / name / "original", "jpg")
        truth[f"{name}/original"] = name
        for variant, (make, how) in COPIES.items():
            _save(make(image), out / name / variant, how)
            truth[f"{name}/{variant}"] = name
    for name, image in twice.items():
        w, h = image.size
        view = (round(w * 0.7), round(h * 0.85))
        _save(image.crop((0, 0, *view)), out / "scenes" / f"{name}-left", "jpg")
        _save(image.crop((w - view[0], h - view[1], w, h)), out / "scenes" / f"{name}-right", "jpg")
        truth[f"scenes/{name}-left"] = f"{name}-left"
        truth[f"scenes/{name}-right"] = f"{name}-right"
    for name, image in kinds.items():
        _save(image, out / "kinds" / name, "jpg")
        truth[f"kinds/{name}"] = name
    return truth


def score(groups: list[set[str]], truth: dict[str, str]) -> dict[str, float]:
    """Pairwise precision and recall of `groups` (sets of keys of `truth`)."""
    found = {frozenset(pair) for group in groups for pair in itertools.combinations(sorted(group), 2)}
    true = {frozenset((a, b)) for a, b in itertools.combinations(sorted(truth), 2) if truth[a] == truth[b]}
    hits = len(found & true)
    return {
        "precision": hits / len(found) if found else 1.0,
        "recall": hits / len(true) if true else 1.0,
        "false_pairs": len(found - true),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="write the library and index here, and keep them")
    args = parser.parse_args()

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.training.world_builder import default_cache_root, ensure_shapes_world
    from memory.duplicates import DEFAULT_MIN_COSINE, DEFAULT_THRESHOLD, find_duplicates
    from memory.perceptual_hash import distance

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-duplicates-"))
    library = work / "library"
    shutil.rmtree(library, ignore_errors=True)
    shutil.rmtree(work / "data", ignore_errors=True)
    truth = build_library(library)
    world = ensure_shapes_world(default_cache_root(), log=lambda m: print(f"[shapes world] {m}"))
    settings = load_settings(data_dir=work / "data", device="cpu", models={"clip": str(world / "clip")})
    app = AppContext(settings)
    started = time.perf_counter()
    report = app.image_index.index([library])
    print(f"indexed {report.embedded} photos in {time.perf_counter() - started:.1f}s (tiny CLIP)")

    def keyed(threshold: int, min_cosine: float) -> tuple[list[set[str]], float]:
        t0 = time.perf_counter()
        found = find_duplicates(app.image_index, threshold=threshold, min_cosine=min_cosine)
        seconds = time.perf_counter() - t0
        groups = [
            {str(Path(m.path).relative_to(library).with_suffix("")) for m in g.members} for g in found.groups
        ]
        return groups, seconds

    rows = [
        (
            f"default: hash <= {DEFAULT_THRESHOLD} bits and CLIP >= {DEFAULT_MIN_COSINE}",
            DEFAULT_THRESHOLD,
            DEFAULT_MIN_COSINE,
        ),
        (f"hash alone (<= {DEFAULT_THRESHOLD} bits)", DEFAULT_THRESHOLD, -1.0),
        (f"CLIP alone (>= {DEFAULT_MIN_COSINE}, tiny model)", 63, DEFAULT_MIN_COSINE),
        *[(f"hash <= {t} bits and CLIP", t, DEFAULT_MIN_COSINE) for t in (4, 8, 16, 20)],
    ]
    print(f"\n{len(truth)} files, {len(set(truth.values()))} true groups; pairwise scores")
    print(f"{'rule':<48} {'precision':>9} {'recall':>7} {'false pairs':>11} {'seconds':>8}")
    default_groups: list[set[str]] = []
    for label, threshold, min_cosine in rows:
        groups, seconds = keyed(threshold, min_cosine)
        if not default_groups:
            default_groups = groups
        s = score(groups, truth)
        print(
            f"{label:<48} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['false_pairs']:>11} {seconds:>8.2f}"
        )

    wrong = [group for group in default_groups if len({truth[k] for k in group}) > 1]
    for group in wrong:
        print(f"  grouped though different photos: {', '.join(sorted(group))}")

    # Each file's perceptual hash, as stored at index time.
    name = app.image_index.embedding_model().collection_name
    stored = app.image_index.manifest.perceptual_hashes(name)
    phash = {
        str(Path(row.path).relative_to(library).with_suffix("")): stored[row.hash]
        for row in app.image_index.manifest.all_files(name)
    }
    apart = [
        (distance(phash[a], phash[b]), a, b)
        for a, b in itertools.combinations(sorted(truth), 2)
        if truth[a] != truth[b]
    ]
    print("\nclosest different photos (bits apart):")
    for bits, a, b in sorted(apart)[:4]:
        print(f"  {bits:>2}  {a} / {b}")

    # Recall per kind of copy, with the default rule: is the copy in its original's group?
    originals = sorted({v for k, v in truth.items() if k.endswith("/original")})
    print(f"\nper copy, default rule: found with its original (of {len(originals)} photos), bits apart")
    for variant in COPIES:
        found = sum(
            any({f"{name}/original", f"{name}/{variant}"} <= group for group in default_groups)
            for name in originals
        )
        bits = sorted(distance(phash[f"{n}/original"], phash[f"{n}/{variant}"]) for n in originals)
        print(
            f"  {variant:<12} {found}/{len(originals)}   {bits[0]}-{bits[-1]} (median {bits[len(bits) // 2]})"
        )

    # The all-pairs comparison at library scale, on random hashes (its cost does not depend on them).
    import numpy as np

    from memory.duplicates import _close_pairs

    for n in (10_000, 50_000):
        values = [f"{v:016x}" for v in np.random.default_rng(0).integers(0, 2**63, n, dtype=np.int64)]
        t0 = time.perf_counter()
        _close_pairs([str(i) for i in range(n)], values, DEFAULT_THRESHOLD, lambda *_: None)
        print(f"all-pairs hash comparison, {n:,} photos: {time.perf_counter() - t0:.1f}s")
    if args.keep is None:
        app.image_index.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
