"""A tiny random-weight Whisper saved as a model folder, for the transformers path's plumbing tests.

Its text is gibberish: tests check windows, resampling, progress, cancellation and the result's
shape, never what it says. Byte-level vocabulary, Whisper's special and timestamp tokens, and a
generation config that knows three languages, so the pipeline's language and timestamp paths run.
"""

from __future__ import annotations

from pathlib import Path

LANGUAGES = ("en", "fr", "de")
TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>, one every 0.02 s


def _byte_vocab() -> dict[str, int]:
    from tokenizers import pre_tokenizers

    return {char: index for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}


def build_tiny_whisper(folder: Path, max_target_positions: int = 12) -> Path:
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.generation.configuration_utils import GenerationConfig

    vocab = _byte_vocab()
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in LANGUAGES),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
        *(f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS)),
    ]
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[:-TIMESTAMPS]})
    ids = {token: vocab[token] for token in specials[:-TIMESTAMPS]}
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=80,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=16,
        max_source_positions=1500,
        max_target_positions=max_target_positions,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(config).eval()
    generation = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        max_length=max_target_positions,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        begin_suppress_tokens=[ids["<|endoftext|>"]],
        suppress_tokens=[],
    )
    model.generation_config = generation
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
