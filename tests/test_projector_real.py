"""Projector features from the real planner GGUF (llama.cpp, per-token embeddings): kept small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.projector.llm_features import llm_identity, open_feature_llm, span_features
from agent.projector.signals import with_signals

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]

CAPTIONS = ["a red circle", "a large blue star on a gray background", "waves at dusk"]


def test_the_gguf_gives_one_final_state_per_token(real_planner: Path) -> None:
    identity = llm_identity(AppContext(load_settings()), "planner")
    assert identity.backend == "llamacpp" and Path(identity.path) == real_planner
    llm = open_feature_llm(identity)
    spans = span_features(llm, CAPTIONS, "image")
    assert llm.d_llm == 1536
    llama = llm.llama()  # type: ignore[attr-defined]
    for caption, span in zip(CAPTIONS, spans, strict=True):
        text = with_signals(caption, "image").text
        assert span.hidden.shape == (len(llama.tokenize(text.encode())), 1536)
        assert span.signal_ids[0] == -1 and span.signal_ids[-1] == 3
        assert sorted(set(span.signal_ids.tolist()) - {-1}) == [0, 1, 2, 3]
        # Alone, our decode is llama.cpp's own `embed` exactly.
        [(alone, ends)] = llm.encode([text])
        assert np.array_equal(alone, np.asarray(llama.embed(text), dtype=np.float32))
        assert ends[-1] == len(text)
        # Decoded together with the others, it is the same up to batched-kernel rounding (not another
        # sequence's states, which is what `embed` returns for all but the first of a batch).
        cosine = (
            (alone * span.hidden).sum(1) / np.linalg.norm(alone, axis=1) / np.linalg.norm(span.hidden, axis=1)
        )
        assert cosine.min() > 0.995
    # The signal positions read the words before them.
    last = [span.hidden[-1] for span in spans]
    assert not np.allclose(last[0], last[1], atol=1e-2)
