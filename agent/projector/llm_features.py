"""The LLM's last hidden states over a request and its signal tokens, from either local backend.

- transformers: `output_hidden_states=True`; the last entry is the final-norm output.
- llama.cpp: a second `Llama` over the same GGUF with `embedding=True` and no pooling, which gives
  the final-norm output of every token (`_embed_tokens` explains why not through `Llama.embed`).
  The weights are memory-mapped, so the file is in RAM once however many contexts use it.

Features are cached on disk, keyed by the LLM's content fingerprint and the exact text: the LLM is
frozen, so a caption's features never change, and the GGUF reads a few dozen tokens a second on a
small CPU. A cache entry holds the hidden states and where each token ends in the text; which
positions spell which signal is worked out on loading, so that rule can change without a refill.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.core.errors import ConfigError, ModelLoadError, ToolInputError, one_line
from agent.core.model_fingerprint import fingerprint_path
from agent.llm.llamacpp import load_llama
from agent.models.devices import resolve_dtype
from agent.models.loading_logs import quiet_transformers
from agent.projector.signals import signal_ids, with_signals

if TYPE_CHECKING:
    import torch

    from agent.models.host import ModelHost

Backend = str  # "llamacpp" | "transformers"
# Longest request + signal span, in LLM tokens; llama.cpp would silently cut a longer one.
MAX_SPAN_TOKENS = 1024
ENCODE_BATCH = 16
# Bump when the way features are computed changes: cached entries of older versions are then ignored.
CACHE_VERSION = 2


@dataclass(frozen=True)
class LLMIdentity:
    """Which LLM made the features: recorded in a projector and checked when it is used."""

    backend: Backend
    name: str
    path: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return {
            "backend": self.backend,
            "name": self.name,
            "path": self.path,
            "fingerprint": self.fingerprint,
        }

    def describe(self) -> str:
        return f"{self.name or Path(self.path).name} ({self.backend}, {self.fingerprint})"


@dataclass
class SpanFeatures:
    """One request's span: hidden states (L, d_llm) and each position's signal id (-1: a word)."""

    hidden: np.ndarray
    signal_ids: np.ndarray


class FeatureLLM:
    """A frozen LLM that returns per-token last hidden states; subclasses hold one backend."""

    identity: LLMIdentity

    @property
    def d_llm(self) -> int:
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[int]]]:
        """For each text: hidden states (L, d_llm) float32 and each token's end, in characters."""
        raise NotImplementedError


class LlamaCppFeatures(FeatureLLM):
    def __init__(self, identity: LLMIdentity, n_threads: int | None = None, n_gpu_layers: int = -1) -> None:
        self.identity = identity
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_gpu_layers = n_gpu_layers
        self._llama: Any = None
        self._lock = threading.Lock()

    def llama(self) -> Any:
        if self._llama is None:
            import llama_cpp

            self._llama = load_llama(
                self.identity.path,
                f"re-fetch it with `modalgraph models pull {self.identity.name or 'planner'}`",
                " for projector features",
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE,
                n_ctx=MAX_SPAN_TOKENS,
                n_batch=MAX_SPAN_TOKENS,
                n_ubatch=MAX_SPAN_TOKENS,
                n_threads=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
            )
        return self._llama

    @property
    def d_llm(self) -> int:
        return int(self.llama().n_embd())

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[int]]]:
        llama = self.llama()
        with self._lock:
            # The same call `embed` makes, so positions line up with its vectors.
            tokens = [llama.tokenize(text.encode("utf-8")) for text in texts]
            for text, ids in zip(texts, tokens, strict=True):
                _check_length(text, len(ids))
            vectors = _embed_tokens(llama, tokens)
            out = []
            for text, ids, rows in zip(texts, tokens, vectors, strict=True):
                if len(rows) != len(ids):
                    raise ModelLoadError(
                        f"llama.cpp returned {len(rows)} vectors for {len(ids)} tokens; "
                        "the GGUF may not support per-token embeddings"
                    )
                pieces = [len(llama.detokenize([i], special=False)) for i in ids]
                ends = _ends_from_pieces(text, pieces)
                out.append((np.asarray(rows, dtype=np.float32), ends))
        return out


