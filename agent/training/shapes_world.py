"""A synthetic world of coloured shapes: images plus captions that a tiny CLIP can learn in minutes.

No real CLIP weights can be assumed in tests or CI, so meaning is tested here instead: renders of
6 colours x 5 shapes in 3 sizes on 4 backgrounds, each with a caption such as "a red circle" or
"a small blue triangle on a white background". Later issues (describe, generate, projector) reuse
the same world, so everything is deterministic for a given `WorldConfig`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 60),
    "blue": (35, 75, 215),
    "yellow": (235, 205, 25),
    "purple": (135, 55, 170),
    "orange": (240, 130, 25),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# Half the shape's extent as a fraction of the image side.
SIZES: dict[str, tuple[float, float]] = {"small": (0.13, 0.18), "medium": (0.22, 0.27), "large": (0.32, 0.38)}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "beige": (225, 210, 180),
}
CAPTION_WORDS: tuple[str, ...] = ("a", "on", "background")


@dataclass(frozen=True)
class ShapeSpec:
    """What one render shows; the caption is a (possibly partial) description of it."""

    colour: str
    shape: str
    size: str
    background: str


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides the renders; its hash names the cache entry."""

    image_size: int = 96
    train_per_combo: int = 200
    heldout_per_combo: int = 4
    # How far from the centre a shape may sit, as a fraction of the image side: photos are framed
    # around their subject, and a tiny model learns framed shapes in minutes rather than hours.
    position_jitter: float = 0.15
    # Largest tilt of a shape, in radians, and whether backgrounds get a faint band of another tone.
    # Both off by default: each costs the tiny model minutes of training to see past.
    max_rotation: float = 0.0
    background_band: bool = False
    seed: int = 1234
    colours: tuple[str, ...] = tuple(COLOURS)
    shapes: tuple[str, ...] = SHAPES

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Render:
    """One image of the world and its caption; `heldout` renders are never trained on."""

    spec: ShapeSpec
    caption: str
    heldout: bool
    seed: int
    path: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        return {
            "path": self.path,
            "caption": self.caption,
            "colour": self.spec.colour,
            "shape": self.spec.shape,
            "size": self.spec.size,
            "background": self.spec.background,
            "heldout": self.heldout,
        }


def vocabulary(config: WorldConfig | None = None) -> list[str]:
    """Every word a caption can use, in a fixed order (the tokenizer's vocabulary)."""
    config = config or WorldConfig()
    return [*CAPTION_WORDS, *config.colours, *config.shapes, *SIZES, *BACKGROUNDS]


def caption(spec: ShapeSpec, with_size: bool, with_background: bool) -> str:
    words = ["a"]
    if with_size:
        words.append(spec.size)
    words += [spec.colour, spec.shape]
    if with_background:
        words += ["on", "a", spec.background, "background"]
    return " ".join(words)


def all_captions(config: WorldConfig | None = None) -> list[str]:
    """Every distinct caption the grammar makes, in a fixed order: colour x shape x (no size or one of
    three) x (no background or one of four), 600 for the default world."""
    config = config or WorldConfig()
    captions = []
    for colour in config.colours:
        for shape in config.shapes:
            for size in (None, *SIZES):
                for background in (None, *BACKGROUNDS):
                    spec = ShapeSpec(colour, shape, size or "small", background or "white")
                    captions.append(caption(spec, size is not None, background is not None))
    return captions


def random_caption(spec: ShapeSpec, rng: random.Random) -> str:
    """Captions name colour and shape always, size and background sometimes: queries do the same."""
    return caption(spec, rng.random() < 0.5, rng.random() < 0.5)


