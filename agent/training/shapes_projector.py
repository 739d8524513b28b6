"""The output projector trained and measured on the shapes world, in one call.

Captions come from the world's grammar (600 distinct ones); a fixed, seeded set of 100 is held out
and never trained on. The generator is the world's trained text-to-image model, so the targets are
its text encoder's outputs and the images it draws through the projector can be checked by the
world's CLIP. The LLM is the planner GGUF when it is present, else a tiny random transformers LLM.

Everything is cached: the world, the text-to-image model, the tiny LLM, features and targets.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from agent.core.cached_build import cached_build
from agent.core.errors import ModalgraphError, ModelMissingError, one_line
from agent.core.settings import load_settings
from agent.models.catalogue import Catalogue
from agent.projector.evaluate import conditioning_metrics, project
from agent.projector.llm_features import (
    ENCODE_BATCH,
    LlamaCppFeatures,
    LLMIdentity,
    identity_for_path,
    open_feature_llm,
    span_features,
)
from agent.projector.model import ProjectorConfig
from agent.projector.runs import data_key, features_for, projector_info, targets_for
from agent.projector.targets import GeneratorSpec, generator_spec
from agent.projector.trainer import TrainConfig, TrainResult, train_projector
from agent.training.shapes_world import all_captions
from agent.training.text_to_image import ensure_text_to_image
from agent.training.tiny_llm import ensure_tiny_llm
from agent.training.world_builder import default_cache_root, ensure_shapes_world

LLMChoice = Literal["auto", "gguf", "tiny"]
TRAIN_FILE = "train-captions.txt"
HELDOUT_FILE = "heldout-captions.txt"
EVAL_FILE = "heldout-eval.json"


@dataclass(frozen=True)
class ShapesProjectorConfig:
    """The recipe's sizes and budget: measured to fit a couple of CPU minutes (README)."""

    heldout: int = 100
    split_seed: int = 0
    d_model: int = 128
    layers: int = 2
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=600, batch_size=32, learning_rate=1e-3, threads=1)
    )


@dataclass
class ShapesSetup:
    world_dir: Path
    generator: GeneratorSpec
    llm: LLMIdentity
    train_captions: list[str]
    heldout_captions: list[str]


def caption_split(heldout: int = 100, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held-out): disjoint sets of distinct captions from the world's grammar."""
    captions = all_captions()
    order = list(range(len(captions)))
    random.Random(seed).shuffle(order)
    held = sorted(order[:heldout])
    train = sorted(order[heldout:])
    return [captions[i] for i in train], [captions[i] for i in held]


def planner_gguf() -> Path | None:
    """The planner GGUF as the user's settings resolve it, without fetching it."""

    try:
        return Path(Catalogue.load(load_settings()).resolve("planner"))
    except ModalgraphError:
        return None


def choose_llm(choice: LLMChoice, cache_root: Path) -> LLMIdentity:
    if choice in ("auto", "gguf"):
        gguf = planner_gguf()
        if gguf is not None:
            return identity_for_path(gguf, "planner")
        if choice == "gguf":
            raise ModelMissingError("the planner GGUF is not present; run `modalgraph models pull planner`")
    return identity_for_path(ensure_tiny_llm(cache_root), "tiny-llm")


def prepare(
    cache_root: Path | None = None, llm: LLMChoice = "auto", log: Callable[[str], None] = lambda _: None
) -> ShapesSetup:
    """The world, its text-to-image model and the LLM, each built on first use and cached."""

    root = cache_root or default_cache_root()
    started = time.perf_counter()
    identity = choose_llm(llm, root)
    train, held = caption_split()
    stop = threading.Event()
    prefetch = _prefetch_features(identity, train + held, root / "projector-cache" / "features", stop, log)
    try:
        world = ensure_shapes_world(root, log=log)
        generator_dir = ensure_text_to_image(world, log=log)
    finally:
        # Whatever is left is read with every core by train_on_shapes, from the same cache.
        stop.set()
        prefetch.join()
    log(f"shapes world and its text-to-image model ready ({time.perf_counter() - started:.0f}s)")
    return ShapesSetup(
        world_dir=world,
        generator=generator_spec(generator_dir, "image", "image-gen", "shapes-world text-to-image"),
        llm=identity,
        train_captions=train,
        heldout_captions=held,
    )


