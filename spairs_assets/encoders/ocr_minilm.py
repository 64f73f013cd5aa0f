"""``ocr-minilm``: an image's OCR text embedded with MiniLM (384-d, real weights, CPU).

What the image *says* is often the whole safety feature (a slur on a sign, "BUY COCAINE", a
threat): a linear probe on this embedding sees the words, which a photo encoder barely does.

Per image:

1. OCR through the shared memo, ``VISION.ocr(image, image_id)`` (RapidOCR, the platform's
   tuned settings). The image id is the content hash of its RGB pixels (`spairs_assets.ids
   .image_id`), the same id the image store uses, so an image OCR'd by any stage (instruction
   generator, OCR judges) is not read again, and a stage that called `VISION.use_store(...)`
   reuses persisted reads across runs. Incremental reads of registered edits apply as usual.
2. The lines are put in reading order (`vision.cache.reading_order`: top to bottom, left to
   right within a row), lines below ``min_confidence`` are dropped, and the texts are joined
   with single spaces and lower-cased (all-MiniLM-L6-v2 is an uncased model; lower-casing only
   makes the cache-visible text canonical).
3. The text is embedded with `text.MiniLMTextEncoder` (NumPy backend by default: no torch).

**Images without text** (no line read, or only blank text) embed to the **all-zero vector**:
"no text" carries no direction, its cosine with anything is 0, and a linear probe sees it at the
origin (its decision there is the intercept). These rows are the only ones not of unit norm,
which deviates from the protocol's "unit rows" on purpose; `concat.ConcatEncoder` keeps the
zero part zero. ``empty="model"`` embeds the empty string with the model instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from spairs_assets.encoders.base import as_rgb_images

if TYPE_CHECKING:
    from PIL import Image

DIM = 384
JOIN_VERSION = "reading-order;space;lower"


class OcrMiniLMEncoder:
    """OCR text (reading order) -> MiniLM sentence embedding; zero vector for text-less images."""

    dim: int = DIM

    def __init__(
        self,
        *,
        min_confidence: float = 0.0,
        empty: Literal["zero", "model"] = "zero",
        backend: Literal["numpy", "sentence-transformers"] = "numpy",
        batch_size: int = 64,
    ) -> None:
        from spairs_assets.encoders.text import MiniLMTextEncoder
        from spairs_assets.vision.ocr import DEFAULT_OCR_SETTINGS

        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        self.min_confidence = float(min_confidence)
        self.text_encoder = MiniLMTextEncoder(empty=empty, backend=backend, batch_size=batch_size)
        self.encoder_id = "ocr-minilm"
        self.version = (
            f"{self.text_encoder.version};ocr={DEFAULT_OCR_SETTINGS.fingerprint};"
            f"join={JOIN_VERSION};minconf={self.min_confidence:g}"
        )

    def text_of(self, image: Image.Image, image_id: str | None = None) -> str:
        """The OCR text of one image, as embedded (reading order, space-joined, lower-case)."""
        from spairs_assets.ids import image_id as content_id
        from spairs_assets.vision.cache import VISION, reading_order

        pixels = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
        iid = image_id or content_id(np.ascontiguousarray(pixels, dtype=np.uint8))
        lines = [ln for ln in VISION.ocr(pixels, iid) if ln.confidence >= self.min_confidence]
        text = " ".join(ln.text.strip() for ln in reading_order(lines) if ln.text.strip())
        return text.lower()

    def texts(self, images: Sequence[Image.Image]) -> list[str]:
        return [self.text_of(im) for im in as_rgb_images(images)]

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """(n, 384) float32: unit rows for images with text, zero rows for images without."""
        return self.text_encoder.embed_texts(self.texts(images))

    def __repr__(self) -> str:
        return f"OcrMiniLMEncoder(min_confidence={self.min_confidence:g})"
