"""What a projector must produce: the generator's own text-encoder output for a caption.

`generator_spec` reads a diffusers folder's configs (no weights) for the conditioning's shape:
Stable Diffusion and Zeroscope take the text encoder's last hidden states, `(tokenizer max length,
hidden size)`, 77 x 768 for SD 1.5 but 16 x 64 for the shapes world; AudioLDM takes one
L2-normalised CLAP embedding, `(1, projection_dim)`. Nothing is hard-coded.

Targets are computed exactly as the pipelines' `encode_prompt` does and cached on disk per caption,
keyed by a fingerprint of the text encoder and tokenizer (NExT-GPT's `preprocess_embeddings.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.core.errors import ModelLoadError, ToolUnavailableError, one_line
from agent.core.model_fingerprint import fingerprint_path
from agent.models.loading_logs import quiet_transformers
from agent.projector.signals import check_modality

if TYPE_CHECKING:
    import torch

    from agent.models.host import ModelHost

# The catalogue entry each modality generates with.
GENERATOR_NAMES: dict[str, str] = {"image": "image-gen", "video": "video-gen", "audio": "audio-gen"}
# Tokenizers without a real limit report a huge model_max_length; the position table is the limit then.
_NO_LIMIT = 1_000_000
TARGET_BATCH = 64


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator as a projector sees it: where it is, and the conditioning shape it takes."""

    modality: str
    name: str
    model_id: str
    path: str
    pipeline: str
    n_queries: int
    d_cond: int
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.name or 'generator'} ({self.model_id or self.path})"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path} is missing: is {path.parent.parent} a diffusers pipeline folder?"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {one_line(exc)}") from None


def generator_spec(path: Path, modality: str, name: str = "", model_id: str = "") -> GeneratorSpec:
    """The conditioning shape of the pipeline at `path`, from its config files alone."""
    check_modality(modality)
    path = Path(path)
    index = _read_json(path / "model_index.json")
    pipeline = str(index.get("_class_name", ""))
    if "text_encoder_2" in index or pipeline.startswith("AudioLDM2"):
        raise ToolUnavailableError(
            f"{pipeline} has two text encoders; the output projector conditions one-encoder pipelines "
            "(Stable Diffusion 1/2, Zeroscope, AudioLDM); use conditioning=text"
        )
    text = _read_json(path / "text_encoder" / "config.json")
    text = text.get("text_config", text) if "hidden_size" not in text else text
    if modality == "audio":
        n_queries, d_cond = 1, int(text["projection_dim"])
    else:
        tokenizer = _read_json(path / "tokenizer" / "tokenizer_config.json")
        limit = int(tokenizer.get("model_max_length") or _NO_LIMIT)
        n_queries = limit if limit < _NO_LIMIT else int(text["max_position_embeddings"])
        d_cond = int(text["hidden_size"])
    digest = hashlib.sha256()
    for part in ("text_encoder", "tokenizer"):
        digest.update(fingerprint_path(path / part).encode())
    return GeneratorSpec(
        modality=modality,
        name=name,
        model_id=model_id or str(path),
        path=str(path.resolve()),
        pipeline=pipeline,
        n_queries=n_queries,
        d_cond=d_cond,
        fingerprint=digest.hexdigest()[:16],
    )


def current_generator(app: ModelHost, modality: str) -> GeneratorSpec:
    """The spec of the generator the tools would load now (a missing one names its pull command)."""
    name = GENERATOR_NAMES[check_modality(modality)]
    path = app.catalogue.resolve(name)
    return generator_spec(Path(path), modality, name, app.catalogue.model_id(name))


class TargetEncoder:
    """The generator's tokenizer and text encoder, computing conditioning as its pipeline does."""

    def __init__(self, spec: GeneratorSpec, device: str = "cpu") -> None:
        import transformers
        from transformers import AutoTokenizer

        self.spec = spec
        self.device = device
        path = Path(spec.path)
        index = _read_json(path / "model_index.json")
        class_name = index.get("text_encoder", [None, None])[1]
        encoder_class = getattr(transformers, str(class_name), None)
        if encoder_class is None:
            raise ModelLoadError(f"{path}: unknown text encoder class {class_name!r}")
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
                self.encoder = encoder_class.from_pretrained(path / "text_encoder").to(device).eval()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the text encoder of {path}: {one_line(exc)}") from None
        self.encoder.requires_grad_(False)
        self.calls = 0

    def encode(self, captions: Sequence[str]) -> np.ndarray:
        """(len(captions), n_queries, d_cond) float32."""
        import torch

        self.calls += 1
        tokens = self.tokenizer(
            list(captions),
            padding="max_length",
            max_length=self.spec.n_queries
            if self.spec.modality != "audio"
            else self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids = tokens.input_ids.to(self.device)
        mask = tokens.attention_mask.to(self.device)
        with torch.inference_mode():
            if self.spec.modality == "audio":
                # AudioLDM: the CLAP text embedding, L2-normalised, as one token.
                embeds = self.encoder(ids, attention_mask=mask).text_embeds
                out = torch.nn.functional.normalize(embeds, dim=-1)[:, None, :]
            else:
                # Stable Diffusion passes the mask only to encoders configured to use it.
                use_mask = getattr(self.encoder.config, "use_attention_mask", False)
                out = self.encoder(ids, attention_mask=mask if use_mask else None)[0]
        return out.float().cpu().numpy()


def _cache_path(root: Path, spec: GeneratorSpec, caption: str) -> Path:
    name = hashlib.sha256(f"{spec.modality}\n{caption}".encode()).hexdigest()[:32]
    return root / spec.fingerprint / f"{name}.npy"


def caption_targets(
    spec: GeneratorSpec,
    captions: Sequence[str],
    cache_root: Path | None = None,
    device: str = "cpu",
    encoder: TargetEncoder | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Targets for every caption, from the disk cache where present; (N, n_queries, d_cond)."""
    found: list[np.ndarray | None] = []
    for caption in captions:
        value = None
        if cache_root is not None:
            with contextlib.suppress(OSError, ValueError):
                value = np.load(_cache_path(cache_root, spec, caption))
            if value is not None and value.shape != (spec.n_queries, spec.d_cond):
                value = None
        found.append(value)
    missing = [i for i, value in enumerate(found) if value is None]
    if progress is not None and len(missing) < len(found):
        progress(len(found) - len(missing))
    if missing:
        encoder = encoder or TargetEncoder(spec, device)
        for start in range(0, len(missing), TARGET_BATCH):
            chunk = missing[start : start + TARGET_BATCH]
            for index, value in zip(chunk, encoder.encode([captions[i] for i in chunk]), strict=True):
                found[index] = value
                if cache_root is not None:
                    _save(_cache_path(cache_root, spec, captions[index]), value)
            if progress is not None:
                progress(len(chunk))
    return np.stack([value for value in found if value is not None]).astype(np.float32)


def _save(path: Path, value: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.save(out, value.astype(np.float32))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def as_prompt_embeds(conditioning: torch.Tensor, modality: str) -> torch.Tensor:
    """A projector's (B, n_queries, d_cond) output in the form the pipeline's `prompt_embeds` takes."""
    import torch

    if modality == "audio":
        # AudioLDM's prompt_embeds is (B, d), normalised as its own encoder's output is.
        return torch.nn.functional.normalize(conditioning[:, 0, :], dim=-1)
    return conditioning