def caption_matches(text: str, spec: ShapeSpec) -> bool:
    """Is `text` a true description of `spec`? (Used for soft contrastive targets and for tests.)"""
    words = set(text.lower().split())
    if spec.colour not in words or spec.shape not in words:
        return False
    if words & set(SIZES) - {spec.size}:
        return False
    return not words & set(BACKGROUNDS) - {spec.background}


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [
            (math.cos(angle + math.pi / 4 + k * math.pi / 2), math.sin(angle + math.pi / 4 + k * math.pi / 2))
            for k in range(4)
        ]
        scale = r * 1.0
    elif shape == "triangle":
        points = [
            (
                math.cos(angle - math.pi / 2 + k * 2 * math.pi / 3),
                math.sin(angle - math.pi / 2 + k * 2 * math.pi / 3),
            )
            for k in range(3)
        ]
        scale = r * 1.15
    elif shape == "star":
        points = []
        for k in range(10):
            radius = 1.0 if k % 2 == 0 else 0.42
            theta = angle - math.pi / 2 + k * math.pi / 5
            points.append((radius * math.cos(theta), radius * math.sin(theta)))
        scale = r * 1.15
    elif shape == "cross":
        w = 0.33
        base = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
        points = [
            (x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle))
            for x, y in base
        ]
        scale = r
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + scale * x, cy + scale * y) for x, y in points]


def render(spec: ShapeSpec, seed: int, config: WorldConfig | None = None) -> Image.Image:
    """Draw `spec` at 4x and downsample, so edges are anti-aliased like a photo's."""
    from PIL import Image, ImageDraw

    config = config or WorldConfig()
    image_size, position_jitter = config.image_size, config.position_jitter
    rng = random.Random(seed)
    big = image_size * 4
    background = _jitter(BACKGROUNDS[spec.background], rng, 12)
    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    # A faint band of a slightly different tone varies the background without changing its name.
    band = _jitter(background, rng, 18)
    y0 = rng.uniform(0, big)
    if config.background_band:
        draw.rectangle([0, y0, big, y0 + rng.uniform(0.1, 0.4) * big], fill=band)
    low, high = SIZES[spec.size]
    r = rng.uniform(low, high) * big
    # Keep the whole shape in frame: the jitter shrinks for large shapes.
    reach = max(0.0, min(position_jitter * big, big / 2 - r * 1.2))
    cx = big / 2 + rng.uniform(-reach, reach)
    cy = big / 2 + rng.uniform(-reach, reach)
    fill = _jitter(COLOURS[spec.colour], rng, 20)
    if spec.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        angle = rng.uniform(-config.max_rotation, config.max_rotation)
        draw.polygon(_polygon(spec.shape, cx, cy, r, angle), fill=fill)
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)


def iter_renders(config: WorldConfig) -> Iterator[Render]:
    """All renders of the world, train then held-out, in a fixed order."""
    rng = random.Random(config.seed)
    combos = [(c, s) for c in config.colours for s in config.shapes]
    for heldout, count in ((False, config.train_per_combo), (True, config.heldout_per_combo)):
        for colour, shape in combos:
            for _ in range(count):
                spec = ShapeSpec(colour, shape, rng.choice(list(SIZES)), rng.choice(list(BACKGROUNDS)))
                yield Render(spec, random_caption(spec, rng), heldout, rng.randrange(2**31))


def write_renders(config: WorldConfig, out_dir: Path) -> list[Render]:
    """Render the world as PNG files under out_dir/{train,heldout}/ and write out_dir/captions.jsonl."""
    renders = []
    for index, item in enumerate(iter_renders(config)):
        folder = out_dir / ("heldout" if item.heldout else "train")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:05d}-{item.spec.colour}-{item.spec.shape}.png"
        render(item.spec, item.seed, config).save(path)
        item.path = str(path.relative_to(out_dir))
        renders.append(item)
    with open(out_dir / "captions.jsonl", "w") as handle:
        for item in renders:
            handle.write(json.dumps(item.record()) + "\n")
    return renders


def read_captions(world_dir: Path) -> list[dict[str, object]]:
    """The records of captions.jsonl, with `path` made absolute."""
    records = []
    for line in (world_dir / "captions.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["path"] = str(world_dir / record["path"])
        records.append(record)
    return records
