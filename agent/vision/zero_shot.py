"""CLIP zero-shot labelling: the fall-back when no image-description model (vlm) is present.

The image is compared with a fixed list of labels ("a red circle", "a photo of a cat", "a photo of a
beach") through the image library's CLIP. What comes out is a ranked guess at a label, never a
description, and the tool says so. Labels whose words the text encoder cannot spell (a tiny
word-level CLIP knows only its own vocabulary) are left out rather than scored as noise.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from agent.vision.clip_encoder import ClipEncoder

LABELS_FILE = "zero_shot_labels.toml"
_LOW_CONFIDENCE = 0.3


@dataclass(frozen=True)
class Label:
    text: str  # what the answer shows: "red circle", "cat", "beach"
    prompt: str  # what CLIP reads: "a red circle", "a photo of a cat"
    kind: str  # "shape", "object" or "scene"


@dataclass(frozen=True)
class LabelScore:
    label: Label
    probability: float


@functools.lru_cache(maxsize=1)
def default_labels() -> tuple[Label, ...]:
    """Colour x shape labels (diagrams, logos, the synthetic shapes world), then objects and scenes,
    read from zero_shot_labels.toml in this package."""
    import sys
    from importlib import resources

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    data = tomllib.loads(resources.files("agent.vision").joinpath(LABELS_FILE).read_text(encoding="utf-8"))
    labels = [Label(f"{c} {s}", f"a {c} {s}", "shape") for c in data["colours"] for s in data["shapes"]]
    labels += [Label(o, f"a photo of a {o}", "object") for o in data["objects"]]
    labels += [Label(s, f"a photo of a {s}", "scene") for s in data["scenes"]]
    return tuple(labels)


def spellable(encoder: ClipEncoder, labels: Sequence[Label]) -> list[Label]:
    """Labels whose prompt the text encoder's tokenizer covers without an unknown token."""
    tokenizer = encoder.processor.tokenizer
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return list(labels)
    kept = []
    for label in labels:
        ids = tokenizer(label.prompt, add_special_tokens=False)["input_ids"]
        if unk not in ids and len(ids) + 2 <= encoder.max_text_tokens:
            kept.append(label)
    return kept


_text_cache: dict[tuple[str, tuple[str, ...]], tuple[list[Label], Any]] = {}
_text_lock = threading.Lock()


def label_vectors(
    encoder: ClipEncoder, labels: Sequence[Label] | None = None
) -> tuple[list[Label], np.ndarray]:
    """The spellable labels and their text embeddings, computed once per CLIP and label list."""
    labels = labels if labels is not None else default_labels()
    key = (encoder.info.fingerprint, tuple(label.prompt for label in labels))
    with _text_lock:
        if key in _text_cache:
            return _text_cache[key]
    kept = spellable(encoder, labels)
    if not kept:
        raise ValueError("the CLIP text encoder can spell none of the labels")
    vectors = encoder.encode_texts([label.prompt for label in kept])
    with _text_lock:
        _text_cache[key] = (kept, vectors)
    return kept, vectors


def _logit_scale(encoder: ClipEncoder) -> float:
    scale = getattr(encoder.model, "logit_scale", None)
    try:
        return float(scale.exp().item()) if scale is not None else 100.0
    except (AttributeError, RuntimeError):
        return 100.0


def rank_labels(
    encoder: ClipEncoder, images: list[Image.Image], labels: Sequence[Label] | None = None, top: int = 3
) -> list[list[LabelScore]]:
    """For each image, its `top` labels with softmax probabilities over all spellable labels."""
    import numpy as np

    kept, text = label_vectors(encoder, labels)
    logits = _logit_scale(encoder) * (encoder.encode_images(images) @ text.T)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    ranked = []
    for row in probs:
        order = np.argsort(-row)[:top]
        ranked.append([LabelScore(kept[i], float(row[i])) for i in order])
    return ranked


def label_guess_text(scores: list[LabelScore], question: str | None, clip_id: str) -> str:
    """The answer: a plain statement that this is a guess at a label, not a description."""
    best = ", ".join(f"{s.label.text} ({s.probability:.0%})" for s in scores)
    lines = []
    if question:
        lines.append(f"I cannot answer {question!r}: no image-description model (vlm) is installed.")
    lines.append(
        "Label guess only, not a description: CLIP "
        f"({clip_id}) matched the image against a fixed list of labels. Best matches: {best}."
    )
    if scores and scores[0].probability < _LOW_CONFIDENCE:
        lines.append("The guess is uncertain: no label fits well.")
    lines.append("For real descriptions and answers about images, run `modalgraph models pull vlm`.")
    return " ".join(lines)
