"""Build the shapes world on disk (renders, captions.jsonl, a trained tiny CLIP in `clip/`) and cache it.

`ensure_shapes_world()` is what tests and benchmarks call: the first call renders and trains (a few
minutes on two CPU cores), later calls return the cached folder. The cache entry is named by a hash
of the world and training configs, so changing either builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.cached_build import cached_build
from agent.training.clip_trainer import TinyClipConfig, save_clip, train_tiny_clip
from agent.training.shapes_world import (
    ShapeSpec,
    WorldConfig,
    caption_matches,
    read_captions,
    vocabulary,
    write_renders,
)
from agent.vision.clip_encoder import load_clip_dir

if TYPE_CHECKING:
    from agent.vision.clip_encoder import ClipEncoder

# Bump when rendering or training code changes in a way the configs do not capture.
BUILD_VERSION = 1
CACHE_ENV = "MODALGRAPH_TEST_CACHE"
DONE_MARKER = "world.json"


def default_cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    return Path(explicit).expanduser() if explicit else Path.home() / ".cache" / "modalgraph-tests"


def cache_key(world: WorldConfig, clip: TinyClipConfig) -> str:
    blob = json.dumps({"v": BUILD_VERSION, "world": asdict(world), "clip": asdict(clip)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_world(
    out_dir: Path,
    world: WorldConfig | None = None,
    clip: TinyClipConfig | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Render the world into `out_dir`, train the tiny CLIP into `out_dir/clip`, evaluate it on the
    held-out renders and write `out_dir/world.json`. Returns the metrics."""
    from PIL import Image

    world = world or WorldConfig()
    clip = clip or TinyClipConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    renders = write_renders(world, out_dir)
    render_seconds = time.perf_counter() - started
    log(f"rendered {len(renders)} images in {render_seconds:.1f}s")
    train = [r for r in renders if not r.heldout]
    images = []
    for item in train:
        with Image.open(out_dir / item.path) as image:
            images.append(image.convert("RGB"))
    model, processor, stats = train_tiny_clip(
        images, [r.spec for r in train], vocabulary(world), clip, log=log
    )
    save_clip(model, processor, out_dir / "clip", {"world": asdict(world), "clip": asdict(clip), **stats})
    metrics = evaluate_world(out_dir)
    info = {
        "world": asdict(world),
        "clip": asdict(clip),
        "renders": len(renders),
        "render_seconds": round(render_seconds, 1),
        **{k: round(v, 4) for k, v in stats.items()},
        **metrics,
    }
    (out_dir / DONE_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True))
    elapsed = time.perf_counter() - started
    log(f"held-out text->image recall@1 {metrics['text_recall_at_1']:.3f}, built in {elapsed:.0f}s")
    return info


def evaluate_world(world_dir: Path, encoder: ClipEncoder | None = None) -> dict[str, float]:
    """Retrieval quality on the held-out renders, through the same loading path users take.

    - text_recall_at_1: for each colour/shape pair, "a {colour} {shape}" -> is the top image one?
    - caption_recall_at_1: each held-out caption -> does the top image fit every word of it?
    - image_precision_at_1 / _at_3: each held-out image -> do its nearest 1 / 3 other renders share
      its colour and shape?
    """
    import numpy as np
    from PIL import Image

    encoder = encoder or load_clip_dir(world_dir / "clip")
    records = [r for r in read_captions(world_dir) if r["heldout"]]
    images = []
    for record in records:
        with Image.open(str(record["path"])) as image:
            images.append(image.convert("RGB"))
    gallery = encoder.encode_images(images)
    pairs = sorted({(str(r["colour"]), str(r["shape"])) for r in records})
    text = encoder.encode_texts([f"a {colour} {shape}" for colour, shape in pairs])
    top = (text @ gallery.T).argmax(1)
    text_hits = [
        (records[j]["colour"], records[j]["shape"]) == pair
        for pair, j in zip(pairs, top.tolist(), strict=True)
    ]
    captions = [str(r["caption"]) for r in records]
    top = (encoder.encode_texts(captions) @ gallery.T).argmax(1)
    caption_hits = [caption_matches(captions[i], _spec(records[j])) for i, j in enumerate(top.tolist())]
    similarity = gallery @ gallery.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :3]
    same = [[_same_thing(records[i], records[j]) for j in row] for i, row in enumerate(neighbours.tolist())]
    return {
        "text_recall_at_1": float(np.mean(text_hits)),
        "caption_recall_at_1": float(np.mean(caption_hits)),
        "image_precision_at_1": float(np.mean([row[0] for row in same])),
        "image_precision_at_3": float(np.mean(same)),
        "heldout_images": float(len(records)),
    }


def _same_thing(a: dict[str, object], b: dict[str, object]) -> bool:
    return a["colour"] == b["colour"] and a["shape"] == b["shape"]


def _spec(record: dict[str, object]) -> Any:
    return ShapeSpec(
        str(record["colour"]), str(record["shape"]), str(record["size"]), str(record["background"])
    )


def ensure_shapes_world(
    cache_root: Path | None = None,
    world: WorldConfig | None = None,
    clip: TinyClipConfig | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """The cached world folder for these configs, built first if needed (atomically: a build that
    is killed leaves only a temporary folder, removed by the next build)."""
    world = world or WorldConfig()
    clip = clip or TinyClipConfig()
    root = cache_root or default_cache_root()
    key = cache_key(world, clip)
    return cached_build(
        root / f"shapes-world-{key}",
        lambda building: build_world(building, world, clip, log=log),
        done=lambda folder: (folder / DONE_MARKER).is_file(),
    )
