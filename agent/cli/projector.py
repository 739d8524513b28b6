"""`modalgraph projector train|eval`: the NExT-GPT output projectors that conditioning="projector" uses."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from agent.core.errors import ConfigError
from agent.core.text import say
from agent.projector.signals import check_modality

if TYPE_CHECKING:
    from agent.projector.model import ProjectorConfig
    from agent.projector.runs import CaptionRecord
    from agent.projector.trainer import TrainConfig

projector_app = typer.Typer(
    help="Train and measure the output projectors (LLM signal tokens -> a generator's conditioning).",
    no_args_is_help=True,
)

SHAPES_OUT = "shapes-world-image"


@dataclass(frozen=True)
class TrainOptions:
    """`projector train`'s flags as typed, built once; None leaves the default to the path taken."""

    modality: str
    # None only with --shapes-world, which brings its own captions.
    captions: Path | None
    # Folder the captions' image paths are relative to; given, it adds the denoising loss.
    images: Path | None
    denoise_weight: float
    # None: the modality's projector folder (captions) or SHAPES_OUT under the data dir (shapes world).
    out: Path | None
    # None: the modality's default type (captions) or a transformer (shapes world).
    projector_type: str | None
    # Catalogue name or path; with --shapes-world only auto, gguf or tiny.
    llm: str | None
    # A diffusers pipeline folder; None takes the catalogue's generator for the modality.
    generator: Path | None
    # None: 1500 for captions, the recipe's own for the shapes world (as for d_model and layers).
    steps: int | None
    batch_size: int
    learning_rate: float
    d_model: int | None
    layers: int | None
    # Steps between resumable checkpoints; the shapes world keeps its recipe's.
    checkpoint_every: int
    # A wall-clock budget: the run stops resumably when it is spent.
    max_minutes: float | None
    # None keeps torch's choice for captions; the shapes recipe picks its own.
    threads: int | None
    seed: int
    # Ignore a checkpoint in the output folder and start over.
    fresh: bool
    # No progress bars.
    quiet: bool

    @property
    def max_seconds(self) -> float | None:
        # 0 minutes, like None, means no limit.
        return self.max_minutes * 60 if self.max_minutes else None


def register(app: typer.Typer) -> None:
    app.add_typer(projector_app, name="projector")


def _llm_identity(app: Any, llm: str | None) -> Any:
    from agent.projector.conditioning import current_llm  # deferred: imports torch, langchain
    from agent.projector.llm_features import identity_for_path, llm_identity  # deferred: imports langchain

    if llm is None:
        return current_llm(app)
    candidate = Path(llm).expanduser()
    return identity_for_path(candidate) if candidate.exists() else llm_identity(app, llm)


def _generator(app: Any, modality: str, generator: Path | None) -> Any:
    from agent.projector.targets import current_generator, generator_spec  # deferred: imports numpy

    if generator is None:
        return current_generator(app, modality)
    if not generator.is_dir():
        raise ConfigError(f"--generator {generator} is not a diffusers pipeline folder")
    return generator_spec(generator, modality)


