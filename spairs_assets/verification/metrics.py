"""Edit-minimality metrics between a source image and its edited twin.

A SafetyPair is only a counterfactual when the edit is *minimal*: the edited image differs from
the source in one small region and nowhere else. These functions measure that, on uint8 images
(``(H, W, 3)`` RGB, also ``(H, W)`` grey or ``(H, W, C)``; PIL images are converted to RGB):

==========================  ================================================================
``ssim``                    mean SSIM, *defined exactly as* ``skimage.metrics.structural_
                            similarity(a, b, channel_axis=2, data_range=255)`` (7x7 uniform
                            window, sample covariance, K1=0.01, K2=0.03); agrees to ~1e-15
``psnr``                    10 log10(255^2 / MSE) in dB over all pixels and channels; ``inf``
                            for identical images (as scikit-image)
``l1`` / ``l2``             mean absolute difference / 255, root-mean-square difference / 255
``changed_fraction``        fraction of pixels with any channel differing by more than
                            ``tolerance`` (default 0: any difference at all)
``changed_region``          bounding box ``[x0, y0, x1, y1]`` (exclusive) and area in pixels
                            of that changed-pixel mask; ``None`` when nothing changed
``outside_change``          for an edited-region box: the fraction of pixels *outside* the
                            box that changed, and the largest channel difference there
                            (0 and 0 for a minimal edit that stayed inside its region)
``hash_distances``          Hamming distances of imagehash's pHash, dHash and aHash (64 bits;
                            ``image_hashes`` gives one image's hashes, to store and reuse)
``minimality``              all of the above as one flat, JSON-serialisable dict
==========================  ================================================================

How it is fast (hundreds of 512x512 pairs a second on one core)
---------------------------------------------------------------
1. **Where did anything change?** The two images are compared as rows of 64-bit words (8 bytes
   at a time), which gives the changed rows exactly and the changed columns to within a word;
   the columns are then made exact on that small strip. Every other metric is computed on the
   crop to this *changed bounding box*: outside it the absolute difference is zero, so sums of
   differences, counts and maxima over the crop *are* the whole-image values. No full-image
   float temporaries are made; the only full-image work is one byte comparison.

2. **SSIM without the unchanged rest.** scikit-image computes, per channel, a local SSIM map
   ``S`` from 7x7 box means (``uniform_filter``) of ``x, y, x^2, y^2, xy`` and returns the mean
   of ``S`` over the pixels at least 3 px from the border (the ``crop(S, 3)``), i.e. over the
   centres whose 7x7 window lies fully inside the image (so the filter's border mode never
   matters). For a centre whose window contains no changed pixel, the two windows are equal, so
   ``ux == uy`` and ``vx == vy == vxy``, hence ``A1 == B1`` and ``A2 == B2`` and ``S == 1``
   (exactly, in our arithmetic; to ~1e-16 in scikit-image's). Therefore::

       SSIM = 1 - (1 / (C * (H-6) * (W-6))) * sum over channels and centres of (1 - S)

   and only centres within 3 px of a changed pixel contribute. We evaluate ``S`` on the centre
   rectangle "changed bounding box grown by 3 px, clipped to the 3-px interior", which needs the
   data rectangle grown by 6 px (a centre's window reaches 3 px further). The rectangle is done
   in bands of centre rows (about 32k values each: cache-sized), each narrowed to the columns
   that changed within the band's window rows, so two far-apart changes do not make one big rectangle, and bands with no
   change are skipped. Window sums are exact int32 box sums (shift-and-add) of the uint8 data,
   and the variances are formed in integers (``49*sxx - sx^2``) before the final ratio in
   float64, so there is no cancellation error: we agree with scikit-image to ~1e-15, the
   rounding of its own float64 filters (see ``_ssim_deficit``). Extra centres inside the
   rectangle whose windows happen to be unchanged contribute ``1 - S == 0`` exactly, so the
   superset is harmless.

3. **No allocation in the hot loop.** Temporaries live in per-thread scratch buffers that are
   reused from pair to pair (a few MB for 512 px images; they grow with the largest image
   seen). Fresh large temporaries cost page faults, which on virtual machines cost more than
   the arithmetic.

Measured by ``bench/minimality_metrics.py`` on 512x512 pairs with a ~10% edited box (2-core
VM): 3-4 ms per pair for every pixel metric on one core (250-320 pairs/s, 50-60x scikit-image's
SSIM + PSNR), about 450 pairs/s in two processes. The three perceptual hashes add about 10 ms
(PIL's Lanczos resizes of both full images): pass ``hashes=False`` where throughput matters,
or the source's stored :func:`image_hashes` as ``source_hashes`` to halve it.

PSNR is ``inf`` from :func:`psnr` for identical images (as scikit-image, minus the warning);
:func:`minimality` reports it as ``None`` (strict JSON has no infinity) and sets
``identical=True``. SSIM needs images of at least 7x7 pixels: :func:`ssim` raises ``ValueError``
for smaller ones (as scikit-image does) and :func:`minimality` reports ``ssim=None`` for them.

``METRICS_VERSION`` changes whenever a value computed here would change (cache keys use it).
This module imports only numpy at import time (PIL and imagehash inside the hash functions).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

__all__ = [
    "METRICS_VERSION",
    "ChangedRegion",
    "as_uint8_image",
    "changed_fraction",
    "changed_mask",
    "changed_region",
    "diff_map",
    "hash_distances",
    "image_hashes",
    "l1",
    "l2",
    "minimality",
    "outside_change",
    "psnr",
    "ssim",
]

METRICS_VERSION = "1"

# SSIM constants, as scikit-image's defaults for uint8 with data_range=255.
_WIN = 7
_HALF = _WIN // 2  # 3
_NP = _WIN * _WIN  # 49 pixels in a window
_COV_NORM = _NP / (_NP - 1)  # sample covariance
_DATA_RANGE = 255.0
_C1 = (0.01 * _DATA_RANGE) ** 2
_C2 = (0.03 * _DATA_RANGE) ** 2
# SSIM is evaluated in bands of centre rows holding about _BAND_VALUES values
_BAND_VALUES = 1 << 15
_BAND_MIN_ROWS, _BAND_MAX_ROWS = 8, 128


# ---- inputs ----------------------------------------------------------------------------------


def as_uint8_image(image: Any, name: str = "image") -> np.ndarray:
    """A uint8 array ``(H, W)`` or ``(H, W, C)`` from a numpy array or a PIL image.

    PIL images in modes other than L and RGB are converted to RGB. Arrays must already be uint8
    (a float array has no agreed range: convert it explicitly).
    """
    if not isinstance(image, np.ndarray):
        if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGB")
            image = np.asarray(image)
        else:
            raise TypeError(
                f"{name}: expected a numpy array or a PIL image, got {type(image).__name__}"
            )
    if image.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"{name}: expected shape (H, W) or (H, W, C), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0 or (image.ndim == 3 and image.shape[2] == 0):
        raise ValueError(f"{name}: empty image of shape {image.shape}")
    return image


def _pair(source: Any, edited: Any) -> tuple[np.ndarray, np.ndarray]:
    a = as_uint8_image(source, "source")
    b = as_uint8_image(edited, "edited")
    if a.shape != b.shape:
        raise ValueError(f"source and edited images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def _parse_box(region: Sequence[float], h: int, w: int) -> tuple[int, int, int, int]:
    """[x0, y0, x1, y1] (exclusive) -> integer box clipped to the image.

    Fractional coordinates are rounded outwards (the box covers every pixel it touches).
    """
    try:
        values = [float(v) for v in region]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"region must be [x0, y0, x1, y1], got {region!r}") from exc
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"region must be four finite numbers [x0, y0, x1, y1], got {region!r}")
    x0, y0 = math.floor(values[0]), math.floor(values[1])
    x1, y1 = math.ceil(values[2]), math.ceil(values[3])
    if x1 < x0 or y1 < y0:
        raise ValueError(f"region [x0, y0, x1, y1] needs x0 <= x1 and y0 <= y1, got {region!r}")
    x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
    y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
    return x0, y0, x1, y1


def _check_tolerance(tolerance: int) -> int:
    if (
        isinstance(tolerance, bool)
        or not float(tolerance).is_integer()
        or not 0 <= tolerance <= 255
    ):
        raise ValueError(f"tolerance must be an integer in [0, 255], got {tolerance!r}")
    return int(tolerance)


# ---- the shared analysis of one pair ---------------------------------------------------------


def _word_rows(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The image as (H, row_bytes / k) words of k bytes, the widest k dividing a row."""
    h = x.shape[0]
    row_bytes = x.shape[1] * x.shape[2]
    for k in (8, 4, 2, 1):
        if row_bytes % k == 0:
            return x.reshape(h, row_bytes).view(f"u{k}"), k
    raise AssertionError("unreachable")


