"""describe_image latency per backend, and the CLIP zero-shot fall-back's accuracy on the shapes world.

    python bench/describe.py [--repeats 5] [--skip-world]

Prints, each measured through the describe_image tool (path guard, decoding, prompt, model):
- the configured vlm, when its weights are present: first call (load) and warm median seconds;
- a tiny random LLaVA built on the spot: the same, next to a bare `generate` on the same inputs, so
  the ratio is the tool's own overhead (its text is gibberish; this measures plumbing only);
- CLIP zero-shot on the shapes world's held-out renders (built and cached on first use, a few minutes):
  top-1 accuracy for colour+shape, colour and shape against chance, and the tool's warm latency
  against a bare CLIP image embedding.
Runs in a temporary data dir unless MODALGRAPH_DATA_DIR is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(first call seconds, median of `repeats` further calls)."""
    begin = time.perf_counter()
    fn()
    first = time.perf_counter() - begin
    warm = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - begin)
    return first, statistics.median(warm)


def sample_image(folder: Path) -> Path:
    from PIL import Image

    path = folder / "sample.png"
    image = Image.new("RGB", (640, 480), (235, 235, 230))
    image.paste((200, 40, 40), (200, 140, 440, 340))
    image.save(path)
    return path


def describe_call(app: Any, image: Path, question: str | None = None) -> Callable[[], Any]:
    from tools.context import RunContext
    from tools.describe_image import DescribeImageArgs, DescribeImageTool

    ctx = RunContext(app=app, trusted_paths=[image])
    return lambda: DescribeImageTool().run(DescribeImageArgs(image=str(image), question=question), ctx)


def bench_configured_vlm(image: Path, repeats: int) -> None:
    from agent.context import AppContext
    from agent.core.errors import ModelMissingError
    from agent.core.settings import load_settings

    app = AppContext(load_settings())
    try:
        weights = app.catalogue.resolve("vlm")
    except ModelMissingError as exc:
        print(f"configured vlm: not present ({exc})")
        return
    first, warm = timed(describe_call(app, image), repeats)
    print(f"configured vlm {weights}: first call {first:.2f}s, warm {warm:.2f}s (median of {repeats})")


def bench_tiny_llava(image: Path, work: Path, repeats: int) -> None:
    import torch
    from PIL import Image

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.vision.vlm import load_vlm, prepare_inputs
    from tests.tiny_llava import build_tiny_llava

    model_dir = build_tiny_llava(work / "tiny-llava", max_positions=256)
    os.environ["MODALGRAPH_MODEL_VLM"] = str(model_dir)
    try:
        app = AppContext(load_settings(device="cpu", vlm_max_new_tokens=32))
        first, warm = timed(describe_call(app, image, "What colour is the square?"), repeats)
        vlm = load_vlm(app, model_dir)
        inputs, _, _, new_tokens = prepare_inputs(vlm, Image.open(image), "What colour is the square?", 32)

        def bare() -> None:
            with torch.inference_mode():
                vlm.model.generate(
                    **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
                )

        _, bare_warm = timed(bare, repeats)
    finally:
        del os.environ["MODALGRAPH_MODEL_VLM"]
    print(
        f"tiny random LLaVA (transformers, {new_tokens} new tokens): first call {first:.2f}s, warm "
        f"{warm * 1000:.0f} ms; bare generate {bare_warm * 1000:.0f} ms; tool/bare {warm / bare_warm:.2f}x"
    )


def bench_zero_shot(repeats: int) -> None:
    from PIL import Image

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.training.shapes_world import read_captions
    from agent.training.world_builder import default_cache_root, ensure_shapes_world
    from agent.vision.clip_encoder import load_clip_dir
    from agent.vision.zero_shot import rank_labels

    world = ensure_shapes_world(
        default_cache_root(), log=lambda m: print(f"[shapes world] {m}", file=sys.stderr)
    )
    records = [r for r in read_captions(world) if r["heldout"]]
    encoder = load_clip_dir(world / "clip")
    images = [Image.open(str(r["path"])).convert("RGB") for r in records]
    ranked = rank_labels(encoder, images)
    n = len(records)
    guesses = [top[0].label.text.split() for top in ranked]
    exact = sum(g == [r["colour"], r["shape"]] for g, r in zip(guesses, records, strict=True)) / n
    colour = sum(g[0] == r["colour"] for g, r in zip(guesses, records, strict=True)) / n
    shape = sum(g[1] == r["shape"] for g, r in zip(guesses, records, strict=True)) / n
    print(
        f"CLIP zero-shot, {n} held-out shapes-world renders: colour+shape {exact:.3f} (chance {1 / 30:.3f}, "
        f"{exact * 30:.0f}x), colour {colour:.3f} (chance {1 / 6:.3f}), shape {shape:.3f} (chance {1 / 5:.3f})"
    )
    os.environ["MODALGRAPH_MODEL_CLIP"] = str(world / "clip")
    try:
        app = AppContext(load_settings(device="cpu"))
        image = Path(str(records[0]["path"]))
        first, warm = timed(describe_call(app, image), repeats)
        _, bare = timed(lambda: encoder.encode_images([images[0]]), repeats)
    finally:
        del os.environ["MODALGRAPH_MODEL_CLIP"]
    print(
        f"CLIP zero-shot describe_image: first call {first:.2f}s, warm {warm * 1000:.0f} ms; "
        f"bare image embedding {bare * 1000:.0f} ms; tool/bare {warm / bare:.1f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-world", action="store_true", help="skip the shapes-world zero-shot part")
    opts = parser.parse_args()
    if "MODALGRAPH_DATA_DIR" not in os.environ:
        os.environ["MODALGRAPH_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-describe-")
    with tempfile.TemporaryDirectory(prefix="bench-describe-") as tmp:
        work = Path(tmp)
        image = sample_image(work)
        bench_configured_vlm(image, opts.repeats)
        bench_tiny_llava(image, work, opts.repeats)
        if not opts.skip_world:
            bench_zero_shot(opts.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
