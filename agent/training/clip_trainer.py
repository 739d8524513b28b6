"""Train a tiny CLIPModel contrastively on the shapes world, on the CPU, in a few minutes.

The result is saved with `save_pretrained` next to a `CLIPProcessor` (a word-level tokenizer for the
world's vocabulary and a small `CLIPImageProcessor`), so it loads through the same
`from_pretrained(dir)` path as a real CLIP checkpoint.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.models.loading_logs import quiet_transformers
from agent.training.shapes_world import BACKGROUNDS, SIZES, ShapeSpec, caption
from agent.vision.clip_encoder import pooled_features

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"


@dataclass(frozen=True)
class TinyClipConfig:
    """Model and training hyper-parameters; part of the cache key."""

    # 32 px in 16 px patches: four patches, each big enough to hold a shape's outline. Measured on
    # two CPU cores, this learns the world in about 2 minutes; 48-64 px with 8 px patches needed
    # several times longer to get past the "colour only" plateau.
    pixels: int = 32
    patch: int = 16
    width: int = 128
    layers: int = 2
    heads: int = 4
    text_width: int = 64
    text_layers: int = 2
    projection_dim: int = 64
    # ln(1/temperature) at the start. CLIP's 2.66 (temperature 0.07) spreads the gradient over easy
    # negatives (other colours); a sharper start makes same-colour, other-shape captions count.
    logit_scale_init: float = 3.4
    max_text_tokens: int = 16
    batch_size: int = 96
    steps: int = 4000
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    # Weight of an image-image term whose positives are renders of the same colour and shape: it
    # makes "find photos like this one" group by what is shown rather than by background.
    image_pair_weight: float = 0.5
    # Captions outside the batch's own, drawn per step as extra negatives.
    extra_captions: int = 32
    max_seconds: float = 900.0
    seed: int = 0


def build_tokenizer(words: Sequence[str], max_tokens: int) -> Any:
    """A word-level tokenizer over the world's vocabulary, with CLIP's start/end tokens."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, UNK: 1, BOS: 2, EOS: 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=max_tokens,
    )


def build_processor(words: Sequence[str], config: TinyClipConfig) -> CLIPProcessor:
    from transformers import CLIPImageProcessor, CLIPProcessor

    # Without torchvision transformers falls back to its PIL image processor and says so; that is fine.
    with quiet_transformers(progress_bars=False):
        images = CLIPImageProcessor(
            size={"shortest_edge": config.pixels}, crop_size={"height": config.pixels, "width": config.pixels}
        )
    return CLIPProcessor(image_processor=images, tokenizer=build_tokenizer(words, config.max_text_tokens))


def build_model(vocab_size: int, config: TinyClipConfig) -> CLIPModel:
    from transformers import CLIPConfig, CLIPModel

    clip_config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": config.text_width,
            "intermediate_size": config.text_width * 2,
            "num_hidden_layers": config.text_layers,
            "num_attention_heads": max(1, config.text_width // 32),
            "max_position_embeddings": config.max_text_tokens,
            "pad_token_id": 0,
            "bos_token_id": 2,
            # Not 2: CLIP treats eos id 2 as the legacy "argmax token" pooling.
            "eos_token_id": 3,
        },
        vision_config={
            "image_size": config.pixels,
            "patch_size": config.patch,
            "hidden_size": config.width,
            "intermediate_size": config.width * 2,
            "num_hidden_layers": config.layers,
            "num_attention_heads": config.heads,
        },
        projection_dim=config.projection_dim,
        logit_scale_init_value=config.logit_scale_init,
    )
    return CLIPModel(clip_config)


# Caption variants: which optional attributes a caption names.
_VARIANTS = ((False, False), (True, False), (False, True), (True, True))


def _caption_bank(
    specs: Sequence[ShapeSpec],
) -> tuple[list[str], list[tuple[str, str, str | None, str | None]]]:
    """Every distinct caption the training images can draw, with the attributes each one names."""
    seen: dict[str, tuple[str, str, str | None, str | None]] = {}
    for spec in specs:
        for with_size, with_bg in _VARIANTS:
            text = caption(spec, with_size, with_bg)
            seen.setdefault(
                text,
                (
                    spec.colour,
                    spec.shape,
                    spec.size if with_size else None,
                    spec.background if with_bg else None,
                ),
            )
    return list(seen), list(seen.values())


def train_tiny_clip(
    images: Sequence[Image.Image],
    specs: Sequence[ShapeSpec],
    words: Sequence[str],
    config: TinyClipConfig,
    log: Callable[[str], None] = lambda _: None,
    on_checkpoint: Callable[[int, CLIPModel, CLIPProcessor], None] | None = None,
    checkpoint_every: int = 500,
) -> tuple[CLIPModel, CLIPProcessor, dict[str, float]]:
    """Contrastive training with soft targets: a caption is a positive for every image it truly describes.

    Plain CLIP loss would treat two images of "a red circle" in one batch as negatives of each
    other's caption; with 30 colour/shape pairs that happens in every batch and stalls training.
    """
    import torch

    # One thread: on a shared or busy machine, torch's OpenMP threads spin-wait on each other and a
    # small model trains up to 10x slower with two threads than with one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(images, specs, words, config, log, on_checkpoint, checkpoint_every)
    finally:
        torch.set_num_threads(threads)