def _channel_max(d: np.ndarray) -> np.ndarray:
    """max over the last (channel) axis; numpy's reduction over a short last axis is slow."""
    out = d[..., 0].copy()
    for ch in range(1, d.shape[-1]):
        np.maximum(out, d[..., ch], out=out)
    return out


@dataclass(frozen=True)
class ChangedRegion:
    """The changed pixels: bounding box [x0, y0, x1, y1] (exclusive) and pixel count."""

    bbox: tuple[int, int, int, int]
    area: int  # number of changed pixels (not the box's area)

    @property
    def bbox_area(self) -> int:
        x0, y0, x1, y1 = self.bbox
        return (x1 - x0) * (y1 - y0)


class _Analysis:
    """Everything about one pair, computed once and on the changed bounding box only."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = a, b
        self.h, self.w, self.c = a.shape
        self.n_pixels = self.h * self.w
        self.n_values = self.n_pixels * self.c
        wa, self._word = _word_rows(a)
        wb, _ = _word_rows(b)
        # (H, words per row): which words differ. A workspace buffer: valid while this analysis
        # is in use (analyses are private to one public call).
        self.words_ne = np.not_equal(wa, wb, out=_WS.take("ne", wa.shape, bool))
        rows = np.flatnonzero(self.words_ne.any(axis=1))
        self.bbox: tuple[int, int, int, int] | None = None  # exact (y0, y1, x0, x1)
        if rows.size:
            y0, y1 = int(rows[0]), int(rows[-1]) + 1
            px0, px1 = self._word_cols_to_pixels(self.words_ne[y0:y1])
            sa, sb = a[y0:y1, px0:px1], b[y0:y1, px0:px1]
            strip = np.not_equal(sa, sb, out=_WS.take("strip", sa.shape, bool))
            cols = np.flatnonzero(strip.any(axis=0).any(axis=1))
            self.bbox = (y0, y1, px0 + int(cols[0]), px0 + int(cols[-1]) + 1)

    @property
    def identical(self) -> bool:
        return self.bbox is None

    def _word_cols_to_pixels(self, words_ne: np.ndarray) -> tuple[int, int]:
        """Pixel columns [x0, x1) covering every differing word in these rows (a superset)."""
        wc = np.flatnonzero(words_ne.any(axis=0))
        if not wc.size:
            return 0, 0
        byte0, byte1 = int(wc[0]) * self._word, (int(wc[-1]) + 1) * self._word
        return byte0 // self.c, min(self.w, -(-byte1 // self.c))

    # -- differences on the changed box --

    @cached_property
    def absdiff(self) -> np.ndarray:
        """|a - b| (uint8) on the changed bounding box."""
        if self.bbox is None:
            return np.zeros((0, 0, self.c), np.uint8)
        y0, y1, x0, x1 = self.bbox
        ca, cb = self.a[y0:y1, x0:x1], self.b[y0:y1, x0:x1]
        d = np.maximum(ca, cb, out=_WS.take("absdiff", ca.shape, np.uint8))
        d -= np.minimum(ca, cb, out=_WS.take("absdiff_min", ca.shape, np.uint8))
        return d

    @cached_property
    def maxdiff(self) -> np.ndarray:
        """Per-pixel largest channel difference on the changed bounding box, (h, w) uint8."""
        return _channel_max(self.absdiff)

    @cached_property
    def sums(self) -> tuple[int, int, int]:
        """(sum |d|, sum d^2, max |d|) over the whole image, exact."""
        if self.bbox is None:
            return 0, 0, 0
        d = self.absdiff
        sq = np.multiply(d, d, out=_WS.take("squares", d.shape, np.int32), dtype=np.int32)
        return int(d.sum(dtype=np.int64)), int(sq.sum(dtype=np.int64)), int(d.max())

    def mask(self, tolerance: int) -> np.ndarray:
        """Changed-pixel mask on the changed bounding box (bool, (h, w))."""
        return self.maxdiff > tolerance

    def region(self, tolerance: int) -> ChangedRegion | None:
        if self.bbox is None:
            return None
        y0, _, x0, _ = self.bbox
        if tolerance == 0:
            area = int(np.count_nonzero(self.maxdiff))
            by0, by1, bx0, bx1 = self.bbox
        else:
            m = self.mask(tolerance)
            rows = np.flatnonzero(m.any(axis=1))
            if not rows.size:
                return None
            cols = np.flatnonzero(m.any(axis=0))
            area = int(np.count_nonzero(m))
            by0, by1 = y0 + int(rows[0]), y0 + int(rows[-1]) + 1
            bx0, bx1 = x0 + int(cols[0]), x0 + int(cols[-1]) + 1
        return ChangedRegion(bbox=(bx0, by0, bx1, by1), area=area)

    def changed_pixels(self, tolerance: int) -> int:
        if self.bbox is None:
            return 0
        return int(np.count_nonzero(self.mask(tolerance)))

    def outside(self, box: tuple[int, int, int, int], tolerance: int) -> dict[str, Any]:
        bx0, by0, bx1, by1 = box
        n_outside = self.n_pixels - (bx1 - bx0) * (by1 - by0)
        if n_outside == 0:
            return {"pixels": None, "fraction": None, "max_abs_diff": None, "n_outside": 0}
        if self.bbox is None:
            return {"pixels": 0, "fraction": 0.0, "max_abs_diff": 0, "n_outside": n_outside}
        y0, y1, x0, x1 = self.bbox
        md = self.maxdiff.copy()
        # the part of the region box that falls in the changed box, in crop coordinates
        iy0, iy1 = max(by0, y0) - y0, min(by1, y1) - y0
        ix0, ix1 = max(bx0, x0) - x0, min(bx1, x1) - x0
        if iy0 < iy1 and ix0 < ix1:
            md[iy0:iy1, ix0:ix1] = 0
        changed = int(np.count_nonzero(md > tolerance))
        return {
            "pixels": changed,
            "fraction": changed / n_outside,
            "max_abs_diff": int(md.max()),
            "n_outside": n_outside,
        }

    # -- SSIM --

    def ssim(self) -> float:
        h, w, c = self.h, self.w, self.c
        if h < _WIN or w < _WIN:
            raise ValueError(
                f"SSIM needs images of at least {_WIN}x{_WIN} pixels (its {_WIN}x{_WIN} window; "
                f"scikit-image refuses them too), got {h}x{w}"
            )
        if self.bbox is None:
            return 1.0
        y0, y1, x0, x1 = self.bbox
        # centre rows whose window touches a changed row, inside the 3-px interior
        cy0, cy1 = max(_HALF, y0 - _HALF), min(h - _HALF, y1 + _HALF)
        # bands of about _BAND_VALUES centre values: small enough to stay in cache
        band = min(_BAND_MAX_ROWS, max(_BAND_MIN_ROWS, _BAND_VALUES // ((x1 - x0 + 2 * _HALF) * c)))
        deficit = 0.0  # sum of (1 - S) over channels and centres
        for r0 in range(cy0, cy1, band):
            r1 = min(cy1, r0 + band)
            px0, px1 = self._word_cols_to_pixels(self.words_ne[r0 - _HALF : r1 + _HALF])
            if px0 >= px1:
                continue  # no change in this band's windows: S == 1 throughout
            c0, c1 = max(_HALF, px0 - _HALF), min(w - _HALF, px1 + _HALF)
            rows = slice(r0 - _HALF, r1 + _HALF)
            cols = slice(c0 - _HALF, c1 + _HALF)
            deficit += _ssim_deficit(self.a[rows, cols], self.b[rows, cols])
        n_centres = (h - 2 * _HALF) * (w - 2 * _HALF)
        return 1.0 - deficit / (n_centres * c)


class _Workspace(threading.local):
    """Scratch buffers reused across calls (one set per thread).

    Allocating fresh multi-hundred-KB temporaries for every pair costs page faults, which on
    virtual machines can cost more than the arithmetic itself; the hot loops below therefore
    write into these buffers with ``out=`` and allocate nothing once warm.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        buf = self.buffers.get(name)
        if buf is None or buf.size < nbytes:
            buf = self.buffers[name] = np.empty(max(nbytes, 4096), dtype=np.uint8)
        return buf[:nbytes].view(dtype).reshape(shape)


