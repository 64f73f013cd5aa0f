"""What an image encoder is: the protocol, and helpers every backend uses.

An encoder maps images to fixed-size vectors (guard-model probes train on them; near-duplicate
and leakage checks compare them). Rows are L2-normalised float32, so a dot product is a cosine.
`encoder_id` names the backend and model and `version` pins what was loaded (package version,
weight checksum or model revision, preprocessing): together they key cached embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    """Images in, L2-normalised float32 vectors out."""

    encoder_id: str  # backend + model, e.g. "open-nsfw", "clip:clip-vit-base-patch32"
    dim: int  # length of each embedding
    version: str  # what exactly was loaded (weights checksum / revision, preprocessing)

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32, each row of unit L2 norm. An empty list gives (0, dim)."""
        ...


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, eps), dtype=np.float32)


def as_rgb_images(images: Sequence[Image.Image]) -> list[Image.Image]:
    """Check the input is a sequence of PIL images and convert each to RGB."""
    from PIL import Image

    if isinstance(images, Image.Image):
        raise TypeError("embed() takes a list of images, not one image")
    out = []
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"image {i}: expected a PIL image, got {type(image).__name__}")
        out.append(image if image.mode == "RGB" else image.convert("RGB"))
    return out


def batches(n: int, batch_size: int) -> list[slice]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [slice(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