def _train(
    images: Sequence[Image.Image],
    specs: Sequence[ShapeSpec],
    words: Sequence[str],
    config: TinyClipConfig,
    log: Callable[[str], None],
    on_checkpoint: Callable[[int, CLIPModel, CLIPProcessor], None] | None,
    checkpoint_every: int,
) -> tuple[CLIPModel, CLIPProcessor, dict[str, float]]:
    import torch

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    processor = build_processor(words, config)
    model = build_model(len(processor.tokenizer), config)
    pixel_values = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    texts, attrs = _caption_bank(specs)
    tokens = processor.tokenizer(texts, padding=True, return_tensors="pt")
    colours = sorted({s.colour for s in specs})
    shapes = sorted({s.shape for s in specs})
    sizes, backgrounds = list(SIZES), list(BACKGROUNDS)

    def code(values: Sequence[str | None], names: list[str]) -> torch.Tensor:
        return torch.tensor([names.index(v) if v is not None else -1 for v in values])

    cap_colour = code([a[0] for a in attrs], colours)
    cap_shape = code([a[1] for a in attrs], shapes)
    cap_size = code([a[2] for a in attrs], sizes)
    cap_bg = code([a[3] for a in attrs], backgrounds)
    img_colour = code([s.colour for s in specs], colours)
    img_shape = code([s.shape for s in specs], shapes)
    img_size = code([s.size for s in specs], sizes)
    img_bg = code([s.background for s in specs], backgrounds)
    # Which bank captions truly describe each training image: the soft contrastive targets.
    describes = (
        (img_colour[:, None] == cap_colour[None, :])
        & (img_shape[:, None] == cap_shape[None, :])
        & ((cap_size[None, :] < 0) | (img_size[:, None] == cap_size[None, :]))
        & ((cap_bg[None, :] < 0) | (img_bg[:, None] == cap_bg[None, :]))
    )
    caption_index = {t: i for i, t in enumerate(texts)}
    own_captions = [[caption_index[caption(s, ws, wb)] for ws, wb in _VARIANTS] for s in specs]

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = max(1, config.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    started = time.perf_counter()
    n = len(specs)
    step = 0
    loss_value = float("nan")
    for step in range(config.steps):
        batch = torch.tensor(rng.sample(range(n), min(config.batch_size, n)))
        pixels = _dihedral(pixel_values[batch], torch.randint(0, 8, (len(batch),)))
        image_emb = torch.nn.functional.normalize(
            pooled_features(model.get_image_features(pixel_values=pixels)), dim=-1
        )
        # Each image brings one of its captions; a few random others widen the set of negatives.
        chosen = [rng.choice(own_captions[i]) for i in batch.tolist()]
        extra = rng.sample(range(len(texts)), min(config.extra_captions, len(texts)))
        subset = torch.tensor(sorted(set(chosen) | set(extra)))
        text_emb = torch.nn.functional.normalize(
            pooled_features(
                model.get_text_features(
                    input_ids=tokens["input_ids"][subset], attention_mask=tokens["attention_mask"][subset]
                )
            ),
            dim=-1,
        )
        logits = model.logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T
        match = describes[batch][:, subset].float()
        loss_i = -(match / match.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        present = match.sum(0) > 0
        per_caption = match.T[present]
        loss_t = (
            -(per_caption / per_caption.sum(1, keepdim=True) * logits.T[present].log_softmax(1)).sum(1).mean()
        )
        loss = (loss_i + loss_t) / 2
        if config.image_pair_weight:
            same = (img_colour[batch][:, None] == img_colour[batch][None, :]) & (
                img_shape[batch][:, None] == img_shape[batch][None, :]
            )
            eye = torch.eye(len(batch), dtype=torch.bool)
            same = (same & ~eye).float()
            pair_logits = (model.logit_scale.exp().clamp(max=100) * image_emb @ image_emb.T).masked_fill(
                eye, -1e4
            )
            has_pair = same.sum(1) > 0
            pair_loss = -(same / same.sum(1, keepdim=True).clamp(min=1) * pair_logits.log_softmax(1)).sum(1)
            loss = loss + config.image_pair_weight * pair_loss[has_pair].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_value = float(loss.detach())
        if step % 50 == 0:
            log(f"step {step} loss {loss_value:.3f} ({time.perf_counter() - started:.0f}s)")
        if on_checkpoint is not None and step and step % checkpoint_every == 0:
            model.eval()
            on_checkpoint(step, model, processor)
            model.train()
        if time.perf_counter() - started > config.max_seconds:
            log(f"stopping at step {step}: time limit {config.max_seconds:.0f}s reached")
            break
    model.eval()
    stats = {
        "steps": float(step + 1),
        "final_loss": loss_value,
        "train_seconds": time.perf_counter() - started,
    }
    return model, processor, stats


def _dihedral(images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Rotate by multiples of 90 degrees and mirror, per image. Every shape in the world keeps its
    name under these (a rotated triangle is still a triangle), so this multiplies the data by 8 for
    free and is what keeps the tiny model from memorising its renders."""
    import torch

    out = images.clone()
    for code in range(1, 8):
        mask = which == code
        if mask.any():
            chosen = torch.rot90(images[mask], code % 4, dims=(2, 3))
            out[mask] = chosen.flip(3) if code >= 4 else chosen
    return out


def save_clip(model: CLIPModel, processor: CLIPProcessor, out_dir: Path, info: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    # A one-file "Writing model shards" bar is noise in a log.
    with quiet_transformers(logs=False):
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    (out_dir / "training.json").write_text(json.dumps(info, indent=2, sort_keys=True))