_WS = _Workspace()


def _box7(q: np.ndarray, axis: int, name: str) -> np.ndarray:
    """Sums of 7 consecutive values along `axis` (valid positions only).

    Shift-and-add with doubling (pairs, quads, then quad + pair + single): four vectorised
    additions, exact in q's integer dtype.
    """
    n = q.shape[axis]

    def sl(x: np.ndarray, start: int, stop: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    def shape(length: int) -> tuple[int, ...]:
        s = list(q.shape)
        s[axis] = length
        return tuple(s)

    s2 = _WS.take(name + "2", shape(n - 1), q.dtype)  # s2[i] = q[i] + q[i+1]
    np.add(sl(q, 0, n - 1), sl(q, 1, n), out=s2)
    s4 = _WS.take(name + "4", shape(n - 3), q.dtype)  # s4[i] = q[i] + ... + q[i+3]
    np.add(sl(s2, 0, n - 3), sl(s2, 2, n - 1), out=s4)
    out = _WS.take(name + "7", shape(n - 6), q.dtype)  # q[i] + ... + q[i+6]
    np.add(sl(s4, 0, n - 6), sl(s2, 4, n - 2), out=out)
    np.add(out, sl(q, 6, n), out=out)
    return out


# SSIM's constants scaled to integer window sums (see _ssim_deficit)
_C1_SUMS = _C1 * _NP * _NP  # 2401 * C1
_C2_SUMS = _C2 * _NP * (_NP - 1)  # 2352 * C2


def _ssim_deficit(x: np.ndarray, y: np.ndarray) -> float:
    """sum(1 - S) over the valid 7x7 window centres of uint8 crops x, y of shape (h, w, c).

    With window sums sx, sy, sxx, syy, sxy (n = 49 pixels), scikit-image's terms are
    ux = sx/n, vx = n/(n-1) * (sxx/n - ux^2) = (n*sxx - sx^2) / (n*(n-1)), and so on. Scaling
    A1 and B1 by n^2 and A2 and B2 by n(n-1) leaves S = A1*A2 / (B1*B2) unchanged and makes
    every term an exact int32 integer (all below 3.2e8): n*sxx - sx^2 is computed without the
    cancellation error of the float formula. Only the constants and the final ratio are float64.
    Identical windows give bit-identical numerator and denominator, hence S == 1 exactly.
    """
    hh, ww, c = x.shape
    q = _WS.take("q", (5, hh, ww, c), np.int32)
    q[0] = x
    q[1] = y
    np.multiply(q[0], q[0], out=q[2])
    np.multiply(q[1], q[1], out=q[3])
    np.multiply(q[0], q[1], out=q[4])
    sx, sy, sxx, syy, sxy = _box7(_box7(q, 1, "rows"), 2, "cols")  # (h-6, w-6, c) each
    shape = sx.shape
    pxy, px2, py2, vx, vy, vxy = _WS.take("ints", (6, *shape), np.int32)
    np.multiply(sx, sy, out=pxy)
    np.multiply(sx, sx, out=px2)
    np.multiply(sy, sy, out=py2)
    np.multiply(sxx, _NP, out=vx)
    vx -= px2
    np.multiply(syy, _NP, out=vy)
    vy -= py2
    np.multiply(sxy, _NP, out=vxy)
    vxy -= pxy
    a1, b1, a2, b2 = _WS.take("floats", (4, *shape), np.float64)
    np.multiply(pxy, 2.0, out=a1)
    a1 += _C1_SUMS
    np.add(px2, py2, out=b1)
    b1 += _C1_SUMS
    np.multiply(vxy, 2.0, out=a2)
    a2 += _C2_SUMS
    np.add(vx, vy, out=b2)
    b2 += _C2_SUMS
    a1 *= a2
    b1 *= b2
    a1 /= b1  # S
    return float(a1.size - a1.sum())


# ---- public functions ------------------------------------------------------------------------


def ssim(source: Any, edited: Any) -> float:
    """Mean SSIM, equal to ``skimage.metrics.structural_similarity(source, edited,
    channel_axis=2, data_range=255)`` (``channel_axis=None`` for 2-D images) to ~1e-12.

    Raises ``ValueError`` for images smaller than 7x7 and for a shape mismatch.
    """
    return _Analysis(*_pair(source, edited)).ssim()


def psnr(source: Any, edited: Any) -> float:
    """PSNR in dB with data range 255 over all pixels and channels; ``inf`` when identical."""
    an = _Analysis(*_pair(source, edited))
    return _psnr(an)


def _psnr(an: _Analysis) -> float:
    squares = an.sums[1]
    if squares == 0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / (squares / an.n_values))


