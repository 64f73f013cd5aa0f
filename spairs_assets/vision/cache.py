"""Per-image memo of OCR and pictogram detections, shared by every stage in a process.

The instruction generator, the OCR judges and the adherence check all read the same images;
OCR costs a few hundred milliseconds an image, so it is done once per (image id, settings). When
a step gives it a persistent `ItemCache`, results also survive across steps and runs (a refresh
never re-reads a seed it has read before). Without an image id (an ad-hoc call), nothing is
memoised.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from spairs_assets.storage.cache import ItemCache
    from spairs_assets.vision.ocr import OcrLine
    from spairs_assets.vision.symbols import SymbolDetection


class VisionMemo:
    def __init__(self, max_items: int = 4096):
        self._mem: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._store: ItemCache | None = None
        self.max_items = max_items

    def use_store(self, store: ItemCache | None) -> None:
        """Persist results in `store` (an ItemCache), or stop persisting with None."""
        self._store = store

    def _get(self, key: str) -> Any:
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                return self._mem[key]
        if self._store is not None:
            return self._store.get(key)
        return None

    def _put(self, key: str, value: Any) -> None:
        with self._lock:
            self._mem[key] = value
            while len(self._mem) > self.max_items:
                self._mem.popitem(last=False)
        if self._store is not None:
            self._store.put(key, value)

    def ocr(self, image: Image.Image | np.ndarray, image_id: str | None) -> list[OcrLine]:
        from spairs_assets.storage.cache import cache_key
        from spairs_assets.vision.ocr import DEFAULT_OCR_SETTINGS, OcrLine, read_text

        if image_id is None:
            return read_text(image)
        key = cache_key(what="ocr", image=image_id, settings=DEFAULT_OCR_SETTINGS.fingerprint)
        hit = self._get(key)
        if hit is None:
            hit = {"lines": [line.to_dict() for line in read_text(image)]}
            self._put(key, hit)
        return [OcrLine.from_dict(d) for d in hit["lines"]]

    def symbols(self, image: Image.Image | np.ndarray, image_id: str | None) -> list[SymbolDetection]:
        from spairs_assets.storage.cache import cache_key
        from spairs_assets.vision.symbols import (
            DEFAULT_DETECTOR_SETTINGS,
            SymbolDetection,
            detect_symbols,
        )

        if image_id is None:
            return detect_symbols(image)
        key = cache_key(what="symbols", image=image_id,
                        settings=DEFAULT_DETECTOR_SETTINGS.fingerprint)
        hit = self._get(key)
        if hit is None:
            hit = {"detections": [d.to_dict() for d in detect_symbols(image)]}
            self._put(key, hit)
        return [SymbolDetection.from_dict(d) for d in hit["detections"]]


VISION = VisionMemo()