@projector_app.command("train")
def train(
    modality: str = typer.Option("image", "--modality", "-m", help="image, video or audio."),
    captions: Path | None = typer.Option(
        None, "--captions", help='Captions: a text file (one a line) or JSONL with a "caption" per record.'
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        help='Folder the JSONL records\' "path" (or "image") is relative to: adds the denoising loss (image only).',
    ),
    denoise_weight: float = typer.Option(0.1, help="Weight of the denoising loss when --images is given."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Output folder (default: the modality's projector folder, MODALGRAPH_PROJECTOR_<MODALITY>).",
    ),
    projector_type: str | None = typer.Option(None, "--type", help="transformer (default), mlp or linear."),
    llm: str | None = typer.Option(
        None, "--llm", help="LLM for features: catalogue name or path (default: the projector_llm setting)."
    ),
    generator: Path | None = typer.Option(
        None,
        "--generator",
        help="A diffusers pipeline folder (default: the catalogue's image/video/audio-gen).",
    ),
    steps: int | None = typer.Option(None, help="Training steps (default 1500; 600 with --shapes-world)."),
    batch_size: int = typer.Option(32, help="Captions per step."),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Peak learning rate."),
    d_model: int | None = typer.Option(
        None, help="The projector's inner width (default 256; 128 with --shapes-world)."
    ),
    layers: int | None = typer.Option(None, help="Encoder and decoder layers each (default 2)."),
    checkpoint_every: int = typer.Option(250, help="Steps between resumable checkpoints."),
    max_minutes: float | None = typer.Option(None, help="Stop (resumably) after this many minutes."),
    threads: int | None = typer.Option(
        None, help="torch CPU threads (default: torch's choice; 1 with --shapes-world)."
    ),
    seed: int = typer.Option(0, help="Random seed."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore a checkpoint in --out and start over."),
    shapes_world: bool = typer.Option(
        False,
        "--shapes-world",
        help="Train on the synthetic shapes world (its captions and text-to-image model; the planner GGUF when "
        "present, else a tiny LLM), then measure on its 100 held-out captions. Builds what is missing.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train an output projector with the LLM and the generator frozen; resumes from a checkpoint in --out."""
    from agent.context import AppContext  # deferred: imports pydantic-settings
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings

    check_modality(modality)
    options = TrainOptions(
        modality=modality,
        captions=captions,
        images=images,
        denoise_weight=denoise_weight,
        out=out,
        projector_type=projector_type,
        llm=llm,
        generator=generator,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        d_model=d_model,
        layers=layers,
        checkpoint_every=checkpoint_every,
        max_minutes=max_minutes,
        threads=threads,
        seed=seed,
        fresh=fresh,
        quiet=quiet,
    )
    app = AppContext(load_settings())
    started = time.perf_counter()
    if shapes_world:
        if modality != "image" or captions is not None or images is not None or generator is not None:
            raise ConfigError(
                "--shapes-world trains the image projector on the world's own captions and generator; "
                "drop --modality, --captions, --images and --generator"
            )
        _train_shapes(app, options)
        return
    if captions is None:
        raise ConfigError(
            "--captions FILE is needed (or --shapes-world to train on the synthetic shapes world)"
        )
    if images is not None and modality != "image":
        raise ConfigError("--images (the denoising loss) is for --modality image only")
    _train_captions(app, options, captions)
    say(f"done in {time.perf_counter() - started:.0f}s")


def _image_pairs(
    records: list[CaptionRecord], texts: list[str], images: Path | None, captions_file: Path
) -> list[tuple[Path, int]]:
    """Each record's image with the index of its caption in `texts`; refuses missing or absent images."""
    position = {text: i for i, text in enumerate(texts)}
    pairs = [(r.image, position[r.caption]) for r in records if r.image is not None]
    if images is not None and not pairs:
        raise ConfigError(
            f'--images given but no record of {captions_file} names an image ("path" or "image")'
        )
    missing = [str(p) for p, _ in pairs if not p.is_file()]
    if missing:
        raise ConfigError(f"{len(missing)} image(s) named in {captions_file} are missing, e.g. {missing[0]}")
    return pairs


def _train_captions(app: Any, options: TrainOptions, captions_file: Path) -> None:
    from agent.projector.llm_features import open_feature_llm  # deferred: imports langchain
    from agent.projector.runs import (  # deferred: imports langchain
        data_key,
        distinct,
        features_for,
        projector_info,
        read_captions,
        targets_for,
    )
    from agent.projector.trainer import prepare_denoise, train_projector  # deferred: imports torch, langchain

    modality = options.modality
    out = options.out or app.settings.projector_dir(modality)
    cache_root = app.settings.data_dir / "cache" / "projector"
    records = read_captions(captions_file, options.images)
    texts = distinct(r.caption for r in records)
    pairs = _image_pairs(records, texts, options.images, captions_file)
    llm_id = _llm_identity(app, options.llm)
    spec = _generator(app, modality, options.generator)
    say(
        f"{len(texts)} captions; LLM {llm_id.describe()}; generator {spec.describe()} ({spec.n_queries}x{spec.d_cond})"
    )
    llm = open_feature_llm(llm_id, app)
    features = features_for(llm, texts, modality, cache_root / "features", not options.quiet)
    targets = targets_for(spec, texts, cache_root / "targets", app.device, not options.quiet)
    projector, config = _configs(options, int(features[0].hidden.shape[1]), spec, bool(pairs))
    denoise = None
    if pairs:
        say(f"encoding {len(pairs)} images for the denoising loss (weight {options.denoise_weight})")
        denoise = prepare_denoise(Path(spec.path), [p for p, _ in pairs], [i for _, i in pairs], app.device)
    image_key = [f"{p}:{p.stat().st_size}" for p, _ in pairs]
    result = train_projector(
        features,
        targets,
        projector,
        config,
        out,
        projector_info(llm_id, spec, str(captions_file)),
        data_key(texts, llm_id, spec, image_key),
        device=app.device,
        denoise=denoise,
        progress=not options.quiet,
        fresh=options.fresh,
        log=say,
    )
    _report(result, out, modality)


def _configs(
    options: TrainOptions, d_llm: int, spec: Any, with_images: bool
) -> tuple[ProjectorConfig, TrainConfig]:
    """The projector's shape and the optimisation, with the captions path's defaults for what was not given."""
    from agent.projector.model import DEFAULT_TYPES, ProjectorConfig  # deferred: imports torch
    from agent.projector.trainer import TrainConfig  # deferred: imports torch, langchain

    layers = options.layers or 2
    projector = ProjectorConfig(
        modality=options.modality,
        d_llm=d_llm,
        n_queries=spec.n_queries,
        d_cond=spec.d_cond,
        type=options.projector_type or DEFAULT_TYPES[options.modality],
        d_model=options.d_model or 256,
        encoder_layers=layers,
        decoder_layers=layers,
    )
    config = TrainConfig(
        steps=options.steps or 1500,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        # Without images the weight does nothing: 0 keeps it out of the run key and the record.
        denoise_weight=options.denoise_weight if with_images else 0.0,
        seed=options.seed,
        checkpoint_every=options.checkpoint_every,
        max_seconds=options.max_seconds,
        threads=options.threads,
    )
    return projector, config


def _report(result: Any, out: Path, modality: str) -> None:
    if not result.finished:
        say(
            f"stopped at step {result.step}; run the same command again to continue from the checkpoint in {out}"
        )
        return
    say(
        f"trained {result.step} steps ({result.steps_per_second:.1f} steps/s this run), final loss {result.loss:.4f}; "
        f"wrote {out}/projector.safetensors and projector.json"
    )
    say(f"use it: MODALGRAPH_PROJECTOR_{modality.upper()}={out} and conditioning=projector")


def _train_shapes(app: Any, options: TrainOptions) -> None:
    from dataclasses import replace

    from agent.training.shapes_projector import (
        HELDOUT_FILE,
        prepare,
        recipe_config,
        train_on_shapes,
    )  # deferred: imports torch, langchain, pydantic-settings
    from agent.training.world_builder import (
        default_cache_root,  # deferred: the training code costs --help 30 ms
    )

    if options.llm not in (None, "auto", "gguf", "tiny"):
        raise ConfigError("with --shapes-world, --llm is auto (the planner GGUF if present), gguf or tiny")
    started = time.perf_counter()
    setup = prepare(default_cache_root(), options.llm or "auto", log=say)  # type: ignore[arg-type]
    config = recipe_config(
        options.steps,
        learning_rate=options.learning_rate,
        batch_size=options.batch_size,
        seed=options.seed,
        threads=options.threads,
        max_seconds=options.max_seconds,
    )
    config = replace(
        config, d_model=options.d_model or config.d_model, layers=options.layers or config.layers
    )
    folder = options.out or app.settings.data_dir / "projectors" / SHAPES_OUT
    say(
        f"LLM {setup.llm.describe()}; {len(setup.train_captions)} training captions, {len(setup.heldout_captions)} held out"
    )
    result, metrics = train_on_shapes(
        setup,
        folder,
        default_cache_root() / "projector-cache",
        config,
        device=app.device,
        progress=not options.quiet,
        fresh=options.fresh,
        projector_type=options.projector_type or "transformer",
        log=say,
    )
    _report(result, folder, "image")
    if metrics:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
        say(
            f"held-out ({metrics['captions']} captions): top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f}, "
            f"mean cosine {metrics['mean_cosine']:.3f}; {time.perf_counter() - started:.0f}s in all"
        )
        say(
            f"evaluate again: modalgraph projector eval --projector {folder} --captions {folder / HELDOUT_FILE}\n"
            f"generate with it: MODALGRAPH_MODEL_IMAGE_GEN={setup.generator.path} MODALGRAPH_PROJECTOR_IMAGE={folder} "
            f"MODALGRAPH_PROJECTOR_LLM={setup.llm.path}"
        )


@projector_app.command("eval")
def evaluate(
    captions: Path = typer.Option(
        ..., "--captions", help="Held-out captions (text or JSONL), never trained on."
    ),
    projector: Path | None = typer.Option(
        None, "--projector", help="Projector folder (default: the modality's)."
    ),
    modality: str = typer.Option("image", "--modality", "-m", help="image, video or audio."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Use the first N distinct captions."),
    llm: str | None = typer.Option(
        None, "--llm", help="LLM for features (default: the one it was trained with)."
    ),
    generator: Path | None = typer.Option(
        None, "--generator", help="Generator folder (default: the one it was trained for)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Mean cosine to the target conditioning, and top-1/top-5 retrieval of each caption's own target."""
    from agent.context import AppContext  # deferred: imports pydantic-settings
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings
    from agent.projector.conditioning import check_compatible  # deferred: imports torch, langchain
    from agent.projector.evaluate import conditioning_metrics, project  # deferred: imports torch, langchain
    from agent.projector.files import load_projector  # deferred: imports torch
    from agent.projector.llm_features import (
        identity_for_path,
        open_feature_llm,
    )  # deferred: imports langchain
    from agent.projector.runs import (
        features_for,
        read_captions,
        retrieval_pool,
        targets_for,
    )  # deferred: imports langchain
    from agent.projector.targets import generator_spec  # deferred: imports numpy

    check_modality(modality)
    settings = load_settings()
    app = AppContext(settings)
    folder = projector or settings.projector_dir(modality)
    model, info = load_projector(folder, device=app.device)
    modality = info["config"].modality
    recorded_llm = Path(str((info.get("llm") or {}).get("path", "")))
    if llm is None and recorded_llm.exists() and str(recorded_llm) != ".":
        llm_id = identity_for_path(recorded_llm, (info.get("llm") or {}).get("name", ""))
    else:
        llm_id = _llm_identity(app, llm)
    recorded_gen = Path(str((info.get("generator") or {}).get("path", "")))
    if generator is None and recorded_gen.is_dir():
        spec = generator_spec(recorded_gen, modality)
    else:
        spec = _generator(app, modality, generator)
    check_compatible(info, folder, spec, llm_id)
    pool = retrieval_pool([r.caption for r in read_captions(captions)], limit)
    cache_root = settings.data_dir / "cache" / "projector"
    features = features_for(open_feature_llm(llm_id, app), pool, modality, cache_root / "features", not quiet)
    targets = targets_for(spec, pool, cache_root / "targets", app.device, not quiet)
    metrics = conditioning_metrics(project(model, features, app.device), targets)
    metrics.update(projector=str(folder), llm=llm_id.describe(), generator=spec.describe())
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
        return
    typer.echo(
        f"{metrics['captions']} held-out captions: top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f}, "
        f"mean cosine {metrics['mean_cosine']:.3f} (per token {metrics['token_cosine']:.3f}; different captions' "
        f"targets {metrics['target_cosine_between_captions']:.3f})"
    )