def l1(source: Any, edited: Any) -> float:
    """Mean absolute difference over all pixels and channels, divided by 255 (0..1)."""
    an = _Analysis(*_pair(source, edited))
    return an.sums[0] / an.n_values / _DATA_RANGE


def l2(source: Any, edited: Any) -> float:
    """Root-mean-square difference over all pixels and channels, divided by 255 (0..1)."""
    an = _Analysis(*_pair(source, edited))
    return math.sqrt(an.sums[1] / an.n_values) / _DATA_RANGE


def changed_fraction(source: Any, edited: Any, *, tolerance: int = 0) -> float:
    """Fraction of pixels where some channel differs by more than `tolerance`."""
    an = _Analysis(*_pair(source, edited))
    return an.changed_pixels(_check_tolerance(tolerance)) / an.n_pixels


def changed_region(source: Any, edited: Any, *, tolerance: int = 0) -> ChangedRegion | None:
    """Bounding box [x0, y0, x1, y1] (exclusive) and pixel count of the changed-pixel mask.

    ``None`` when no pixel changed by more than `tolerance`.
    """
    an = _Analysis(*_pair(source, edited))
    return an.region(_check_tolerance(tolerance))


def changed_mask(source: Any, edited: Any, *, tolerance: int = 0) -> np.ndarray:
    """Full-size boolean (H, W) mask of the changed pixels."""
    an = _Analysis(*_pair(source, edited))
    out = np.zeros((an.h, an.w), dtype=bool)
    if an.bbox is not None:
        y0, y1, x0, x1 = an.bbox
        out[y0:y1, x0:x1] = an.mask(_check_tolerance(tolerance))
    return out


