"""An honest "no match": is the best photo for a text query really a photo OF that query?

CLIP always returns nearest neighbours, and a cosine value alone cannot say whether they match:
each model scores on its own scale (a ViT-B/32 rarely passes 0.35, other models sit elsewhere), and
one query's scores run higher than another's. So no cosine constant is used. A hit is a match when
both hold:

1. **It beats the rivals.** The photo is compared with everyday captions the model can read ("a
   photo of a beach", "a red square"; `agent/vision/zero_shot_labels.toml`). The query must fit the
   photo better than every one of them, by `RIVAL_MARGIN_SPREADS`: a red square is the best hit for
   "a red circle" in a library without red circles, and "a red square" fits it better. Captions
   that say everything the query says ("a photo of a dog" for "dog") are not rivals: they describe
   the same thing.
2. **It is above chance.** The same captions against a sample of the library's own photos give the
   model's chance-level scores (most caption-photo pairs do not match). The query must score
   `FLOOR_SPREADS` spreads above their median.

The margin and the floor are both in units of that chance distribution's spread (1.4826 x its
median absolute deviation), measured per model and per library: this is the calibration, and it is
why the same two constants hold for models that score on different scales. They were chosen on the
shapes world (`bench/library.py --skip throughput,queries,memory,caps,filters`): with a third of
the colour x shape combinations left out of the library, over three draws, margins of 0.15, 0.25
and 0.35 spreads gave "no match" for 27, 30 and 30 of the 30 absent queries, and Recall@1 of
60, 60 and 57 of the 60 present ones. 0.15 is kept: in a 30-photo library (one render per
combination) the tiny shapes CLIP separates a star from a triangle by only 0.18 spreads, and a
larger margin would call its one blue star "no match". Absent combinations whose nearest photo
still passes are those the tiny model itself confuses (an orange triangle it scores as a star).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# The query must beat every rival caption on the photo by this many spreads.
RIVAL_MARGIN_SPREADS = 0.15
# The query must score this many spreads above the chance median.
FLOOR_SPREADS = 1.0
# Library photos sampled for the chance distribution.
SAMPLE_SIZE = 512
# Words that carry no subject: "a photo of the dog" and "dog" say the same thing.
_STOP_WORDS = frozenset(
    {"a", "an", "the", "of", "on", "in", "at", "with", "and", "or", "my", "our", "your", "some"}
    | {"photo", "photos", "picture", "pictures", "image", "images", "this", "that", "these", "those"}
    | {"to", "by", "from", "for"}
)


@dataclass(frozen=True)
class Calibration:
    """One model's rivals and chance level, measured on one library."""

    captions: tuple[str, ...]
    vectors: np.ndarray  # (captions, dim), L2-normalised
    median: float
    spread: float


@dataclass(frozen=True)
class Verdict:
    matches: bool
    score: float
    rival: str | None  # the rival caption that won, when one did
    rival_score: float | None


def calibrate(captions: Sequence[str], vectors: np.ndarray, sample: np.ndarray) -> Calibration:
    """The chance distribution of caption-photo scores for this model on this library's photos."""
    import numpy as np

    scores = (sample @ vectors.T).ravel() if len(sample) else np.zeros(1)
    median = float(np.median(scores))
    spread = 1.4826 * float(np.median(np.abs(scores - median)))
    return Calibration(tuple(captions), vectors, median, max(spread, 1e-4))


def content_words(text: str) -> set[str]:
    """The words that say what something is, singular: "the red circles" -> {"red", "circle"}."""
    words = set()
    for word in re.findall(r"[^\W_]+", text.casefold()):
        if word in _STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return words


def judge(
    calibration: Calibration, query: str, query_vector: np.ndarray, images: np.ndarray
) -> list[Verdict]:
    """A verdict per photo vector in `images`, for the query whose text vector is `query_vector`.

    The query is scored as typed, not wrapped in the captions' "a photo of ..." template: on a
    model that does not know those words the wrapper adds noise that can lift a wrong photo over
    its own caption."""
    import numpy as np

    wanted = content_words(query)
    rivals = [n for n, caption in enumerate(calibration.captions) if not wanted <= content_words(caption)]
    scores = images @ query_vector
    floor = calibration.median + FLOOR_SPREADS * calibration.spread
    margin = RIVAL_MARGIN_SPREADS * calibration.spread
    rival_scores = images @ calibration.vectors[rivals].T if rivals else np.zeros((len(images), 0))
    verdicts = []
    for row, score in enumerate(scores):
        best_rival, best_score = None, None
        if rival_scores.shape[1]:
            n = int(np.argmax(rival_scores[row]))
            best_rival, best_score = calibration.captions[rivals[n]], float(rival_scores[row, n])
        beaten = best_score is not None and score < best_score + margin
        verdicts.append(Verdict(bool(score >= floor and not beaten), float(score), best_rival, best_score))
    return verdicts