def _prefetch_features(
    identity: LLMIdentity, captions: list[str], cache: Path, stop: threading.Event, log: Callable[[str], None]
) -> threading.Thread:
    """Read the GGUF's features on one core while the world and its generator train on the other.

    Both train on one thread, so on a clean checkout the second core would idle for minutes; the
    features (about 16k tokens of a 1.5B model) fit in that time. Stopped as soon as the builds end:
    one thread is then slower than the main path with every core. The tiny LLM needs no such help.
    """

    def work() -> None:
        if identity.backend != "llamacpp":
            return
        try:
            llm = LlamaCppFeatures(identity, n_threads=1)
            for start in range(0, len(captions), ENCODE_BATCH):
                if stop.is_set():
                    return
                span_features(llm, captions[start : start + ENCODE_BATCH], "image", cache)
        except Exception as exc:  # the main path reads what is missing and reports its own errors
            log(f"reading LLM features alongside the build stopped: {one_line(exc)}")

    thread = threading.Thread(target=work, name="projector-feature-prefetch", daemon=True)
    thread.start()
    return thread


def train_on_shapes(
    setup: ShapesSetup,
    out_dir: Path,
    cache_root: Path,
    config: ShapesProjectorConfig | None = None,
    device: str = "cpu",
    progress: bool = False,
    fresh: bool = False,
    projector_type: str = "transformer",
    log: Callable[[str], None] = lambda _: None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train into `out_dir`, then measure on the held-out captions; returns the result and the figures."""
    config = config or ShapesProjectorConfig()
    timings: dict[str, float] = {}
    llm = open_feature_llm(setup.llm)
    started = time.perf_counter()
    features = features_for(llm, setup.train_captions, "image", cache_root / "features", progress)
    held_features = features_for(llm, setup.heldout_captions, "image", cache_root / "features", progress)
    timings["features_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    targets = targets_for(setup.generator, setup.train_captions, cache_root / "targets", device, progress)
    held_targets = targets_for(
        setup.generator, setup.heldout_captions, cache_root / "targets", device, progress
    )
    timings["targets_seconds"] = time.perf_counter() - started
    projector = ProjectorConfig(
        modality="image",
        d_llm=int(features[0].hidden.shape[1]),
        n_queries=setup.generator.n_queries,
        d_cond=setup.generator.d_cond,
        type=projector_type,
        d_model=config.d_model,
        encoder_layers=config.layers,
        decoder_layers=config.layers,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRAIN_FILE).write_text("\n".join(setup.train_captions) + "\n")
    (out_dir / HELDOUT_FILE).write_text("\n".join(setup.heldout_captions) + "\n")
    info = projector_info(setup.llm, setup.generator, TRAIN_FILE)
    result = train_projector(
        features,
        targets,
        projector,
        config.train,
        out_dir,
        info,
        data_key(setup.train_captions, setup.llm, setup.generator),
        device=device,
        progress=progress,
        fresh=fresh,
        log=log,
    )
    timings["train_seconds"] = result.seconds
    metrics: dict[str, Any] = {}
    if result.finished:
        metrics = conditioning_metrics(project(result.model, held_features, device), held_targets)
        metrics.update(
            llm=setup.llm.describe(),
            generator=setup.generator.path,
            steps=config.train.steps,
            steps_per_second=round(result.steps_per_second, 2),
            **{k: round(v, 1) for k, v in timings.items()},
        )
        (out_dir / EVAL_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return result, metrics


def recipe_config(steps: int | None = None, **train: Any) -> ShapesProjectorConfig:
    """The default recipe with some training settings replaced (None keeps the default)."""
    base = ShapesProjectorConfig()
    changes = {k: v for k, v in {"steps": steps, **train}.items() if v is not None}
    return replace(base, train=replace(base.train, **changes))


def recipe_dict(config: ShapesProjectorConfig) -> dict[str, Any]:
    return asdict(config)


# Bump when training code changes in a way the configs and fingerprints do not capture.
BUILD_VERSION = 1
DONE_MARKER = "projector.json"


def ensure_shapes_projector(
    setup: ShapesSetup,
    cache_root: Path,
    config: ShapesProjectorConfig | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Path, dict[str, Any]]:
    """The trained shapes-world projector for this setup and recipe, trained first if needed.

    Cached like the world and its models: the folder is named by a hash of the recipe and of the
    LLM's and generator's fingerprints, and built beside its final place, then renamed in.
    """
    import hashlib

    config = config or ShapesProjectorConfig()
    blob = json.dumps(
        {
            "v": BUILD_VERSION,
            "recipe": recipe_dict(config),
            "llm": setup.llm.fingerprint,
            "generator": setup.generator.fingerprint,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]

    def build(building: Path) -> None:
        result, _ = train_on_shapes(setup, building, cache_root / "projector-cache", config, log=log)
        if not result.finished:  # pragma: no cover - no time limit is set here
            raise RuntimeError("the shapes projector did not finish training")

    final = cached_build(
        cache_root / f"shapes-projector-{key}",
        build,
        done=lambda folder: (folder / DONE_MARKER).is_file() and (folder / EVAL_FILE).is_file(),
    )
    return final, json.loads((final / EVAL_FILE).read_text())
