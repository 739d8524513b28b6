"""CLIP image and text embeddings for the image library: L2-normalised float32 vectors.

The model directory comes from the catalogue (`clip`), so a hub checkpoint, a local copy and the
tiny test model trained on the shapes world all load the same way. Reading which model is
configured (`clip_model_info`) is cheap; loading it (`load_clip_encoder`) imports torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ModelLoadError, ModelMissingError, one_line
from agent.core.model_fingerprint import digest_file
from agent.models.devices import resolve_dtype
from agent.models.loading_logs import quiet_transformers
from memory.chroma_store import EmbeddingModel

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from agent.models.host import ModelHost

CLIP_MODEL_NAME = "clip"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ClipModelInfo:
    """Which CLIP the settings select, read from its files without loading it."""

    model_id: str
    model_dir: Path
    dim: int
    fingerprint: str


def _weights_fingerprint(model_dir: Path) -> str:
    """A digest of config.json and the weights' size, head and tail.

    Hashing whole checkpoints would cost seconds on every search; the head and tail change whenever
    the weights do (retraining rewrites the first tensors), and the digest survives copying.
    """
    digest = hashlib.sha256((model_dir / "config.json").read_bytes())
    for weights in sorted(p for p in model_dir.iterdir() if p.suffix in _WEIGHT_SUFFIXES):
        digest_file(digest, weights)
    return digest.hexdigest()[:16]


def _resolve_clip(app: ModelHost) -> tuple[str, Path]:
    """(model id, local directory) from the catalogue; the id is what the user configured."""
    model_dir = Path(app.catalogue.resolve(CLIP_MODEL_NAME))
    return app.catalogue.model_id(CLIP_MODEL_NAME), model_dir


_info_cache: dict[tuple[str, str], ClipModelInfo] = {}
_info_lock = threading.Lock()


def clip_model_info(app: ModelHost) -> ClipModelInfo:
    model_id, model_dir = _resolve_clip(app)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ModelMissingError(
            f"CLIP model at {model_dir} has no config.json; run `modalgraph models pull clip` "
            "or point MODALGRAPH_MODEL_CLIP at a CLIP checkpoint folder"
        )
    key = (str(model_dir), str(config_path.stat().st_mtime_ns))
    with _info_lock:
        if key in _info_cache:
            return _info_cache[key]
    try:
        config = json.loads(config_path.read_text())
        dim = int(config.get("projection_dim") or 512)
        fingerprint = _weights_fingerprint(model_dir)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read CLIP model at {model_dir}: {exc}") from None
    info = ClipModelInfo(model_id=model_id, model_dir=model_dir, dim=dim, fingerprint=fingerprint)
    with _info_lock:
        _info_cache[key] = info
    return info


class ClipEncoder:
    """A loaded CLIPModel and CLIPProcessor. `prepare` is thread-safe, so images can be decoded and
    preprocessed in worker threads while the model runs the previous batch."""

    def __init__(self, info: ClipModelInfo, model: Any, processor: Any, device: str, dtype: Any) -> None:
        self.info = info
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        image_processor = processor.image_processor
        size = getattr(image_processor, "size", None) or {}
        crop = getattr(image_processor, "crop_size", None) or {}
        self.image_side = int(size.get("shortest_edge") or size.get("height") or crop.get("height") or 224)
        text_config = getattr(model.config, "text_config", None)
        self.max_text_tokens = int(getattr(text_config, "max_position_embeddings", 77))

    @property
    def dim(self) -> int:
        return self.info.dim

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Resize, crop and normalise one RGB image as the model's processor specifies."""
        return self.processor.image_processor(images=[image], return_tensors="np")["pixel_values"][0]

    def encode_prepared(self, pixel_values: list[np.ndarray] | np.ndarray) -> np.ndarray:
        import numpy as np
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(np.stack(pixel_values))).to(self.device, self.dtype)
        with torch.inference_mode():
            features = pooled_features(self.model.get_image_features(pixel_values=batch))
        return _normalise(features)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare(image) for image in images])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.processor.tokenizer(
            [self._readable(text) for text in texts],
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        tokens = {name: value.to(self.device) for name, value in tokens.items() if name != "token_type_ids"}
        with torch.inference_mode():
            features = pooled_features(self.model.get_text_features(**tokens))
        return _normalise(features)

    def _readable(self, text: str) -> str:
        """`text` in words the tokenizer knows. A word-level vocabulary (the tiny shapes CLIP) turns
        every unknown word into one unknown token, which drags the vector toward noise: a plural
        it lacks is read as its singular ("circles" -> "circle"), and other unknown words are
        left out. Subword tokenizers (every real CLIP) never make a word a lone unknown token,
        so their texts pass unchanged."""
        tokenizer = self.processor.tokenizer
        unk = getattr(tokenizer, "unk_token_id", None)
        if unk is None:
            return text

        def known(word: str) -> bool:
            return tokenizer(word, add_special_tokens=False)["input_ids"] != [unk]

        words = []
        for word in re.findall(r"[^\W_]+", text):
            if known(word):
                words.append(word)
                continue
            singular = next(
                (w for w in (word[:-1], word[:-2]) if word.endswith("s") and w and known(w)), None
            )
            if singular:
                words.append(singular)
        return " ".join(words) if words else text


def pooled_features(output: Any) -> Any:
    """`get_*_features` returns a tensor in transformers 4 and a model output in 5."""
    return output if hasattr(output, "shape") else output.pooler_output


def _normalise(features: Any) -> np.ndarray:
    import numpy as np

    array = features.float().cpu().numpy().astype(np.float32, copy=False)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    # A zero vector (possible only for a broken model) stays zero rather than becoming NaN.
    return array / np.maximum(norms, 1e-12)


def _load(info: ClipModelInfo, device: str, dtype_setting: str) -> ClipEncoder:
    from transformers import CLIPModel, CLIPProcessor

    dtype = resolve_dtype(dtype_setting, device)
    try:
        with quiet_transformers():
            model = CLIPModel.from_pretrained(info.model_dir, dtype=dtype)
            processor = CLIPProcessor.from_pretrained(info.model_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot load CLIP from {info.model_dir}: {one_line(exc)}") from None
    model.to(device).eval()
    return ClipEncoder(info, model, processor, device, dtype)


def load_clip_dir(model_dir: Path, device: str = "cpu", dtype: str = "float32") -> ClipEncoder:
    """Load a CLIP checkpoint folder directly, outside any app (training evaluation, benchmarks)."""
    config = json.loads((model_dir / "config.json").read_text())
    info = ClipModelInfo(
        model_id=str(model_dir),
        model_dir=model_dir,
        dim=int(config.get("projection_dim") or 512),
        fingerprint=_weights_fingerprint(model_dir),
    )
    return _load(info, device, dtype)


def load_clip_encoder(app: ModelHost) -> ClipEncoder:
    """The configured CLIP, loaded once per process and kept in the model cache."""
    info = clip_model_info(app)
    device = app.device
    key = f"clip:{info.fingerprint}:{device}:{app.settings.dtype}"
    return app.model_cache.get(key, lambda: _load(info, device, app.settings.dtype), device)


@dataclass(frozen=True)
class ClipEncoderSource:
    """The configured CLIP as the image index's `memory.image_encoder.EncoderSource`."""

    app: ModelHost

    def embedding_model(self) -> EmbeddingModel:
        info = clip_model_info(self.app)
        return EmbeddingModel(model_id=info.model_id, dim=info.dim, fingerprint=info.fingerprint)

    def load(self) -> ClipEncoder:
        return load_clip_encoder(self.app)

    def reference_captions(self) -> tuple[list[str], np.ndarray]:
        from agent.vision.zero_shot import label_vectors  # deferred: zero_shot imports this module

        labels, vectors = label_vectors(self.load())
        return [label.prompt for label in labels], vectors
