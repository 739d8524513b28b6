"""Signal tokens per modality and the span of LLM positions the projector reads.

NExT-GPT adds `[IMG0]`... to the LLM's vocabulary and trains their embeddings. A GGUF's vocabulary
cannot grow, so here the signal tokens are plain text appended after the request; the LLM cuts
each into a few ordinary tokens (`<`, `image`, `_`, `0`, `0`, `>`), and the projector keeps one
learnable embedding per signal token, added at the positions that spell it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.core.errors import ConfigError

MODALITIES: tuple[str, ...] = ("image", "video", "audio")
# NExT-GPT uses 4 image, 24 video and 8 audio tokens. Every signal costs about five LLM tokens
# here (see above), so each modality gets four: enough positions to read from, a short suffix.
SIGNAL_COUNT = 4
# Signal id of a position that spells no signal token (the request's own words).
TEXT = -1


def check_modality(modality: str) -> str:
    """The modality name, or a one-line error listing the known ones."""
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
    return modality


def signal_tokens(modality: str) -> list[str]:
    """`image` -> ["<image_00>", "<image_01>", "<image_02>", "<image_03>"]."""
    check_modality(modality)
    return [f"<{modality}_{i:02d}>" for i in range(SIGNAL_COUNT)]


@dataclass(frozen=True)
class SignalText:
    """The text the LLM reads and where each signal token sits in it (character offsets)."""

    text: str
    spans: tuple[tuple[int, int], ...]


def with_signals(request: str, modality: str) -> SignalText:
    """The request as the planner would end it: its words, then the modality's signal tokens."""
    text = " ".join(request.split()) + " "
    spans = []
    for token in signal_tokens(modality):
        spans.append((len(text), len(text) + len(token)))
        text += token
    return SignalText(text, tuple(spans))


def signal_ids(token_ends: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Which signal token each LLM token belongs to (TEXT for the request's words).

    A token belongs to the signal that holds its last character: BPE merges across signal
    boundaries (`><` closes one signal and opens the next), and a causal LLM's state at a position
    has read everything up to that character.
    """
    ids = []
    for end in token_ends:
        owner = TEXT
        for index, (start, stop) in enumerate(spans):
            if start < end <= stop:
                owner = index
                break
        ids.append(owner)
    return ids