def diff_map(source: Any, edited: Any) -> np.ndarray:
    """Full-size (H, W) uint8 map of the largest channel difference (for heat maps)."""
    an = _Analysis(*_pair(source, edited))
    out = np.zeros((an.h, an.w), dtype=np.uint8)
    if an.bbox is not None:
        y0, y1, x0, x1 = an.bbox
        out[y0:y1, x0:x1] = an.maxdiff
    return out


def outside_change(
    source: Any, edited: Any, region: Sequence[float], *, tolerance: int = 0
) -> dict[str, Any]:
    """How much changed outside the edited region box [x0, y0, x1, y1] (exclusive).

    Returns ``{"fraction", "pixels", "max_abs_diff", "n_outside"}``: the fraction and number of
    pixels outside the box that changed by more than `tolerance`, the largest channel difference
    outside the box (any difference, regardless of tolerance), and how many pixels lie outside.
    A box covering the whole image leaves nothing outside: fraction, pixels and max are None.
    """
    a, b = _pair(source, edited)
    an = _Analysis(a, b)
    return an.outside(_parse_box(region, an.h, an.w), _check_tolerance(tolerance))


_HASHES = ("phash", "dhash", "ahash")


def image_hashes(image: Any) -> dict[str, str]:
    """imagehash's pHash, dHash and aHash (hash_size 8) of one image, as hex strings.

    Store them with a source image and pass them to :func:`minimality` /
    :func:`hash_distances` as ``source_hashes`` to skip re-hashing a source shared by many
    edit candidates (half of the hashing cost).
    """
    x = as_uint8_image(image)
    return {name: str(h) for name, h in _hashes(x if x.ndim == 3 else x[:, :, None]).items()}


