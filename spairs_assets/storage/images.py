"""Content-addressed image store: `images/<id[:2]>/<id>.png`, id = hash of canonical pixels.

Storing the same pixels twice writes nothing new; the same image gets the same path everywhere.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from spairs_assets.ids import image_id
from spairs_assets.storage.fs import Storage


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    path: str  # relative to the storage root
    width: int
    height: int


def canonical_pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 RGB HxWx3 pixels; the form ids are computed from."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"store RGB images only (got mode {image.mode}); normalise first")
        return np.asarray(image, dtype=np.uint8)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"store uint8 HxWx3 arrays only (got {arr.dtype} {arr.shape})")
    return arr


def encode_png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Fixed settings and no metadata: equal pixels give equal bytes. Level 1 is ~6x faster to
    # write than the default and the files are ~15% larger; ids hash pixels, not bytes.
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class ImageStore:
    def __init__(self, storage: Storage):
        self.storage = storage

    @staticmethod
    def rel_path(image_id_: str) -> str:
        return f"images/{image_id_[:2]}/{image_id_}.png"

    def put(self, image: Image.Image | np.ndarray) -> StoredImage:
        pixels = canonical_pixels(image)
        iid = image_id(pixels)
        rel = self.rel_path(iid)
        if not self.storage.exists(rel):
            self.storage.write_bytes(rel, encode_png(pixels))
        return StoredImage(iid, rel, width=pixels.shape[1], height=pixels.shape[0])

    def exists(self, image_id_: str) -> bool:
        return self.storage.exists(self.rel_path(image_id_))

    def load(self, image_id_: str) -> Image.Image:
        """The stored image as an RGB PIL image (fully loaded, file closed)."""
        with self.storage.open(self.rel_path(image_id_)) as fh:
            img = Image.open(fh)
            img.load()
        return img.convert("RGB")

    def load_array(self, image_id_: str) -> np.ndarray:
        return np.asarray(self.load(image_id_), dtype=np.uint8)
