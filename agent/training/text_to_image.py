"""Train a tiny latent text-to-image model on the shapes world, on the CPU, in a few minutes.

The result is a real `StableDiffusionPipeline` folder (tiny VAE, tiny conditional U-Net, DDIM
scheduler, and the shapes-world CLIP's text tower and tokenizer), so `generate_image` loads it
through the catalogue exactly as it loads Stable Diffusion. It exists to test meaning end to end:
a prompt's colour must survive text encoder -> U-Net -> VAE decoder and be seen by the shapes CLIP.

`ensure_text_to_image()` trains once per (world, CLIP, config) and caches the folder beside the world.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.cached_build import cached_build
from agent.models.loading_logs import quiet_transformers
from agent.training.shapes_world import ShapeSpec, caption, read_captions

if TYPE_CHECKING:
    import torch

# Bump when training code changes in a way the config does not capture.
BUILD_VERSION = 1
DONE_MARKER = "training.json"
# Every caption variant a render can be described by: (names its size, names its background).
_VARIANTS = ((False, False), (True, False), (False, True), (True, True))


@dataclass(frozen=True)
class TextToImageConfig:
    """Model and training hyper-parameters; part of the cache key."""

    # Small enough for minutes of CPU; the shapes CLIP upsamples to its own 64 pixels.
    image_size: int = 32
    # Three VAE blocks downsample 4x: 32x32 RGB <-> 8x8x4 latents, the U-Net's working size.
    vae_channels: tuple[int, ...] = (16, 32, 32)
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (32, 64)
    attention_head_dim: int = 8
    batch_size: int = 32
    vae_learning_rate: float = 1e-3
    unet_learning_rate: float = 2e-3
    # SD's VAE uses a tiny KL term too: latents stay close to a Gaussian without blurring colours.
    vae_kl_weight: float = 1e-6
    foreground_weight: float = 5.0
    # Empty-prompt training so classifier-free guidance (the pipeline default) has an unconditional branch.
    uncond_probability: float = 0.1
    # Wall-clock budget for both stages together; the VAE gets `vae_share` of it.
    budget_seconds: float = 240.0
    vae_share: float = 0.3
    max_vae_steps: int = 3000
    max_unet_steps: int = 20000
    threads: int = 1
    seed: int = 0


def cache_key(world_dir: Path, config: TextToImageConfig) -> str:
    """The world folder's name is already a hash of the world and CLIP configs."""
    blob = json.dumps({"v": BUILD_VERSION, "world": world_dir.name, "t2i": asdict(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_renders(world_dir: Path, image_size: int) -> tuple[torch.Tensor, list[ShapeSpec]]:
    """The world's training renders as a [N, 3, S, S] tensor in [-1, 1], with what each one shows."""
    import numpy as np
    import torch
    from PIL import Image

    records = [r for r in read_captions(world_dir) if not r["heldout"]]
    arrays, specs = [], []
    for record in records:
        with Image.open(str(record["path"])) as image:
            small = image.convert("RGB").resize((image_size, image_size), Image.Resampling.LANCZOS)
        arrays.append(np.asarray(small))
        specs.append(
            ShapeSpec(
                str(record["colour"]), str(record["shape"]), str(record["size"]), str(record["background"])
            )
        )
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return pixels, specs


def load_text_encoder(clip_dir: Path) -> tuple[Any, Any]:
    """The shapes CLIP's text tower as a `CLIPTextModel` (what SD pipelines hold) and its tokenizer."""
    from transformers import CLIPModel, CLIPProcessor, CLIPTextModel

    with quiet_transformers(progress_bars=False):  # the PIL image-processor fallback notice
        clip = CLIPModel.from_pretrained(clip_dir)
        tokenizer = CLIPProcessor.from_pretrained(clip_dir).tokenizer
    text = CLIPTextModel(clip.config.text_config)
    # transformers 4 wraps the tower in `.text_model`; 5 flattens CLIPTextModel but not CLIPModel.
    getattr(text, "text_model", text).load_state_dict(clip.text_model.state_dict())
    return text.eval().requires_grad_(False), tokenizer


def encode_prompts(text_encoder: Any, tokenizer: Any, prompts: Sequence[str]) -> torch.Tensor:
    """Last hidden states exactly as `StableDiffusionPipeline.encode_prompt` computes them."""
    import torch

    tokens = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        return text_encoder(tokens.input_ids)[0]


def build_vae(config: TextToImageConfig) -> Any:
    from diffusers import AutoencoderKL

    blocks = len(config.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * blocks,
        up_block_types=["UpDecoderBlock2D"] * blocks,
        block_out_channels=list(config.vae_channels),
        layers_per_block=1,
        latent_channels=config.latent_channels,
        norm_num_groups=8,
        sample_size=config.image_size,
    )


def build_unet(config: TextToImageConfig, cross_attention_dim: int) -> Any:
    from diffusers import UNet2DConditionModel

    blocks = len(config.unet_channels)
    return UNet2DConditionModel(
        sample_size=config.image_size // 2 ** (len(config.vae_channels) - 1),
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        block_out_channels=config.unet_channels,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) * blocks,
        up_block_types=("CrossAttnUpBlock2D",) * blocks,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=config.attention_head_dim,
        # Besides cross-attention, an attention-pooled summary of the prompt joins the timestep
        # embedding: a global path that learns "which colour" in hundreds of steps, not thousands.
        addition_embed_type="text",
        addition_embed_type_num_heads=4,
        norm_num_groups=8,
    )


def noise_schedulers() -> tuple[Any, Any]:
    """(training, inference) schedulers over SD's own beta schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    betas = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    train = DDPMScheduler(num_train_timesteps=1000, clip_sample=False, **betas)
    sample = DDIMScheduler(
        num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False, steps_offset=1, **betas
    )
    return train, sample


def _cosine(fraction: float) -> float:
    """Learning-rate factor over the time budget: a short warm-up, then cosine decay to zero."""
    if fraction < 0.05:
        return max(0.05, fraction / 0.05)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (fraction - 0.05) / 0.95)))


def _foreground_weights(batch: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel loss weights, `weight` on the shape and 1 on the background (the image's median colour).

    The shape covers a few percent of a render: unweighted, a briefly trained autoencoder learns the
    background first and returns every shape as a brownish blur.
    """
    background = batch.flatten(2).median(dim=2).values[:, :, None, None]
    shape = (batch - background).abs().sum(dim=1, keepdim=True) > 0.3
    return 1 + (weight - 1) * shape.float()


def train_vae(
    pixels: torch.Tensor, config: TextToImageConfig, seconds: float, log: Callable[[str], None]
) -> tuple[Any, dict[str, float]]:
    """Reconstruction (L1 + MSE) with a tiny KL term; then the scaling factor that gives unit-variance latents."""
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    vae = build_vae(config).train()
    with torch.no_grad():
        # Start with a small posterior std (logvar about -8): at the default logvar 0 the sampled
        # latents are mostly noise and the decoder spends the whole time box learning the average image.
        vae.quant_conv.bias[config.latent_channels :] -= 8.0
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_learning_rate, weight_decay=0.0)
    started = time.perf_counter()
    step, loss_value = 0, float("nan")
    for step in range(config.max_vae_steps):
        fraction = (time.perf_counter() - started) / max(seconds, 1e-9)
        if fraction >= 1:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.vae_learning_rate * _cosine(fraction)
        batch = pixels[torch.randint(0, len(pixels), (config.batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        decoded = vae.decode(posterior.sample(generator)).sample
        error = (decoded - batch).abs() + (decoded - batch).pow(2)
        loss = (error * _foreground_weights(batch, config.foreground_weight)).mean()
        loss = loss + config.vae_kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        if step % 50 == 0:
            log(f"vae step {step} loss {loss_value:.4f} ({time.perf_counter() - started:.0f}s)")
    vae.eval().requires_grad_(False)
    stats = {"vae_steps": float(step), "vae_loss": loss_value, "vae_seconds": time.perf_counter() - started}
    return vae, stats


def encode_latents(vae: Any, pixels: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Posterior means, scaled by 1/std and the factor stored in the VAE's config (as SD does)."""
    import torch

    with torch.no_grad():
        latents = torch.cat(
            [vae.encode(pixels[i : i + chunk]).latent_dist.mean for i in range(0, len(pixels), chunk)]
        )
    scaling = float(1 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    return latents * scaling


def caption_table(specs: Sequence[ShapeSpec]) -> tuple[list[str], torch.Tensor]:
    """Every caption variant of every render: (distinct captions, [N, 4] index of each render's variants)."""
    import torch

    texts: dict[str, int] = {"": 0}  # index 0: the empty prompt, for classifier-free guidance
    rows = []
    for spec in specs:
        rows.append([texts.setdefault(caption(spec, s, b), len(texts)) for s, b in _VARIANTS])
    return list(texts), torch.tensor(rows)


def train_unet(
    latents: torch.Tensor,
    variants: torch.Tensor,
    embeddings: torch.Tensor,
    config: TextToImageConfig,
    seconds: float,
    log: Callable[[str], None],
) -> tuple[Any, dict[str, float]]:
    """DDPM noise prediction conditioned on a random true caption of each render (or, sometimes, none)."""
    import torch

    generator = torch.Generator().manual_seed(config.seed + 1)
    unet = build_unet(config, embeddings.shape[-1]).train()
    train_scheduler, _ = noise_schedulers()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.unet_learning_rate, weight_decay=0.01)
    started = time.perf_counter()
    step, loss_value, recent = 0, float("nan"), []
    for step in range(config.max_unet_steps):
        fraction = (time.perf_counter() - started) / max(seconds, 1e-9)
        if fraction >= 1:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.unet_learning_rate * _cosine(fraction)
        rows = torch.randint(0, len(latents), (config.batch_size,), generator=generator)
        picked = variants[
            rows, torch.randint(0, variants.shape[1], (config.batch_size,), generator=generator)
        ]
        drop = torch.rand(config.batch_size, generator=generator) < config.uncond_probability
        context = embeddings[torch.where(drop, 0, picked)]
        clean = latents[rows]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(
            0, train_scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator
        )
        noisy = train_scheduler.add_noise(clean, noise, timesteps)
        predicted = unet(noisy, timesteps, encoder_hidden_states=context).sample
        loss = torch.nn.functional.mse_loss(predicted, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        recent = [*recent[-49:], float(loss.detach())]
        loss_value = sum(recent) / len(recent)
        if step % 100 == 0:
            log(f"unet step {step} loss {loss_value:.4f} ({time.perf_counter() - started:.0f}s)")
    unet.eval().requires_grad_(False)
    stats = {
        "unet_steps": float(step),
        "unet_loss": loss_value,
        "unet_seconds": time.perf_counter() - started,
    }
    return unet, stats


def unchecked_sd_pipeline(vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any) -> Any:
    """A `StableDiffusionPipeline` of these components, without a safety checker (none exists for them)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def train_text_to_image(
    world_dir: Path, config: TextToImageConfig, log: Callable[[str], None] = lambda _: None
) -> tuple[Any, dict[str, Any]]:
    """Train the VAE, then the U-Net on its latents; return an in-memory `StableDiffusionPipeline`."""
    import torch

    # One thread by default: on a shared machine torch's OpenMP threads spin-wait on each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(config.threads, os.cpu_count() or 1)))
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    try:
        pixels, specs = load_renders(world_dir, config.image_size)
        text_encoder, tokenizer = load_text_encoder(world_dir / "clip")
        texts, variants = caption_table(specs)
        embeddings = encode_prompts(text_encoder, tokenizer, texts)
        log(f"{len(pixels)} renders, {len(texts)} captions")
        vae, vae_stats = train_vae(pixels, config, config.budget_seconds * config.vae_share, log)
        latents = encode_latents(vae, pixels)
        remaining = config.budget_seconds - vae_stats["vae_seconds"]
        unet, unet_stats = train_unet(latents, variants, embeddings, config, remaining, log)
    finally:
        torch.set_num_threads(threads)
    _, scheduler = noise_schedulers()
    pipe = unchecked_sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler)
    stats = {**vae_stats, **unet_stats, "renders": len(pixels), "scaling_factor": vae.config.scaling_factor}
    return pipe, stats


def ensure_text_to_image(
    world_dir: Path,
    config: TextToImageConfig | None = None,
    cache_root: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """The cached pipeline folder for this world and config, trained first if needed (atomically)."""
    config = config or TextToImageConfig()
    root = cache_root or world_dir.parent
    key = cache_key(world_dir, config)

    def build(building: Path) -> None:
        started = time.perf_counter()
        pipe, stats = train_text_to_image(world_dir, config, log)
        pipe.save_pretrained(building)
        info = {"world": world_dir.name, "config": asdict(config), **stats}
        info["build_seconds"] = round(time.perf_counter() - started, 1)
        (building / DONE_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True))

    return cached_build(
        root / f"text-to-image-{key}", build, done=lambda folder: (folder / DONE_MARKER).is_file()
    )