def _hashes(x: np.ndarray) -> dict[str, Any]:
    import imagehash
    from PIL import Image

    # imagehash converts to "L" itself; converting once here gives the same hashes
    grey = Image.fromarray(x[:, :, 0] if x.shape[2] == 1 else x).convert("L")
    return {
        "phash": imagehash.phash(grey),
        "dhash": imagehash.dhash(grey),
        "ahash": imagehash.average_hash(grey),
    }


def _source_hashes(given: dict[str, str] | None, a: np.ndarray) -> dict[str, Any]:
    if given is None:
        return _hashes(a)
    import imagehash

    missing = [name for name in _HASHES if name not in given]
    if missing:
        raise ValueError(f"source_hashes lacks {missing} (expected the keys {list(_HASHES)})")
    return {name: imagehash.hex_to_hash(given[name]) for name in _HASHES}


def hash_distances(
    source: Any, edited: Any, *, source_hashes: dict[str, str] | None = None
) -> dict[str, int]:
    """Hamming distances (0..64) of imagehash's pHash, dHash and aHash (hash_size 8).

    ``source_hashes``: the source's :func:`image_hashes`, if already known.
    """
    a, b = _pair(source, edited)
    return _hash_distances(a, b, source_hashes)


def _hash_distances(
    a: np.ndarray, b: np.ndarray, source_hashes: dict[str, str] | None = None
) -> dict[str, int]:
    ha, hb = _source_hashes(source_hashes, a), _hashes(b)
    return {name: int(ha[name] - hb[name]) for name in _HASHES}


