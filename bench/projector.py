"""Train and measure the output projector on the shapes world: `python bench/projector.py`.

One command from a clean checkout. It builds (or reuses) the shapes world and its text-to-image
model, trains the image projector with the planner GGUF when present (else a tiny transformers
LLM; `--llm tiny|gguf` chooses), and then measures, in the same run:

- held-out conditioning: mean cosine to the text encoder's output and top-1/top-5 retrieval of each
  of 100 never-trained captions' own target among the 100;
- images: the same held-out prompts and seeds drawn through the plain text path (the baseline) and
  through the projector, by the `generate_image` tool; the shapes CLIP names the colour and shape of
  each, and the ratio projector/text is printed;
- speed: training steps per second on the CPU, and on CUDA when there is one.

Prints the figures and writes them to bench/out/projector.json, under "gguf" or "tiny".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parent / "out"


def recognition(setup: Any, projector_dir: Path, prompts: list[str], log: Any) -> dict[str, Any]:
    """Draw each prompt both ways with one seed each; the shapes CLIP names colour and shape."""
    import numpy as np
    from PIL import Image

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.training.shapes_world import COLOURS, SHAPES
    from agent.vision.clip_encoder import load_clip_dir
    from tools.context import RunContext
    from tools.generate_image import GenerateImageArgs, GenerateImageTool

    app = AppContext(
        load_settings(
            data_dir=Path(tempfile.mkdtemp(prefix="projector-bench-")),
            device="cpu",
            models={"image-gen": str(setup.generator.path)},
            projector_image=projector_dir,
            projector_llm=str(setup.llm.path),
        )
    )
    encoder = load_clip_dir(setup.world_dir / "clip")
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    text = encoder.encode_texts([f"a {colour} {shape}" for colour, shape in pairs])
    asked = [
        (next(c for c in COLOURS if c in p.split()), next(s for s in SHAPES if s in p.split()))
        for p in prompts
    ]
    figures: dict[str, Any] = {"prompts": len(prompts)}
    for conditioning in ("text", "projector"):
        started = time.perf_counter()
        images = []
        for seed, prompt in enumerate(prompts):
            args = GenerateImageArgs(prompt=prompt, seed=seed, conditioning=conditioning)  # type: ignore[arg-type]
            result = GenerateImageTool().run(args, RunContext(app))
            with Image.open(result.artifacts[0].path) as image:
                images.append(image.convert("RGB"))
        seen = [pairs[i] for i in np.argmax(encoder.encode_images(images) @ text.T, axis=1).tolist()]
        figures[conditioning] = {
            "colour": round(float(np.mean([a[0] == b[0] for a, b in zip(asked, seen, strict=True)])), 4),
            "shape": round(float(np.mean([a[1] == b[1] for a, b in zip(asked, seen, strict=True)])), 4),
            "colour_and_shape": round(float(np.mean([a == b for a, b in zip(asked, seen, strict=True)])), 4),
            "seconds_per_image": round((time.perf_counter() - started) / len(prompts), 3),
        }
        log(f"{conditioning:9s} {figures[conditioning]}")
    figures["ratio"] = {
        key: round(figures["projector"][key] / figures["text"][key], 3) if figures["text"][key] else None
        for key in ("colour", "shape", "colour_and_shape")
    }
    app.model_cache.clear()
    return figures


def steps_per_second(setup: Any, cache: Path, steps: int, log: Any) -> dict[str, float]:
    """Training speed alone (features cached): CPU with 1 thread and torch's default, and CUDA if present."""
    import torch

    from agent.projector.llm_features import open_feature_llm
    from agent.projector.model import ProjectorConfig
    from agent.projector.runs import features_for, targets_for
    from agent.projector.trainer import TrainConfig, train_projector
    from agent.training.shapes_projector import ShapesProjectorConfig

    recipe = ShapesProjectorConfig()
    features = features_for(open_feature_llm(setup.llm), setup.train_captions, "image", cache / "features")
    targets = targets_for(setup.generator, setup.train_captions, cache / "targets", "cpu")
    config = ProjectorConfig(
        "image",
        int(features[0].hidden.shape[1]),
        setup.generator.n_queries,
        setup.generator.d_cond,
        d_model=recipe.d_model,
        encoder_layers=recipe.layers,
        decoder_layers=recipe.layers,
    )
    runs = {"cpu_1_thread": ("cpu", 1), f"cpu_{torch.get_num_threads()}_threads": ("cpu", None)}
    if torch.cuda.is_available():
        runs["cuda"] = ("cuda", None)
    speeds = {}
    for label, (device, threads) in runs.items():
        with tempfile.TemporaryDirectory() as out:
            train = TrainConfig(steps=steps, warmup_steps=5, threads=threads, checkpoint_every=10**9)
            result = train_projector(features, targets, config, train, Path(out), {}, "speed", device=device)
        speeds[label] = round(result.steps_per_second, 2)
        log(f"{label}: {speeds[label]} steps/s (batch {train.batch_size})")
    return speeds


def main(argv: list[str] | None = None) -> int:
    from agent.training.shapes_projector import prepare, recipe_config, train_on_shapes
    from agent.training.world_builder import default_cache_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", choices=("auto", "gguf", "tiny"), default="auto")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--images", type=int, default=100, help="held-out prompts drawn each way")
    parser.add_argument("--speed-steps", type=int, default=60, help="steps per training-speed run")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    root = default_cache_root()
    setup = prepare(root, args.llm, log=log)
    setup_seconds = time.perf_counter() - started
    kind = "gguf" if setup.llm.backend == "llamacpp" else "tiny"
    folder = OUT / f"projector-{kind}"
    log(f"LLM: {setup.llm.describe()}; training into {folder}")
    config = recipe_config(args.steps)
    _result, metrics = train_on_shapes(
        setup, folder, root / "projector-cache", config, progress=True, fresh=True, log=log
    )
    trained = time.perf_counter() - started
    log(
        f"held-out: top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f}, mean cosine "
        f"{metrics['mean_cosine']:.4f} ({trained:.0f}s from the start)"
    )
    images = recognition(setup, folder, setup.heldout_captions[: args.images], log)
    speeds = steps_per_second(setup, root / "projector-cache", args.speed_steps, log)
    report = {
        "llm": setup.llm.to_dict(),
        "generator": setup.generator.to_dict(),
        "recipe": {"steps": config.train.steps, "d_model": config.d_model, "layers": config.layers},
        "heldout": metrics,
        "images": images,
        "training_steps_per_second": speeds,
        "seconds": {
            "world_and_text_to_image_ready": round(setup_seconds, 1),
            "one_command_training": round(trained, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    # One file for both LLMs: each run replaces its own entry.
    path = OUT / "projector.json"
    reports = json.loads(path.read_text()) if path.is_file() else {}
    reports[kind] = report
    path.write_text(json.dumps(reports, indent=2, sort_keys=True) + "\n")
    ratio = images["ratio"]
    print(
        f"{kind}: held-out top-1 {metrics['top1']:.3f} top-5 {metrics['top5']:.3f} cosine {metrics['mean_cosine']:.4f}; "
        f"image recognition projector/text: colour {ratio['colour']}, shape {ratio['shape']}, "
        f"both {ratio['colour_and_shape']}; training {speeds}; one-command training "
        f"{report['seconds']['one_command_training']}s -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
