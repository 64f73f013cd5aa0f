"""Per-image memo of OCR and pictogram detections, shared by every stage in a process.

The instruction generator, the OCR judges and the adherence check all read the same images;
OCR costs about 0.1 s and pictogram detection 0.25 s an image, so each is done once per (image
id, settings). When a step gives the memo a persistent `ItemCache`, results also survive across
steps and runs (a refresh never re-reads a seed it has read before). Without an image id (an
ad-hoc call), nothing is memoised.

Edits are read incrementally. A minimal edit changes one region and leaves every other pixel
bit-identical to its source, so what the detectors found outside that region is still there.
When a stage registers an edited image's source (`register_edit`), the edit is read by keeping
the source's lines and pictograms that do not touch the changed region, and running the detector
only on a crop around the region (grown to cover the source lines/pictograms it touches plus a
context margin). The result is the same set of words and pictograms at a fraction of the cost;
`spairs_assets_tests/test_vision_cache.py` compares it with full reads on demo edits. An edit
that changed more than `FULL_READ_FRACTION` of the image is simply read in full.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from spairs_assets.storage.cache import ItemCache
    from spairs_assets.vision.ocr import OcrLine
    from spairs_assets.vision.symbols import SymbolDetection

INCREMENTAL_VERSION = "incremental-1"
FULL_READ_FRACTION = 0.5  # changed box area above which an edit is read in full
OCR_CONTEXT = 12  # pixels of context around the re-read region
SYMBOL_CONTEXT = 24
MIN_SYMBOL_CROP = 200  # the pictogram search needs room for its largest template


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    return image if isinstance(image, np.ndarray) else np.asarray(image.convert("RGB"))


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grow(box, by: int, w: int, h: int, min_side: int = 0):
    x0, y0, x1, y1 = box[0] - by, box[1] - by, box[2] + by, box[3] + by
    for lo, hi, limit, index in ((x0, x1, w, 0), (y0, y1, h, 1)):
        if hi - lo < min_side:  # widen symmetrically to the minimum side
            pad = (min_side - (hi - lo) + 1) // 2
            lo, hi = lo - pad, hi + pad
        lo, hi = max(0, lo), min(limit, hi)
        if index == 0:
            x0, x1 = lo, hi
        else:
            y0, y1 = lo, hi
    return (x0, y0, x1, y1)


def _union(boxes):
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


class VisionMemo:
    def __init__(self, max_items: int = 4096):
        self._mem: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._store: ItemCache | None = None
        self._sources: dict[str, tuple[str, Callable[[], Image.Image]]] = {}
        self.max_items = max_items

    def use_store(self, store: ItemCache | None) -> None:
        """Persist results in `store` (an ItemCache), or stop persisting with None."""
        self._store = store

    def register_edit(self, edited_id: str, source_id: str, load_source: Callable[[], Image.Image]) -> None:
        """Declare that `edited_id` is an edit of `source_id`: read it incrementally."""
        if edited_id != source_id:
            self._sources[edited_id] = (source_id, load_source)

    # ---- memo ----------------------------------------------------------------------------
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

    def _changed_box(self, image: np.ndarray, image_id: str):
        """(source id, source pixels, changed box) when the edit can be read incrementally."""
        from spairs_assets.verification.metrics import changed_region

        if image_id not in self._sources:
            return None
        source_id, load = self._sources[image_id]
        source = _as_array(load())
        if source.shape != image.shape:
            return None
        region = changed_region(source, image)
        if region is not None:
            x0, y0, x1, y1 = region.bbox
            if (x1 - x0) * (y1 - y0) > FULL_READ_FRACTION * image.shape[0] * image.shape[1]:
                return None
        return source_id, source, (None if region is None else tuple(region.bbox))

    # ---- OCR -----------------------------------------------------------------------------
    def ocr(self, image: Image.Image | np.ndarray, image_id: str | None) -> list[OcrLine]:
        from spairs_assets.storage.cache import cache_key
        from spairs_assets.vision.ocr import DEFAULT_OCR_SETTINGS, OcrLine, read_text

        if image_id is None:
            return read_text(image)
        key = cache_key(what="ocr", image=image_id, settings=DEFAULT_OCR_SETTINGS.fingerprint)
        hit = self._get(key)
        if hit is None:
            pixels = _as_array(image)
            lines = self._ocr_incremental(pixels, image_id)
            if lines is None:
                lines = read_text(pixels)
            hit = {"lines": [line.to_dict() for line in lines]}
            self._put(key, hit)
        return [OcrLine.from_dict(d) for d in hit["lines"]]

    def _ocr_incremental(self, pixels: np.ndarray, image_id: str) -> list[OcrLine] | None:
        from spairs_assets.vision.ocr import read_text

        found = self._changed_box(pixels, image_id)
        if found is None:
            return None
        source_id, source, box = found
        source_lines = self.ocr(source, source_id)
        if box is None:
            return source_lines  # identical pixels
        h, w = pixels.shape[:2]
        near = _grow(box, OCR_CONTEXT, w, h)
        touched = [ln for ln in source_lines if _intersects(ln.box, near)]
        kept = [ln for ln in source_lines if not _intersects(ln.box, near)]
        crop = _grow(_union([box, *[ln.box for ln in touched]]), OCR_CONTEXT, w, h)
        x0, y0, x1, y1 = crop
        reread = [_shift_line(ln, x0, y0) for ln in read_text(np.ascontiguousarray(pixels[y0:y1, x0:x1]))]
        return reading_order(kept + reread)

    # ---- pictograms ----------------------------------------------------------------------
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
            pixels = _as_array(image)
            found = self._symbols_incremental(pixels, image_id)
            if found is None:
                found = detect_symbols(pixels)
            hit = {"detections": [d.to_dict() for d in found]}
            self._put(key, hit)
        return [SymbolDetection.from_dict(d) for d in hit["detections"]]

    def _symbols_incremental(self, pixels: np.ndarray, image_id: str) -> list[SymbolDetection] | None:
        from dataclasses import replace

        from spairs_assets.vision.symbols import DEFAULT_DETECTOR_SETTINGS, detect_symbols

        found = self._changed_box(pixels, image_id)
        if found is None:
            return None
        source_id, source, box = found
        source_found = self.symbols(source, source_id)
        if box is None:
            return source_found
        h, w = pixels.shape[:2]
        near = _grow(box, SYMBOL_CONTEXT, w, h)
        touched = [d for d in source_found if _intersects(d.box, near)]
        kept = [d for d in source_found if not _intersects(d.box, near)]
        side = max(MIN_SYMBOL_CROP, DEFAULT_DETECTOR_SETTINGS.max_size + 2 * SYMBOL_CONTEXT)
        crop = _grow(_union([box, *[d.box for d in touched]]), SYMBOL_CONTEXT, w, h, min_side=side)
        x0, y0, x1, y1 = crop
        redetected = detect_symbols(np.ascontiguousarray(pixels[y0:y1, x0:x1]))
        shifted = [replace(d, box=(d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0),
                           center=(d.center[0] + x0, d.center[1] + y0)) for d in redetected]
        return sorted(kept + shifted, key=lambda d: -d.score)


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top to bottom, and left to right within a row, as RapidOCR orders its own lines.

    Lines whose vertical centres are closer than half the smaller line height share a row.
    """
    out = sorted(lines, key=lambda ln: ((ln.box[1] + ln.box[3]) / 2, ln.box[0]))
    for i in range(1, len(out)):  # insertion pass: fix left/right order inside a row
        j = i
        while j > 0:
            a, b = out[j - 1], out[j]
            same_row = abs((a.box[1] + a.box[3]) - (b.box[1] + b.box[3])) / 2 < min(
                a.box[3] - a.box[1], b.box[3] - b.box[1]) / 2
            if same_row and b.box[0] < a.box[0]:
                out[j - 1], out[j] = b, a
                j -= 1
            else:
                break
    return out


def _shift_line(line: OcrLine, dx: int, dy: int) -> OcrLine:
    from dataclasses import replace

    def q(quad):
        return tuple((x + dx, y + dy) for x, y in quad)

    return replace(line, quad=q(line.quad), char_quads=tuple(q(c) for c in line.char_quads))


VISION = VisionMemo()
