"""What the image index needs of an embedding model, as Protocols (rclip's `RClip(model, db)`).

The index never loads a model itself: the app hands it an `EncoderSource` (the CLIP from the
catalogue, in `agent.vision.clip_encoder`), so `memory` knows nothing above the core and can be
tested with any encoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from memory.chroma_store import EmbeddingModel


class ImageEncoder(Protocol):
    """A loaded model: L2-normalised float32 vectors for texts and images."""

    # The side the model's preprocessing wants: images are decoded (downscaled) to it first.
    image_side: int

    def prepare(self, image: Image.Image) -> np.ndarray: ...

    def encode_prepared(self, pixel_values: list[np.ndarray] | np.ndarray) -> np.ndarray: ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


class EncoderSource(Protocol):
    """The configured model: described from its files alone (cheap), loaded only on demand."""

    def embedding_model(self) -> EmbeddingModel: ...

    def load(self) -> ImageEncoder: ...

    def reference_captions(self) -> tuple[list[str], np.ndarray]:
        """Captions of everyday subjects the loaded model can read, with their vectors: the rivals
        a query must beat before its best photo counts as a match (`memory.match_check`)."""
        ...
