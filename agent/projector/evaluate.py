"""How close a projector comes to the generator's own conditioning, on captions it never saw.

- mean cosine: per caption, the cosine between the projected and the target conditioning (all
  positions flattened into one vector), averaged over captions; `token_cosine` averages per position.
- retrieval: each caption's projection ranks the N targets by cosine; top-1 / top-5 count how often
  its own target comes first / among the first five. Among near-identical captions ("a small red
  circle" vs "a small red circle on a gray background") this is the demanding figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agent.projector.llm_features import SpanFeatures, collate
from agent.projector.model import OutputProjector


def project(
    model: OutputProjector, features: Sequence[SpanFeatures], device: str = "cpu", batch_size: int = 64
) -> np.ndarray:
    """The projector's output for every span, (N, n_queries, d_cond) float32."""
    outputs = []
    model = model.to(device).eval()
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = collate(features[start : start + batch_size], device)
            outputs.append(model(**batch).float().cpu().numpy())
    return np.concatenate(outputs)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def conditioning_metrics(predicted: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Mean cosine, per-position cosine, top-1 and top-5 retrieval of each caption's own target."""
    n = len(predicted)
    flat_p, flat_t = _unit(predicted.reshape(n, -1)), _unit(targets.reshape(n, -1))
    similarity = flat_p @ flat_t.T
    own = np.diag(similarity)
    # Rank of the own target: how many others score strictly higher (the same products on both
    # sides, so rounding cannot put a caption behind itself).
    rank = (similarity > own[:, None]).sum(1)
    token = (_unit(predicted) * _unit(targets)).sum(-1).mean(1)
    return {
        "captions": n,
        "mean_cosine": round(float(own.mean()), 4),
        "token_cosine": round(float(token.mean()), 4),
        "top1": round(float((rank < 1).mean()), 4),
        "top5": round(float((rank < 5).mean()), 4),
        # What retrieval must beat: how alike the targets of different captions already are.
        "target_cosine_between_captions": round(float((flat_t @ flat_t.T)[~np.eye(n, dtype=bool)].mean()), 4)
        if n > 1
        else None,
    }
