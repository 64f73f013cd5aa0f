"""Concatenation of several encoders: ``open-nsfw+ocr-minilm`` (what a picture shows and what it
says) or any ``concat`` of registered encoders.

Each part's rows are L2-normalised (a zero row, e.g. ``ocr-minilm`` on an image without text,
stays zero), the parts are concatenated in order, and the whole row is L2-normalised again. So
with two non-zero parts each contributes a block of norm 1/sqrt(2) and the dot product of two
rows is the mean of the parts' cosines; a part that is zero for an image leaves the other
part(s) to carry the whole unit norm.

``encoder_id`` is the parts' ids joined with ``+``; ``version`` lists each part's id and version,
so a cached concatenated embedding is invalidated when any part changes. `combine` is public so
a caller that caches embeddings per part (the guard experiment does) can assemble the
concatenation from cached parts without running the parts again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spairs_assets.encoders.base import Encoder, l2_normalise

if TYPE_CHECKING:
    from PIL import Image

PartSpec = str | tuple[str, Mapping[str, Any]] | Mapping[str, Any] | Encoder


def _build_part(spec: PartSpec) -> Encoder:
    from spairs_assets.encoders import build_encoder

    if isinstance(spec, str):
        return build_encoder(spec)
    if isinstance(spec, tuple):
        name, options = spec
        return build_encoder(name, **dict(options))
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if not name:
            raise ValueError(f"a concat part given as a mapping needs a `name`: {spec!r}")
        return build_encoder(name, **options)
    if isinstance(spec, Encoder):
        return spec
    raise TypeError(f"a concat part must be a name, (name, options), a mapping or an Encoder, "
                    f"got {type(spec).__name__}")


class ConcatEncoder:
    """Several encoders side by side; parts normalised, then the whole row normalised."""

    def __init__(self, parts: Sequence[PartSpec] = ("open-nsfw", "ocr-minilm")) -> None:
        if isinstance(parts, str):
            parts = [p for p in parts.split("+") if p]
        if len(parts) < 1:
            raise ValueError("concat needs at least one part")
        self.parts: list[Encoder] = [_build_part(p) for p in parts]
        ids = [p.encoder_id for p in self.parts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"concat parts must be distinct encoders, got {ids}")
        self.encoder_id = "+".join(ids)
        self.version = "concat-1|" + "|".join(f"{p.encoder_id}={p.version}" for p in self.parts)
        self.dim = int(sum(p.dim for p in self.parts))

    def combine(self, part_vectors: Sequence[np.ndarray]) -> np.ndarray:
        """Rows of each part (in part order) -> the concatenated, re-normalised rows."""
        if len(part_vectors) != len(self.parts):
            raise ValueError(f"expected {len(self.parts)} parts, got {len(part_vectors)}")
        blocks = []
        for part, vectors in zip(self.parts, part_vectors, strict=True):
            vectors = np.asarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[1] != part.dim:
                raise ValueError(f"part {part.encoder_id}: expected (n, {part.dim}), got "
                                 f"{vectors.shape}")
            blocks.append(l2_normalise(vectors))
        if len({b.shape[0] for b in blocks}) != 1:
            raise ValueError(f"parts disagree on the number of rows: {[b.shape[0] for b in blocks]}")
        return l2_normalise(np.concatenate(blocks, axis=1))

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """(n, sum of part dims) float32, unit rows (zero only if every part is zero)."""
        return self.combine([part.embed(images) for part in self.parts])

    def __repr__(self) -> str:
        return f"ConcatEncoder({self.encoder_id!r}, dim={self.dim})"