def minimality(
    source: Any,
    edited: Any,
    *,
    region: Sequence[float] | None = None,
    tolerance: int = 0,
    hashes: bool = True,
    source_hashes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """All edit-minimality metrics of one pair, as a flat JSON-serialisable dict.

    Keys (plain ints/floats/bools/lists; ``None`` where undefined):

    - ``height``, ``width``, ``channels``, ``tolerance``, ``metrics_version``
    - ``identical``: no pixel differs at all
    - ``ssim`` (None below 7x7), ``psnr`` (dB; None when identical, i.e. infinite),
      ``l1``, ``l2`` (0..1), ``max_abs_diff`` (0..255)
    - ``changed_pixels``, ``changed_fraction``: pixels with a channel differing by > tolerance
    - ``changed_bbox`` ([x0, y0, x1, y1], exclusive), ``changed_bbox_area``,
      ``changed_bbox_fraction``: the box of those pixels; None when none changed
    - ``region``: the given edited-region box clipped to the image (None if not given);
      ``outside_changed_pixels``, ``outside_changed_fraction``, ``outside_max_abs_diff``:
      change outside it (None if no region, or the region covers the whole image)
    - ``phash_distance``, ``dhash_distance``, ``ahash_distance`` (0..64; None with
      ``hashes=False``, which skips the ~10 ms the three hashes of two 512 px images cost;
      ``source_hashes``, the source's :func:`image_hashes` when known, halves that)
    """
    a, b = _pair(source, edited)
    tol = _check_tolerance(tolerance)
    an = _Analysis(a, b)
    sum_abs, sum_sq, max_abs = an.sums
    changed = an.changed_pixels(tol)
    reg = an.region(tol)
    psnr_value = _psnr(an)
    out: dict[str, Any] = {
        "metrics_version": METRICS_VERSION,
        "height": an.h,
        "width": an.w,
        "channels": an.c,
        "tolerance": tol,
        "identical": an.identical,
        "ssim": an.ssim() if min(an.h, an.w) >= _WIN else None,
        "psnr": None if math.isinf(psnr_value) else psnr_value,
        "l1": sum_abs / an.n_values / _DATA_RANGE,
        "l2": math.sqrt(sum_sq / an.n_values) / _DATA_RANGE,
        "max_abs_diff": max_abs,
        "changed_pixels": changed,
        "changed_fraction": changed / an.n_pixels,
        "changed_bbox": list(reg.bbox) if reg else None,
        "changed_bbox_area": reg.bbox_area if reg else None,
        "changed_bbox_fraction": reg.bbox_area / an.n_pixels if reg else None,
        "region": None,
        "outside_changed_pixels": None,
        "outside_changed_fraction": None,
        "outside_max_abs_diff": None,
    }
    if region is not None:
        box = _parse_box(region, an.h, an.w)
        outside = an.outside(box, tol)
        out["region"] = list(box)
        out["outside_changed_pixels"] = outside["pixels"]
        out["outside_changed_fraction"] = outside["fraction"]
        out["outside_max_abs_diff"] = outside["max_abs_diff"]
    if hashes and an.identical:
        out.update(phash_distance=0, dhash_distance=0, ahash_distance=0)
    elif hashes:
        d = _hash_distances(a, b, source_hashes)
        out.update(phash_distance=d["phash"], dhash_distance=d["dhash"], ahash_distance=d["ahash"])
    else:
        out.update(phash_distance=None, dhash_distance=None, ahash_distance=None)
    return out
