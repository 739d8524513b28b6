"""A tiny random-weight causal LM (Qwen2 architecture), saved like a hub checkpoint.

No real transformers LLM can be assumed in tests or CI, so the transformers feature path (tokenizer
offsets -> `output_hidden_states` -> the projector) runs on this one. Its weights are random, but
a random transformer's last states still tell tokens and their neighbours apart, which is what a
projector needs to learn the shapes world; the real GGUF is used wherever it is present.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.core.cached_build import cached_build
from agent.projector.signals import MODALITIES, signal_tokens
from agent.training.shapes_world import all_captions

DONE_MARKER = "tiny-llm.json"

# Words the tiny models know (the tiny LLM here, the tests' tiny pipelines); anything else becomes
# the unknown token, which is fine for noise.
TINY_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "at",
    "and",
    "with",
    "in",
    "on",
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "white",
    "black",
    "circle",
    "square",
    "triangle",
    "star",
    "lighthouse",
    "dusk",
    "sound",
    "waves",
    "sea",
    "image",
    "picture",
    "photo",
    "video",
    "clip",
    "cat",
    "dog",
    "music",
    "rain",
]


@dataclass(frozen=True)
class TinyLLMConfig:
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab_size: int = 512
    max_positions: int = 1024
    seed: int = 0


def _corpus() -> list[str]:
    lines = list(all_captions())
    lines += [" ".join(signal_tokens(m)) for m in MODALITIES] + [
        "".join(signal_tokens(m)) for m in MODALITIES
    ]
    lines.append(" ".join(TINY_WORDS))
    return lines * 3


def build_tiny_llm(out_dir: Path, config: TinyLLMConfig | None = None) -> Path:
    """A byte-level BPE tokenizer (any text encodes) and a random Qwen2ForCausalLM, in `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    config = config or TinyLLMConfig()
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=config.max_positions,
    )
    model_config = Qwen2Config(
        vocab_size=core.get_vocab_size(),
        hidden_size=config.hidden_size,
        intermediate_size=config.hidden_size * 2,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(config.seed)
    model = Qwen2ForCausalLM(model_config).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / DONE_MARKER).write_text(json.dumps(asdict(config), indent=2, sort_keys=True))
    return out_dir


def ensure_tiny_llm(cache_root: Path, config: TinyLLMConfig | None = None) -> Path:
    """The cached tiny LLM folder for this config, built first if needed (seconds)."""
    import transformers

    config = config or TinyLLMConfig()
    blob = json.dumps({"config": asdict(config), "transformers": transformers.__version__}, sort_keys=True)
    return cached_build(
        cache_root / f"tiny-llm-{hashlib.sha256(blob.encode()).hexdigest()[:12]}",
        lambda building: build_tiny_llm(building, config),
        done=lambda folder: (folder / DONE_MARKER).is_file(),
    )