def _embed_tokens(llama: Any, token_lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Per-token final states for several sequences, decoded together as `Llama.embed` does.

    `Llama.embed` itself (llama-cpp-python 0.3.x) cannot be used for more than one text at a time
    with pooling off: it steps through the output buffer by a sequence's token count rather than by
    tokens x width, so every sequence after the first of a batch comes back as a shifted copy of
    the first. This is its loop with the offset right; one text per call would be three times slower.
    """
    import llama_cpp

    width = int(llama.n_embd())
    limit = min(int(llama.n_batch), MAX_SPAN_TOKENS)
    max_sequences = int(getattr(llama.context_params, "n_seq_max", 1)) or 1
    out: list[np.ndarray] = []
    group: list[Sequence[int]] = []

    def decode() -> None:
        batch, ctx = llama._batch, llama._ctx
        batch.reset()
        for sequence, tokens in enumerate(group):
            batch.add_sequence(list(tokens), sequence, True)
        ctx.kv_cache_clear()
        ctx.decode(batch)
        total = sum(len(tokens) for tokens in group)
        pointer = llama_cpp.llama_get_embeddings(ctx.ctx)
        flat = np.ctypeslib.as_array(pointer, shape=(total * width,)).reshape(total, width).copy()
        start = 0
        for tokens in group:
            out.append(flat[start : start + len(tokens)])
            start += len(tokens)
        batch.reset()
        group.clear()

    for tokens in token_lists:
        if group and (sum(map(len, group)) + len(tokens) > limit or len(group) >= max_sequences):
            decode()
        group.append(tokens)
    if group:
        decode()
    llama._ctx.kv_cache_clear()
    llama.reset()
    return out


class TransformersFeatures(FeatureLLM):
    def __init__(self, identity: LLMIdentity, device: str = "cpu", dtype: str = "auto") -> None:
        self.identity = identity
        self.device = device
        self.dtype = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                with quiet_transformers():
                    tokenizer = AutoTokenizer.from_pretrained(self.identity.path)
                    model = AutoModelForCausalLM.from_pretrained(
                        self.identity.path, dtype=resolve_dtype(self.dtype, self.device)
                    )
            except (OSError, ValueError) as exc:
                raise ModelLoadError(
                    f"cannot load the transformers LLM from {self.identity.path}: {one_line(exc)}"
                ) from None
            if not getattr(tokenizer, "is_fast", False):
                raise ConfigError(
                    f"the tokenizer in {self.identity.path} is not a fast tokenizer (no offsets)"
                )
            tokenizer.padding_side = "right"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._model = model.to(self.device).eval().requires_grad_(False)
            self._tokenizer = tokenizer
        return self._model, self._tokenizer

    @property
    def d_llm(self) -> int:
        model, _ = self.load()
        return int(model.config.get_text_config().hidden_size)

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[int]]]:
        import torch

        model, tokenizer = self.load()
        with self._lock, torch.inference_mode():
            batch = tokenizer(list(texts), return_offsets_mapping=True, padding=True, return_tensors="pt")
            lengths = batch["attention_mask"].sum(1).tolist()
            for text, length in zip(texts, lengths, strict=True):
                _check_length(text, int(length))
            offsets = batch.pop("offset_mapping")
            inputs = {k: v.to(self.device) for k, v in batch.items()}
            extra = {"logits_to_keep": 1} if _accepts(model.forward, "logits_to_keep") else {}
            hidden = model(**inputs, output_hidden_states=True, **extra).hidden_states[-1]
            hidden = hidden.float().cpu().numpy()
        return [
            (hidden[row, :length], [int(end) for end in offsets[row, :length, 1].tolist()])
            for row, length in enumerate(lengths)
        ]


def _accepts(function: Any, name: str) -> bool:
    """Whether a forward takes `name` (only the last position's logits: the rest are never read)."""
    import inspect

    return name in inspect.signature(function).parameters


def _check_length(text: str, tokens: int) -> None:
    if tokens > MAX_SPAN_TOKENS:
        raise ToolInputError(
            f"the request is {tokens} LLM tokens; the projector reads at most {MAX_SPAN_TOKENS} "
            f"(shorten the prompt): {text[:60]}..."
        )


def _ends_from_pieces(text: str, pieces: Sequence[int]) -> list[int]:
    """Token ends in characters, from each token's length in bytes.

    The pieces are aligned at the end of the text, where the signal tokens are: tokenizers that add
    a leading space (SentencePiece) or a BOS piece differ from the text only at its start.
    """
    data = text.encode("utf-8")
    shift = sum(pieces) - len(data)
    ends, total = [], 0
    for piece in pieces:
        total += piece
        end = min(max(total - shift, 0), len(data))
        ends.append(len(data[:end].decode("utf-8", errors="ignore")))
    return ends


class FeatureCache:
    """Hidden states and token ends per text, under `root/<LLM fingerprint>/`."""

    def __init__(self, root: Path | None, identity: LLMIdentity) -> None:
        self.folder = root / f"v{CACHE_VERSION}-{identity.fingerprint}" if root is not None else None
        self.hits = 0
        self.misses = 0

    def _path(self, text: str) -> Path:
        assert self.folder is not None
        return self.folder / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".npz")

    def get(self, text: str) -> tuple[np.ndarray, list[int]] | None:
        if self.folder is None:
            return None
        path = self._path(text)
        try:
            with np.load(path) as data:
                found = (data["hidden"].astype(np.float32), data["ends"].tolist())
        except (OSError, ValueError, KeyError):
            self.misses += 1
            return None
        self.hits += 1
        return found

    def put(self, text: str, hidden: np.ndarray, ends: list[int]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                # float16 halves the cache; the projector's LayerNorm does not see the difference.
                np.savez(out, hidden=hidden.astype(np.float16), ends=np.asarray(ends, dtype=np.int32))
            os.replace(tmp, self._path(text))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def span_features(
    llm: FeatureLLM,
    requests: Sequence[str],
    modality: str,
    cache_root: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[SpanFeatures]:
    """Each request with the modality's signal tokens, through the LLM (or the cache)."""
    cache = FeatureCache(cache_root, llm.identity)
    signal_texts = [with_signals(request, modality) for request in requests]
    raw: list[tuple[np.ndarray, list[int]] | None] = [cache.get(s.text) for s in signal_texts]
    missing = [i for i, found in enumerate(raw) if found is None]
    if progress is not None and len(missing) < len(raw):
        progress(len(raw) - len(missing))
    for start in range(0, len(missing), ENCODE_BATCH):
        chunk = missing[start : start + ENCODE_BATCH]
        for index, (hidden, ends) in zip(
            chunk, llm.encode([signal_texts[i].text for i in chunk]), strict=True
        ):
            cache.put(signal_texts[index].text, hidden, ends)
            raw[index] = (hidden, ends)
        if progress is not None:
            progress(len(chunk))
    out = []
    for signal_text, found in zip(signal_texts, raw, strict=True):
        assert found is not None
        hidden, ends = found
        ids = np.asarray(signal_ids(ends, signal_text.spans), dtype=np.int64)
        out.append(SpanFeatures(hidden.astype(np.float32), ids))
    return out


def collate(spans: Sequence[SpanFeatures], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Pad a batch of spans: hidden (B, L, d), signal_ids (B, L), padding_mask (B, L), True = padding."""
    import torch

    length = max(len(s.hidden) for s in spans)
    width = spans[0].hidden.shape[1]
    hidden = torch.zeros(len(spans), length, width)
    ids = torch.full((len(spans), length), -1, dtype=torch.long)
    mask = torch.ones(len(spans), length, dtype=torch.bool)
    for row, span in enumerate(spans):
        n = len(span.hidden)
        hidden[row, :n] = torch.from_numpy(span.hidden)
        ids[row, :n] = torch.from_numpy(span.signal_ids)
        mask[row, :n] = False
    return {"hidden": hidden.to(device), "signal_ids": ids.to(device), "padding_mask": mask.to(device)}


# ------------------------------------------------------------------ choosing and loading the LLM


def feature_llm_name(app: ModelHost) -> str:
    """The catalogue entry whose LLM gives features: the setting, else the planner of the backend."""
    explicit = app.settings.projector_llm
    if explicit:
        return explicit
    return "planner-hf" if app.settings.llm_backend == "transformers" else "planner"


def llm_identity(app: ModelHost, name: str | None = None) -> LLMIdentity:
    """Resolve the feature LLM on this machine (a missing one names its pull command); loads nothing."""
    name = name or feature_llm_name(app)
    entry = app.catalogue.entry(name)
    if entry.format not in ("gguf", "hf-dir"):
        raise ConfigError(f"projector_llm {name!r} is a {entry.format} model, not an LLM")
    path = app.catalogue.resolve(name)
    backend = "llamacpp" if entry.format == "gguf" else "transformers"
    return LLMIdentity(backend, name, str(path), fingerprint_path(Path(path)))


def identity_for_path(path: Path, name: str = "") -> LLMIdentity:
    """An LLM named by its path: a .gguf file runs on llama.cpp, a folder on transformers."""
    if not path.exists():
        raise ConfigError(f"LLM {path} does not exist")
    backend = "llamacpp" if path.is_file() else "transformers"
    return LLMIdentity(backend, name, str(path.resolve()), fingerprint_path(path))


def open_feature_llm(identity: LLMIdentity, app: ModelHost | None = None) -> FeatureLLM:
    """The backend for an identity (not yet loaded: each loads on first use)."""
    settings = app.settings if app is not None else None
    if identity.backend == "llamacpp":
        return LlamaCppFeatures(
            identity,
            n_threads=settings.n_threads if settings else None,
            n_gpu_layers=settings.n_gpu_layers if settings else -1,
        )
    device = app.device if app is not None else "cpu"
    return TransformersFeatures(identity, device=device, dtype=settings.dtype if settings else "auto")


def load_feature_llm(app: ModelHost, identity: LLMIdentity) -> FeatureLLM:
    """The feature LLM through the model cache: loaded once, evicted under the memory budget."""

    def loader() -> FeatureLLM:
        llm = open_feature_llm(identity, app)
        _ = llm.d_llm  # load now, so the cache sizes the real thing
        return llm

    size = _weights_size(Path(identity.path))
    device = "cpu" if identity.backend == "llamacpp" else app.device
    return app.model_cache.get(f"projector-llm:{identity.backend}:{identity.path}", loader, device, size)


def _weights_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.suffix in (".safetensors", ".bin"))
