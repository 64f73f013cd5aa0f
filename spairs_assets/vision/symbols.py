"""Pictogram detection by multi-scale template matching against the pictogram library.

The library (:mod:`spairs_assets.sources.pictograms`) renders each pictogram as a coverage mask
at any size, so the templates are exact shapes, not photos. What varies in an image is the
pictogram's colour, the plate it sits on (a sign, a sticker, or the photo itself), its size
and a small rotation. The detector therefore matches *shape*, not colour:

1. **Coarse search** (image shrunk 4x): every pictogram at every size of a geometric ladder
   (10 % steps over ``min_size..max_size``) is correlated with the grey levels by normalised
   cross-correlation (``TM_CCOEFF_NORMED``); in a colour image also with the two CIELAB chroma
   planes (every third size), for pictograms that differ from their surroundings in hue. The
   absolute value is used, so a dark icon on a light plate and a light icon on a dark plate
   score alike. Local maxima become candidates, grouped into *sites* (one place in the image)
   with their best few names. A site must look like flat ink already at this scale, so a
   textured photo cannot use up the sites before a real pictogram gets one.
2. **Refinement** (full resolution, a few pixels around each site): a size sweep, then
   coordinate descent over size (3 %) and rotation (2 degrees, within +-6), then a finish
   in 1 % and 1-degree steps, for the best candidates of the site. Similar shapes (a bird
   and a caged bird, a T-shirt and a crossed-out T-shirt) are told apart here.
3. **Verification** (see `_verify`): the score is the correlation pooled over the three colour
   channels within a band around the shape (colour-robust), and a detection must also be
   *specific* (fit its template clearly better than a plain ellipse or rectangle of the same
   extent: a highlight on a helmet correlates with a water drop as well as with an ellipse),
   *two-coloured* (flat ink inside, something else around it and in its holes), flat inside
   (robust grey spread) and visible (contrast). Together these keep false positives on plain
   photos at zero on the demo and the bundled photographs.
4. **Non-maximum suppression** over the verified detections (box overlap).

Measured on the 90 demo seeds with a pictogram (72 unsafe, 18 benign): all named first and
accepted; no pictogram accepted on 100+ text, 'none' and plain-photo images; about 0.25 s
per 420 px image on one core.

OpenCV is imported lazily (this module is imported by code that must load fast).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from spairs_assets.sources.pictograms import PICTOGRAMS, pictogram_mask

__all__ = [
    "DEFAULT_DETECTOR_SETTINGS",
    "DetectorSettings",
    "SymbolDetection",
    "detect_symbols",
    "find_quiet_region",
    "placed_mask",
]

DETECTOR_VERSION = "symbols-v1"


@dataclass(frozen=True)
class DetectorSettings:
    """What the detector searches for; everything here changes results (see ``fingerprint``)."""

    min_size: int = 60  # smallest pictogram side searched, in pixels
    max_size: int = 160
    scale_step: float = 1.10
    coarse_factor: int = 4
    coarse_threshold: float = 0.45  # coarse correlation for a name to be considered at a site
    site_threshold: float = 0.55  # coarse correlation for a place to be examined at all
    name_margin: float = 0.15  # names scoring this far below a site's best are not refined
    max_sites: int = 8
    names_per_site: int = 3
    max_angle_deg: float = 6.0  # rotations searched: -max..max
    angle_step_deg: float = 2.0
    threshold: float = 0.7  # final pooled-colour correlation a detection needs
    max_ink_std: float = 8.0  # robust grey-level spread (MAD) allowed inside the ink
    min_purity: float = 0.85  # two-colour agreement needed (see `_verify`)
    min_specificity: float = 0.12  # how much better than a plain blob the shape must fit
    min_evidence: float = 0.95  # score + specificity: a weaker match must be more specific
    min_contrast: float = 60.0  # RGB distance between ink and surroundings
    max_detections: int = 5
    names: tuple[str, ...] | None = None  # None: the whole library

    def __post_init__(self) -> None:
        if not 8 <= self.min_size <= self.max_size:
            raise ValueError(
                f"need 8 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if self.scale_step <= 1.0:
            raise ValueError(f"scale_step must be > 1, got {self.scale_step}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        unknown = sorted(set(self.names or ()) - set(PICTOGRAMS))
        if unknown:
            raise ValueError(f"unknown pictograms {unknown}; known: {sorted(PICTOGRAMS)}")

    @property
    def sizes(self) -> tuple[int, ...]:
        out, s = [], float(self.min_size)
        while s <= self.max_size * 1.0001:
            out.append(round(s))
            s *= self.scale_step
        if out[-1] < self.max_size:
            out.append(self.max_size)
        return tuple(sorted(set(out)))

    @property
    def library(self) -> tuple[str, ...]:
        return tuple(sorted(self.names if self.names else PICTOGRAMS))

    @property
    def fingerprint(self) -> str:
        import hashlib
        import json
        from dataclasses import asdict

        blob = json.dumps({**asdict(self), "v": DETECTOR_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


DEFAULT_DETECTOR_SETTINGS = DetectorSettings()


@dataclass(frozen=True)
class SymbolDetection:
    """One detected pictogram.

    ``center``/``size``/``angle_deg`` place the library's ``size`` x ``size`` pictogram
    square (rotated counter-clockwise by ``angle_deg``, PIL's sense) so that
    :func:`placed_mask` reproduces its coverage; ``box`` is the ink's bounding box
    (x0, y0, x1, y1, end exclusive). ``color``/``background`` are the estimated ink and
    surrounding colours, ``ink_std`` the grey-level spread inside the ink.
    """

    name: str
    score: float
    box: tuple[int, int, int, int]
    center: tuple[float, float]
    size: int
    angle_deg: float
    color: tuple[int, int, int]
    background: tuple[int, int, int]
    ink_std: float
    runner_up: str | None = None
    runner_up_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def unsafe(self) -> bool:
        return PICTOGRAMS[self.name].unsafe

    @property
    def category_ids(self) -> tuple[str, ...]:
        return PICTOGRAMS[self.name].category_ids

    @property
    def description(self) -> str:
        return PICTOGRAMS[self.name].description

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": round(self.score, 4), "box": list(self.box),
                "center": [round(c, 2) for c in self.center], "size": self.size,
                "angle_deg": self.angle_deg, "color": list(self.color),
                "background": list(self.background), "ink_std": round(self.ink_std, 2),
                "runner_up": self.runner_up,
                "runner_up_score": None if self.runner_up_score is None
                else round(self.runner_up_score, 4)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SymbolDetection:
        return cls(name=data["name"], score=float(data["score"]),
                   box=tuple(int(v) for v in data["box"]),  # type: ignore[arg-type]
                   center=(float(data["center"][0]), float(data["center"][1])),
                   size=int(data["size"]), angle_deg=float(data["angle_deg"]),
                   color=tuple(int(v) for v in data["color"]),  # type: ignore[arg-type]
                   background=tuple(int(v) for v in data["background"]),  # type: ignore[arg-type]
                   ink_std=float(data.get("ink_std", 0.0)), runner_up=data.get("runner_up"),
                   runner_up_score=data.get("runner_up_score"))


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _template(name: str, size: int, angle: float) -> np.ndarray:
    """Coverage (float32, 0..1) of pictogram `name` at `size`, rotated by `angle` degrees
    counter-clockwise, on a square canvas just big enough to hold it, centred."""
    import cv2

    base = _mask_array(name, int(size)) / 255.0
    if angle == 0:
        base.setflags(write=False)
        return base
    a = math.radians(angle)
    side = int(math.ceil(size * (abs(math.cos(a)) + abs(math.sin(a))))) + 2
    side += (side - size) % 2  # keep the centre on the same sub-pixel grid
    pad = (side - size) // 2
    canvas = np.zeros((side, side), np.float32)
    canvas[pad:pad + size, pad:pad + size] = base
    c = (side - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), angle, 1.0)
    return cv2.warpAffine(canvas, m, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def placed_mask(name: str, size: int, angle_deg: float, center: tuple[float, float],
                shape: tuple[int, int]) -> np.ndarray:
    """Coverage (float32 0..1, image `shape` (h, w)) of a pictogram placed like a detection.

    Sub-pixel centres are honoured by an affine shift, so the mask lines up with the ink.
    """
    import cv2

    t = _template(name, int(size), float(angle_deg))
    side = t.shape[0]
    c = (side - 1) / 2.0
    m = np.float32([[1, 0, center[0] - c], [0, 1, center[1] - c]])
    return cv2.warpAffine(t, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def _as_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got {arr.dtype} {arr.shape}")
    return arr


@lru_cache(maxsize=2048)
def _mask_array(name: str, size: int) -> np.ndarray:
    """The library mask as float32 0..255 (cached: read-only)."""
    arr = np.asarray(pictogram_mask(name, int(size)), dtype=np.float32)
    arr.setflags(write=False)
    return arr


def _ncc(image: np.ndarray, templ: np.ndarray) -> np.ndarray:
    """|normalised cross-correlation| of every window of `image` with `templ`, by OpenCV.

    The absolute value makes light-on-dark and dark-on-light pictograms score alike. OpenCV
    returns 0 for flat windows (undefined correlation). The detector computes the same
    quantity faster (`_match_small`, `_match_dft`, the coarse bank); this is the reference
    the tests compare them with.
    """
    import cv2

    r = cv2.matchTemplate(image, templ, cv2.TM_CCOEFF_NORMED)
    np.abs(r, out=r)
    r[~np.isfinite(r)] = 0.0
    return r


# --------------------------------------------------------------------------------------------
# Correlation machinery
#
# Everything below computes |TM_CCOEFF_NORMED| like `_ncc`, from three parts: the window's
# correlation with the mean-free template, and the window's sum and sum of squares (integral
# images). The correlation comes from whichever is cheapest for the job: DFTs of the whole
# (shrunk) image against all templates of a size (coarse stage), DFTs of a small region (the
# refinement's 13 x 13 size sweep), or a sparse sum over the template's edges (the 3 x 3 and
# 5 x 5 descent steps). They agree with OpenCV to about 1e-6 (both are float rounding of the
# same quantity); on the 540 demo images and the bundled photos the detections, scores and
# boxes are the same as with `_ncc` throughout.
# --------------------------------------------------------------------------------------------


_FLT_EPSILON = float(np.finfo(np.float32).eps)


def _normalise(num: np.ndarray, wsum: np.ndarray, wsum_sq: np.ndarray, n: int | np.ndarray,
               templ_norm: np.ndarray | float) -> np.ndarray:
    """|TM_CCOEFF_NORMED| from its parts, with OpenCV's conventions (float32 result).

    `num` is the window's correlation with the mean-free template, `wsum`/`wsum_sq` the sum
    and sum of squares of the window's pixels (n of them), `templ_norm` the template's root
    sum of squared deviations. As in OpenCV, a flat window scores 0 and rounding beyond +-1
    is clipped.
    """
    diff2 = wsum_sq - wsum * wsum * (1.0 / n)
    np.maximum(diff2, 0.0, out=diff2)
    spread = np.sqrt(diff2)
    spread[diff2 <= np.minimum(0.5, 10 * _FLT_EPSILON * wsum_sq)] = 0.0
    den = spread * templ_norm
    mag = np.abs(num)
    ok = mag < den
    r = np.divide(mag, den, out=np.zeros(mag.shape, np.float64), where=ok)
    if not ok.all():  # rounding beyond +-1 (NaN windows fail both tests and score 0)
        r[~ok & (mag < den * 1.125)] = 1.0
    return r.astype(np.float32)


def _window_sums(integral: np.ndarray, y0: int, x0: int, ny: int, nx: int, th: int, tw: int
                 ) -> np.ndarray:
    """Sums of the th x tw windows whose top-left corners are (y0.., x0..) (ny x nx of them)."""
    return (integral[y0 + th:y0 + th + ny, x0 + tw:x0 + tw + nx]
            - integral[y0:y0 + ny, x0 + tw:x0 + tw + nx]
            - integral[y0 + th:y0 + th + ny, x0:x0 + nx] + integral[y0:y0 + ny, x0:x0 + nx])


def _window_std(integral: np.ndarray, integral_sq: np.ndarray, h: int, w: int) -> np.ndarray:
    """Standard deviation of every h x w window, from integral images (result-shaped)."""
    n = float(h * w)
    s = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]
    q = integral_sq[h:, w:] - integral_sq[:-h, w:] - integral_sq[h:, :-w] + integral_sq[:-h, :-w]
    return np.sqrt(np.maximum(q / n - (s / n) ** 2, 0.0))


class _Plane:
    """A full-resolution plane (grey or a chroma plane) with what the matchers need, made on
    first use: integral images (window sums) and row-wise running sums (`_match_small`),
    flattened with one shared row stride (width + 1)."""

    def __init__(self, arr: np.ndarray):
        self.arr = arr
        self.shape = arr.shape
        self._stats: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._stats is None:
            import cv2

            h, w = self.shape
            # (Squares of float32 values are exact in float64: these equal cv2.integral2's.)
            run = np.zeros((h, w + 1), np.float64)
            run[:, 1:] = self.arr
            integral = cv2.integral(run[:, 1:], sdepth=cv2.CV_64F)
            integral_sq = cv2.integral(np.square(run[:, 1:]), sdepth=cv2.CV_64F)
            np.cumsum(run, axis=1, out=run)
            self._stats = (integral.ravel(), integral_sq.ravel(), run.ravel())
        return self._stats


@dataclass(frozen=True)
class _Kernel:
    """A template prepared for `_match_small`. Summation by parts along the rows,
    sum_x I(x) T(x) = sum_x R(x) (T(x-1) - T(x)) with R(x) the row's running sum before x,
    leaves only the template's edges: a few hundred terms instead of side^2."""

    side: int
    ys: np.ndarray  # rows and columns (0..side) of the non-zero differences (int16)
    xs: np.ndarray
    diffs: np.ndarray  # T[y, x-1] - T[y, x] (T is 0 outside the square), float64
    mean: float
    norm: float  # root sum of squared deviations from the mean
    flat: bool  # a constant template (OpenCV then answers 1 everywhere)


@lru_cache(maxsize=8192)
def _kernel(name: str, size: int, angle: float) -> _Kernel:
    # Not through `_template`'s cache: the descent visits many (size, angle) pairs once, and
    # a kernel is a fifth of a template's memory.
    t = _template.__wrapped__(name, size, angle) if angle else _template(name, size, angle)
    return _make_kernel(t)


def _make_kernel(t: np.ndarray) -> _Kernel:
    side = t.shape[0]
    changes = np.empty((side, side + 1), bool)
    np.not_equal(t[:, 0], 0, out=changes[:, 0])
    np.not_equal(t[:, -1], 0, out=changes[:, side])
    np.not_equal(t[:, 1:], t[:, :-1], out=changes[:, 1:side])
    ys, xs = np.divmod(np.flatnonzero(changes), side + 1)
    padded = np.zeros((side, side + 2), np.float64)
    padded[:, 1:-1] = t
    flat = padded.ravel()
    at = ys * (side + 2) + xs
    diffs = flat[at] - flat[at + 1]  # exact: float32 values, float64 differences
    t64 = padded[:, 1:-1]
    mean = float(t64.sum()) / (side * side)
    dev = t64 - mean
    norm2 = float(np.einsum("ij,ij->", dev, dev))
    ys16, xs16 = ys.astype(np.int16), xs.astype(np.int16)
    for a in (ys16, xs16, diffs):
        a.setflags(write=False)
    return _Kernel(side, ys16, xs16, diffs, mean, math.sqrt(norm2),
                   norm2 / (side * side) < np.finfo(np.float64).eps)


@lru_cache(maxsize=64)
def _grid(ny: int, nx: int, stride: int) -> np.ndarray:
    """Flat offsets of an ny x nx block of pixels in an image with row stride `stride`."""
    g = ((np.arange(ny) * stride)[:, None] + np.arange(nx)[None, :]).ravel()
    g.setflags(write=False)
    return g


def _match_small(plane: _Plane, jobs: list[tuple[_Kernel, int, int, int, int]]
                 ) -> list[np.ndarray]:
    """|normalised cross-correlation| for several small searches at once: for each job
    (kernel, y0, x0, ny, nx), the ny x nx windows whose top-left corners are (y0.., x0..)."""
    integral, integral_sq, run = plane.stats()
    stride = plane.shape[1] + 1
    corr, offsets, sides, means, norms, counts = [], [], [], [], [], []
    for k, y0, x0, ny, nx in jobs:
        off = _grid(ny, nx, stride) + (y0 * stride + x0)
        base = k.ys.astype(np.int64) * stride + k.xs
        corr.append(run[off[:, None] + base[None, :]] @ k.diffs)
        offsets.append(off)
        sides.append(k.side)
        means.append(k.mean)
        norms.append(k.norm)
        counts.append(len(off))
    off = np.concatenate(offsets)
    side = np.repeat(np.asarray(sides), counts)
    down = side * stride
    corners = (off + down + side, off + side, off + down, off)
    wsum = integral[corners[0]] - integral[corners[1]] - integral[corners[2]] \
        + integral[corners[3]]
    wsum_sq = integral_sq[corners[0]] - integral_sq[corners[1]] - integral_sq[corners[2]] \
        + integral_sq[corners[3]]
    num = np.concatenate(corr) - wsum * np.repeat(np.asarray(means), counts)
    r = _normalise(num, wsum, wsum_sq, side * side, np.repeat(np.asarray(norms), counts))
    for i, (k, *_rest) in enumerate(jobs):
        if k.flat:
            r[sum(counts[:i]):sum(counts[:i + 1])] = 1.0
    return np.split(r, np.cumsum(counts)[:-1])


def _match_wide(plane: _Plane, name: str,
                searches: list[tuple[int, float, int, int, int, int]]) -> list[np.ndarray]:
    """|normalised cross-correlation| for searches too wide for `_match_small` (the size
    sweep): for each (size, angle, y0, x0, ny, nx), the ny x nx windows from (y0, x0). The
    searches share one DFT of the region that covers them all (float64 throughout)."""
    import cv2

    integral, integral_sq, _ = plane.stats()
    h, w = plane.shape
    stride = w + 1
    shape = (h + 1, stride)
    top = min(y0 for _, _, y0, _, _, _ in searches)
    left = min(x0 for _, _, _, x0, _, _ in searches)
    bottom = max(y0 + ny - 1 + _kernel(name, sz, a).side for sz, a, y0, _, ny, _ in searches)
    right = max(x0 + nx - 1 + _kernel(name, sz, a).side for sz, a, _, x0, _, nx in searches)
    roi = plane.arr[top:bottom, left:right].astype(np.float64)
    p, q = cv2.getOptimalDFTSize(bottom - top), cv2.getOptimalDFTSize(right - left)
    padded = np.zeros((p, q), np.float64)
    padded[:bottom - top, :right - left] = roi - roi.mean()  # (the templates are mean-free)
    spectrum = cv2.dft(padded)
    out = []
    for sz, angle, y0, x0, ny, nx in searches:
        k = _kernel(name, sz, angle)
        if k.flat:
            out.append(np.ones((ny, nx), np.float32))
            continue
        corr = cv2.idft(cv2.mulSpectrums(spectrum, _template_spectrum(name, sz, angle, p, q), 0,
                                         conjB=True), flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
        corr = corr[y0 - top:y0 - top + ny, x0 - left:x0 - left + nx]
        wsum = _window_sums(integral.reshape(shape), y0, x0, ny, nx, k.side, k.side)
        wsum_sq = _window_sums(integral_sq.reshape(shape), y0, x0, ny, nx, k.side, k.side)
        out.append(_normalise(corr, wsum, wsum_sq, k.side * k.side, k.norm))
    return out


@lru_cache(maxsize=96)
def _template_spectrum(name: str, size: int, angle: float, p: int, q: int) -> np.ndarray:
    """DFT (float64, OpenCV's packed format) of the mean-free template padded to p x q."""
    import cv2

    t = _template(name, size, angle).astype(np.float64)
    padded = np.zeros((p, q), np.float64)
    padded[:t.shape[0], :t.shape[1]] = t - t.mean()
    spectrum = cv2.dft(padded)
    spectrum.setflags(write=False)
    return spectrum


_DFT_LENGTHS = (16, 32, 48, 64, 80, 96, 120, 128, 144, 160, 192, 240, 256, 320, 384, 480, 512)


def _dft_len(n: int) -> int:
    """A fast DFT length >= n, from a short list so that template spectra are shared by
    images of similar sizes."""
    import cv2

    return next((k for k in _DFT_LENGTHS if k >= n), cv2.getOptimalDFTSize(n))


@lru_cache(maxsize=48)
def _coarse_bank(library: tuple[str, ...], ts: int, p: int, q: int
                 ) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The library's templates at side `ts`, mean-free, as p x q spectra (OpenCV's packed
    format), with their root sums of squared deviations and which ones are flat."""
    import cv2

    spectra, norms, flat = [], np.zeros(len(library)), np.zeros(len(library), bool)
    for i, name in enumerate(library):
        t = _mask_array(name, ts).astype(np.float64)
        dev = t - t.mean()
        norm2 = float((dev * dev).sum())
        norms[i] = math.sqrt(norm2)
        flat[i] = norm2 / (ts * ts) < np.finfo(np.float64).eps
        padded = np.zeros((p, q), np.float32)
        padded[:ts, :ts] = dev
        spec = cv2.dft(padded)
        spec.setflags(write=False)
        spectra.append(spec)
    return tuple(spectra), norms, flat


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


_NEIGHBOURS = np.array([(0, 0)] + [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                                     if dy or dx])


@dataclass
class _Site:
    x: float  # centre, full-resolution pixels
    y: float
    size: int
    score: float
    names: dict[tuple[str, str], tuple[float, int, float, float]]  # (name, plane) -> ...


def _coarse_sites(planes: dict[str, np.ndarray], settings: DetectorSettings) -> list[_Site]:
    """Candidate places and names from the shrunk image.

    Grey levels at every size of the ladder; where the image has colour, also the two
    chroma planes of CIELAB (a*, b*) at every third size, so that a pictogram that differs
    from what surrounds it more in hue than in brightness (blue on an orange cat) is found too.
    All templates of a size are correlated with a plane through one DFT of the plane (the
    templates' spectra are cached).
    """
    import cv2

    f = settings.coarse_factor
    h, w = planes["gray"].shape
    library = settings.library
    plane_keys = list(planes)
    # Candidates as columns: score, template, size, centre, plane.
    c_score: list[np.ndarray] = []
    c_name: list[np.ndarray] = []
    c_size: list[np.ndarray] = []
    c_x: list[np.ndarray] = []
    c_y: list[np.ndarray] = []
    c_plane: list[np.ndarray] = []
    smalls: dict[str, np.ndarray] = {}
    for plane_index, (plane, full) in enumerate(planes.items()):
        small = cv2.resize(full, (max(1, round(w / f)), max(1, round(h / f))),
                           interpolation=cv2.INTER_AREA)
        if plane != "gray" and float(small.std()) < 4.0:
            continue  # a grey image: nothing to see in the chroma planes
        smalls[plane] = small
        sh, sw = small.shape
        sx, sy = w / sw, h / sh
        integral, integral_sq = cv2.integral2(small, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        p, q = _dft_len(sh), _dft_len(sw)
        spectrum = None
        sizes = settings.sizes if plane == "gray" else settings.sizes[1::3]
        for size in sizes:
            ts = max(5, round(size / f))
            if ts >= min(small.shape) - 1:
                continue
            if spectrum is None:
                padded = np.zeros((p, q), np.float32)
                padded[:sh, :sw] = small - np.float32(small.mean())  # (mean-free templates)
                spectrum = cv2.dft(padded)
            spectra, norms, flat = _coarse_bank(library, ts, p, q)
            ny, nx = sh - ts + 1, sw - ts + 1
            # Circular correlation at a length >= the plane's: the valid windows do not wrap.
            corr = np.empty((len(library), ny, nx), np.float32)
            for i, spec in enumerate(spectra):
                corr[i] = cv2.idft(cv2.mulSpectrums(spectrum, spec, 0, conjB=True),
                                   flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE, nonzeroRows=ny
                                   )[:ny, :nx]
            wsum = _window_sums(integral, 0, 0, ny, nx, ts, ts)
            wsum_sq = _window_sums(integral_sq, 0, 0, ny, nx, ts, ts)
            # Windows with almost no contrast (sky, a blank wall) correlate with noise.
            textured = _window_std(integral, integral_sq, ts, ts) >= 3.0
            # Scores are only needed where they may reach the threshold and next to such
            # places: find those with a float32 bound (generous by 1e-4), then score exactly.
            spread = np.sqrt(np.maximum(wsum_sq - wsum * wsum * (1.0 / (ts * ts)), 0.0))
            inv = np.zeros((ny, nx), np.float32)
            np.divide(1.0, spread, out=inv, where=textured & (spread > 0), casting="unsafe")
            bound = np.multiply(corr, inv, out=np.empty_like(corr))
            np.abs(bound, out=bound)
            low = (settings.coarse_threshold * (1 - 1e-4) * norms).astype(np.float32)
            mask = np.greater_equal(bound, low[:, None, None], out=np.empty(corr.shape, bool))
            mask[flat] = textured  # a constant template scores 1 (OpenCV's convention)
            kk, ys, xs = np.nonzero(mask)
            if len(kk) == 0:
                continue
            # Exact scores there and at the 8 neighbours (the border clamps them inwards).
            yn = np.clip(ys[None, :] + _NEIGHBOURS[:, :1], 0, ny - 1).ravel()
            xn = np.clip(xs[None, :] + _NEIGHBOURS[:, 1:], 0, nx - 1).ravel()
            kn = np.tile(kk, len(_NEIGHBOURS))
            rn = _normalise(corr[kn, yn, xn].astype(np.float64), wsum[yn, xn], wsum_sq[yn, xn],
                            ts * ts, norms[kn])
            rn[flat[kn]] = 1.0
            rn[~textured[yn, xn]] = 0.0
            rn = rn.reshape(len(_NEIGHBOURS), len(kk))
            vals = rn[0]
            keep = (vals >= settings.coarse_threshold) & (vals >= rn[1:].max(axis=0))
            kk, ys, xs, vals = kk[keep], ys[keep], xs[keep], vals[keep]
            if len(kk) == 0:
                continue
            # The strongest 8 per template (in raster order when there are no more).
            firsts = np.flatnonzero(np.r_[True, kk[1:] != kk[:-1]]) if len(kk) else kk
            ends = np.r_[firsts[1:], len(kk)]
            if np.any(ends - firsts > 8):
                pick = []
                for a, b in zip(firsts.tolist(), ends.tolist(), strict=True):
                    if b - a > 8:
                        pick.append(a + np.argsort(-vals[a:b])[:8])
                    else:
                        pick.append(np.arange(a, b))
                sel = np.concatenate(pick)
                kk, ys, xs, vals = kk[sel], ys[sel], xs[sel], vals[sel]
            c_score.append(vals.astype(np.float64))
            c_name.append(kk)
            c_size.append(np.full(len(kk), size))
            c_x.append((xs + (ts - 1) / 2.0 + 0.5) * sx - 0.5)
            c_y.append((ys + (ts - 1) / 2.0 + 0.5) * sy - 0.5)
            c_plane.append(np.full(len(kk), plane_index))
    if not c_score:
        return []
    score = np.concatenate(c_score)
    order = np.argsort(-score, kind="stable")[:3000]
    score = score[order]
    name_i = np.concatenate(c_name)[order]
    size_a = np.concatenate(c_size)[order]
    cx_a = np.concatenate(c_x)[order]
    cy_a = np.concatenate(c_y)[order]
    plane_i = np.concatenate(c_plane)[order]
    n = len(score)
    # Each candidate belongs to the first site (in order of creation) within 0.35 of the
    # larger size of its centre; a candidate near no site may open one.
    site_of = np.full(n, -1)
    sites: list[_Site] = []
    site_names: list[set[str]] = []
    score_l, name_l, size_l = score.tolist(), name_i.tolist(), size_a.tolist()
    cx_l, cy_l, plane_l = cx_a.tolist(), cy_a.tolist(), plane_i.tolist()
    for i in range(n):
        j = int(site_of[i])
        cand_score, name, size = score_l[i], library[name_l[i]], size_l[i]
        cx, cy, plane = cx_l[i], cy_l[i], plane_keys[plane_l[i]]
        if j >= 0:
            site, names = sites[j], site_names[j]
            # One candidate per (name, plane): the planes may disagree about the size. The
            # candidates come best first, so the first one of a (name, plane) stays.
            key = (name, plane)
            if key not in site.names and (name in names
                                          or len(names) < settings.names_per_site):
                site.names[key] = (cand_score, size, cx, cy)
                names.add(name)
            continue
        if len(sites) >= settings.max_sites or cand_score < settings.site_threshold:
            continue
        small = smalls[plane]
        sx, sy = w / small.shape[1], h / small.shape[0]
        if not _coarse_flat_ink(small, name, size, cx / sx, cy / sy, f, settings):
            continue  # a textured blob: do not let it take a site from a real pictogram
        sites.append(_Site(cx, cy, size, cand_score, {(name, plane): (cand_score, size, cx, cy)}))
        site_names.append({name})
        rest = slice(i + 1, n)
        free = site_of[rest] < 0
        dist = np.hypot(cx - cx_a[rest], cy - cy_a[rest])
        limit = 0.35 * np.maximum(size, size_a[rest])
        near = dist < limit
        for m in np.flatnonzero(free & (np.abs(dist - limit) <= 1e-9 * limit)).tolist():
            # Within rounding of the limit: decide exactly as a scalar computation would.
            near[m] = math.hypot(cx - cx_l[i + 1 + m], cy - cy_l[i + 1 + m]) \
                < 0.35 * max(size, size_l[i + 1 + m])
        site_of[rest][free & near] = len(sites) - 1
    return sites


def _coarse_flat_ink(small: np.ndarray, name: str, size: int, cx: float, cy: float, f: int,
                     settings: DetectorSettings) -> bool:
    """Cheap early check at the coarse scale: is the ink under the template one flat tone?

    Photos correlate with blob-shaped templates everywhere; without this check a textured
    background fills all sites before a thin-lined pictogram gets one. Thin templates whose
    core vanishes at this scale pass unchecked (the full-resolution check decides).
    """
    import cv2

    ts = max(5, round(size / f))
    t = _mask_array(name, ts) / 255.0
    x0, y0 = int(round(cx - (ts - 1) / 2.0)), int(round(cy - (ts - 1) / 2.0))
    h, w = small.shape
    if x0 < 0 or y0 < 0 or x0 + ts > w or y0 + ts > h:
        return True
    win = small[y0:y0 + ts, x0:x0 + ts]
    core = cv2.erode((t >= 0.9).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if core.sum() < 6:
        return True
    ink = win[core]
    spread = 1.4826 * float(np.median(np.abs(ink - np.median(ink))))
    return spread <= 2.0 * settings.max_ink_std


_Search = tuple[int, float, float, float, int]  # size, angle, centre x, centre y, radius
_Best = tuple[float, int, float, float, float]  # score, size, angle, centre x, centre y


def _refine_steps(name: str, size: int, cx: float, cy: float, settings: DetectorSettings
                  ) -> Generator[list[_Search], list[tuple[float, float, float]], _Best]:
    """Best (score, size, angle, cx, cy) near a coarse candidate, at full resolution.

    A generator: it yields the searches it needs next (each: the best correlation and its
    centre for a template size and angle within a radius of a centre) and is sent their
    results, so that `_refine_all` can run the searches of all candidates together.
    """
    radius = settings.coarse_factor + 2
    # Start: a size sweep around the coarse size (the coarse ladder is 10 % apart and thin
    # shapes are poorly sized at a quarter of the resolution), upright.
    best: _Best = (-1.0, size, 0.0, cx, cy)
    lo_size, hi_size = round(0.9 * settings.min_size), round(1.1 * settings.max_size)
    sweep = [min(hi_size, max(lo_size, round(size * k))) for k in (0.9, 1.0, 1.1)]
    found = yield [(sz, 0.0, cx, cy, radius) for sz in sweep]
    for sz, (s, x, y) in zip(sweep, found, strict=True):
        if s > best[0]:
            best = (s, sz, 0.0, x, y)
    if best[0] < 0.45:
        return best  # hopeless: no refinement lifts a correlation this low to a detection
    # Then coordinate descent over size (3 % steps) and angle (2-degree steps, within the
    # configured range), re-centring within 2 px at every step.
    lo, hi = -settings.max_angle_deg, settings.max_angle_deg
    step_a = settings.angle_step_deg
    for _ in range(8):
        _, sz, angle, x, y = best
        moves = [(round(sz * 1.03), angle), (round(sz / 1.03), angle)]
        moves += [(sz, a) for a in (angle - step_a, angle + step_a) if lo <= a <= hi]
        moves = [(msz, ma) for msz, ma in moves if lo_size <= msz <= hi_size]
        found = yield [(msz, ma, x, y, 2) for msz, ma in moves] if moves else []
        improved = False
        for (msz, ma), (s, mx, my) in zip(moves, found, strict=True):
            if s > best[0] + 1e-4:
                best, improved = (s, msz, ma, mx, my), True
        if not improved:
            break
    # Finish with 1 % size and 1-degree steps: at 130 px a 3 % step is 2 px at the edges,
    # which matters to an editor that must stay inside the pictogram's box.
    for _ in range(4):
        _, sz, angle, x, y = best
        moves = [(msz, ma) for msz, ma in ((round(sz * 1.01), angle), (round(sz / 1.01), angle),
                                           (sz, angle - 1.0), (sz, angle + 1.0))
                 if not (msz == sz and ma == angle or not lo_size <= msz <= hi_size
                         or not lo <= ma <= hi)]
        found = yield [(msz, ma, x, y, 1) for msz, ma in moves] if moves else []
        improved = False
        for (msz, ma), (s, mx, my) in zip(moves, found, strict=True):
            if s > best[0] + 1e-4:
                best, improved = (s, msz, ma, mx, my), True
        if not improved:
            break
    return best


def _refine_all(planes: dict[str, _Plane], jobs: list[tuple[str, str, int, float, float]],
                settings: DetectorSettings) -> list[_Best]:
    """`_refine_steps` for every (plane, name, size, cx, cy) job, run in lock-step: each
    round gathers the pending searches of all jobs and runs the small ones in one batch per
    plane. Every job sees exactly the results it would see alone."""
    results: list[_Best | None] = [None] * len(jobs)
    steps = [_refine_steps(name, size, cx, cy, settings) for _, name, size, cx, cy in jobs]
    seen: list[dict[tuple[int, float, int, int, int], tuple[float, float, float]]] = \
        [{} for _ in jobs]
    pending = {i: step.send(None) for i, step in enumerate(steps)}
    while pending:
        answers: dict[int, list[tuple[float, float, float] | None]] = {}
        small: dict[str, list[tuple[int, int, _Kernel, int, int, int, int]]] = {}
        wide: dict[int, list[tuple[int, tuple[int, float, int, int, int], int, float, int, int,
                                   int, int]]] = {}
        for i, searches in pending.items():
            plane_key, name = jobs[i][0], jobs[i][1]
            plane = planes[plane_key]
            h, w = plane.shape
            out: list[tuple[float, float, float] | None] = []
            for n, (sz, angle, cx, cy, rad) in enumerate(searches):
                k = _kernel(name, sz, angle)
                side = k.side
                x0 = int(round(cx - (side - 1) / 2.0)) - rad
                y0 = int(round(cy - (side - 1) / 2.0)) - rad
                x1, y1 = x0 + side + 2 * rad, y0 + side + 2 * rad
                cx0, cy0 = max(0, x0), max(0, y0)
                ny, nx = min(h, y1) - cy0 - side + 1, min(w, x1) - cx0 - side + 1
                key = (sz, angle, x0, y0, rad)
                if ny < 1 or nx < 1:
                    out.append((-1.0, cx, cy))
                elif key in seen[i]:  # descent steps revisit placements
                    out.append(seen[i][key])
                elif ny * nx > 25:
                    out.append(None)
                    wide.setdefault(i, []).append((n, key, sz, angle, cy0, cx0, ny, nx))
                else:
                    out.append(None)
                    small.setdefault(plane_key, []).append((i, n, k, cy0, cx0, ny, nx))
            answers[i] = out
        for i, group in wide.items():
            maps = _match_wide(planes[jobs[i][0]], jobs[i][1],
                               [(sz, angle, y0, x0, ny, nx)
                                for _, _, sz, angle, y0, x0, ny, nx in group])
            for (n, key, sz, angle, y0, x0, _, _), r in zip(group, maps, strict=True):
                answers[i][n] = seen[i][key] = _peak(r, x0, y0, _kernel(jobs[i][1], sz, angle).side)
        for plane_key, batch in small.items():
            maps = _match_small(planes[plane_key], [(k, y0, x0, ny, nx)
                                                    for _, _, k, y0, x0, ny, nx in batch])
            for (i, n, k, y0, x0, ny, nx), r in zip(batch, maps, strict=True):
                sz, angle, cx, cy, rad = pending[i][n]
                side = k.side
                key = (sz, angle, int(round(cx - (side - 1) / 2.0)) - rad,
                       int(round(cy - (side - 1) / 2.0)) - rad, rad)
                answers[i][n] = seen[i][key] = _peak(r.reshape(ny, nx), x0, y0, side)
        for i in list(pending):
            try:
                pending[i] = steps[i].send(answers[i])  # type: ignore[arg-type]
            except StopIteration as stop:
                results[i] = stop.value
                del pending[i]
    return results  # type: ignore[return-value]


def _peak(r: np.ndarray, x0: int, y0: int, side: int) -> tuple[float, float, float]:
    """The best score of a search and the centre of its window (first in raster order)."""
    yy, xx = np.unravel_index(int(np.argmax(r)), r.shape)
    return float(r[yy, xx]), x0 + int(xx) + (side - 1) / 2.0, y0 + int(yy) + (side - 1) / 2.0


@dataclass(frozen=True)
class _Verdict:
    score: float  # pooled-colour correlation over the shape and its surrounding band
    blob_score: float  # the same for the best plain ellipse / rectangle of the same extent
    ink_std: float
    purity: float
    contrast: float
    color: tuple[int, int, int]
    background: tuple[int, int, int]
    box: tuple[int, int, int, int]

    @property
    def specificity(self) -> float:
        return self.score - self.blob_score


def _pooled_r(win: np.ndarray, model: np.ndarray, region: np.ndarray,
              pixels: tuple[np.ndarray, float] | None = None) -> float:
    """Correlation of `model` with the colour pixels over `region`, pooled over channels:
    the square root of the R^2 of the least-squares fit ``pixel_c = a_c + b_c * model``.

    `pixels` is ``_centred(win, region)`` when the caller already has it.
    """
    m = model[region]
    px, total = pixels if pixels is not None else _centred(win, region)
    m = m - m.mean()
    var_m = float((m * m).sum())
    if var_m <= 1e-9 or total <= 1e-6:
        return 0.0
    cov = m @ px
    return math.sqrt(max(0.0, float((cov * cov).sum()) / (var_m * total)))


def _centred(win: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, float]:
    """The colour pixels of `region`, less their mean, and their total sum of squares."""
    px = win[region]
    px = px - px.mean(axis=0)
    return px, float((px * px).sum())


@dataclass
class _Evidence:
    """What `_verify` measures before the score; enough for a runner-up."""

    score: float
    t: np.ndarray
    win: np.ndarray
    x0: int
    y0: int
    size: int
    cover: np.ndarray
    near: np.ndarray
    depth_out: np.ndarray
    core: np.ndarray
    outside: np.ndarray
    band: float
    pixels: tuple[np.ndarray, float]


def _evidence(rgb: np.ndarray, name: str, size: int, angle: float, cx: float, cy: float
              ) -> _Evidence | None:
    """The first half of `_verify`: the placement's window, regions and score; None where
    `_verify` would answer None."""
    import cv2

    t = _template(name, size, angle)
    side = t.shape[0]
    h, w = rgb.shape[:2]
    x0 = int(round(cx - (side - 1) / 2.0))
    y0 = int(round(cy - (side - 1) / 2.0))
    if x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h:
        # Partly outside the image: crop the template to the visible part.
        tx0, ty0 = max(0, -x0), max(0, -y0)
        tx1, ty1 = min(side, w - x0), min(side, h - y0)
        if tx1 - tx0 < side // 2 or ty1 - ty0 < side // 2:
            return None
        t = t[ty0:ty1, tx0:tx1]
        x0, y0 = x0 + tx0, y0 + ty0
    win = rgb[y0:y0 + t.shape[0], x0:x0 + t.shape[1]].astype(np.float32)
    cover = (t > 0.02).astype(np.uint8)
    if cover.sum() < 16:
        return None
    inside = (t >= 0.5).astype(np.uint8)
    depth_in = cv2.distanceTransform(cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT,
                                                        value=0), cv2.DIST_L2, 3)[1:-1, 1:-1]
    depth_out = cv2.distanceTransform(1 - cover, cv2.DIST_L2, 3)
    band = max(4.0, size / 8.0)
    near = depth_out <= band
    core = depth_in >= 1.5
    outside = (depth_out >= 1.5) & near
    if core.sum() < 12 or outside.sum() < 12:
        return None
    pixels = _centred(win, near)
    score = _pooled_r(win, t, near, pixels)
    return _Evidence(score, t, win, x0, y0, size, cover, near, depth_out, core, outside, band,
                     pixels)


def _verdict(e: _Evidence) -> _Verdict:
    """The second half of `_verify`: specificity, purity, colours and the ink's box."""
    import cv2

    t, win, near, outside, band = e.t, e.win, e.near, e.outside, e.band
    ys, xs = np.nonzero(e.cover)
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    ellipse = np.zeros(t.shape, np.uint8)
    cv2.ellipse(ellipse, (((bx0 + bx1 - 1) / 2.0, (by0 + by1 - 1) / 2.0),
                          (float(bx1 - bx0), float(by1 - by0)), 0.0), 1, -1)
    rect = np.zeros(t.shape, np.uint8)
    rect[by0:by1, bx0:bx1] = 1
    blob_score = max(_pooled_r(win, ellipse.astype(np.float32), near, e.pixels),
                     _pooled_r(win, rect.astype(np.float32), near, e.pixels))
    ink = win[e.core]
    color_f = np.median(ink, axis=0)
    far = outside & (e.depth_out > band / 2)
    bg_f = np.median(win[far] if far.any() else win[outside], axis=0)
    contrast = float(np.linalg.norm(color_f - bg_f))
    tol = max(20.0, 0.25 * contrast)
    p_in = float((np.linalg.norm(ink - color_f, axis=1) <= tol).mean())
    p_out = float((np.linalg.norm(win[outside] - color_f, axis=1) > tol).mean())
    # Holes and corners: outside pixels within the shape's own bounding box. For a badge with
    # cut-out letters these are its holes, which on a lettered plate are plate-coloured.
    in_box = np.zeros_like(outside)
    in_box[by0:by1, bx0:bx1] = True
    holes = outside & in_box
    p_hole = float((np.linalg.norm(win[holes] - color_f, axis=1) > tol).mean()) \
        if holes.sum() >= 12 else 1.0
    gray_ink = ink @ np.float32([0.299, 0.587, 0.114])
    ink_std = float(1.4826 * np.median(np.abs(gray_ink - np.median(gray_ink))))
    return _Verdict(
        score=e.score, blob_score=blob_score, ink_std=ink_std,
        purity=min(p_in, p_out, p_hole), contrast=contrast,
        color=tuple(int(round(v)) for v in color_f),  # type: ignore[arg-type]
        background=tuple(int(round(v)) for v in bg_f),  # type: ignore[arg-type]
        box=(e.x0 + bx0, e.y0 + by0, e.x0 + bx1, e.y0 + by1))


def _verify(rgb: np.ndarray, name: str, size: int, angle: float, cx: float, cy: float
            ) -> _Verdict | None:
    """Full-resolution evidence for pictogram `name` placed at (size, angle, centre).

    * ``score``: pooled-colour correlation over the shape plus a band of about size/8
      around it (not the whole square, whose corners may hold a sticker's rim or a photo);
    * ``blob_score``: the same for a filled ellipse and a filled rectangle with the shape's
      extent. A highlight on a helmet or the hole inside a flame correlates with a water drop
      almost as well as with an ellipse; a real pictogram fits its own template much better
      than any blob (``specificity``);
    * two-colour ``purity``: the pixels well inside the coverage (1.5 px or more from an
      edge, so a pixel of misalignment does not count) share one ink colour, and the pixels
      around it and in its holes (1.5 px or more outside) do not. A photo region fails the
      first, a lettered plate matched as a badge the second;
    * ``ink_std``: robust grey-level spread (MAD) of the ink core.

    (`detect_symbols` runs the two halves, `_evidence` and `_verdict`, separately: a
    runner-up needs only the score.)
    """
    e = _evidence(rgb, name, size, angle, cx, cy)
    return None if e is None else _verdict(e)


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _contains_center(a: Sequence[int], b: Sequence[int]) -> bool:
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    return a[0] <= cx < a[2] and a[1] <= cy < a[3]


def detect_symbols(image: Image.Image | np.ndarray, *,
                   settings: DetectorSettings = DEFAULT_DETECTOR_SETTINGS,
                   return_rejected: bool = False) -> list[SymbolDetection]:
    """Pictograms of the library found in `image`, best first (at most ``max_detections``).

    With `return_rejected`, candidates that failed verification are returned too (with
    ``extra["accepted"] = False``), for threshold studies; normal callers leave it off.
    """
    import cv2

    rgb = _as_rgb(image)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if min(gray.shape) < settings.min_size:
        return []
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    planes = {"gray": gray, "a": np.ascontiguousarray(lab[:, :, 1]),
              "b": np.ascontiguousarray(lab[:, :, 2])}
    sites = _coarse_sites(planes, settings)
    # The strongest few (name, plane) candidates of each site, at most two planes per name.
    site_jobs: list[list[int]] = []
    jobs: list[tuple[str, str, int, float, float]] = []
    for site in sites:
        entries = sorted(site.names.items(), key=lambda kv: -kv[1][0])
        chosen: list[tuple[str, str]] = []
        for key, val in entries:
            if val[0] < site.score - settings.name_margin or len(chosen) >= 4:
                break
            if sum(1 for k in chosen if k[0] == key[0]) < 2:
                chosen.append(key)
        site_jobs.append(list(range(len(jobs), len(jobs) + len(chosen))))
        jobs += [(plane, name, *site.names[(name, plane)][1:]) for name, plane in chosen]
    refined_all = _refine_all({key: _Plane(arr) for key, arr in planes.items()}, jobs, settings)
    results: list[SymbolDetection] = []
    for site, indices in zip(sites, site_jobs, strict=True):
        refined = [(s, jobs[i][1], sz, angle, x, y)
                   for i in indices for s, sz, angle, x, y in [refined_all[i]] if s > 0]
        refined.sort(key=lambda r: -r[0])
        evidence = []
        for s, name, sz, angle, x, y in refined[:3]:
            e = _evidence(rgb, name, sz, angle, x, y)
            if e is not None:
                evidence.append((e, s, name, sz, angle, x, y))
        if not evidence:
            continue
        evidence.sort(key=lambda r: -r[0].score)
        e, gray_score, name, sz, angle, x, y = evidence[0]
        runner = evidence[1] if len(evidence) > 1 else None
        if e.score < settings.threshold and not return_rejected:
            continue  # rejected whatever the rest of the verdict
        v = _verdict(e)
        accepted = (v.score >= settings.threshold and v.ink_std <= settings.max_ink_std
                    and v.purity >= settings.min_purity
                    and v.specificity >= settings.min_specificity
                    and v.score + v.specificity >= settings.min_evidence
                    and v.contrast >= settings.min_contrast)
        if not accepted and not return_rejected:
            continue
        results.append(SymbolDetection(
            name=name, score=v.score, box=v.box, center=(x, y), size=sz, angle_deg=angle,
            color=v.color, background=v.background, ink_std=v.ink_std,
            runner_up=runner[2] if runner else None,
            runner_up_score=runner[0].score if runner else None,
            extra={"gray_score": gray_score, "accepted": accepted, "purity": v.purity,
                   "coarse_score": max(c[0] for k, c in site.names.items() if k[0] == name),
                   "site_score": site.score,
                   "contrast": v.contrast, "blob_score": v.blob_score}))
    results.sort(key=lambda d: (not d.extra.get("accepted", True), -d.score))
    kept: list[SymbolDetection] = []
    for det in results:
        if any(_iou(det.box, k.box) > 0.3 or _contains_center(k.box, det.box)
               or _contains_center(det.box, k.box) for k in kept):
            continue
        kept.append(det)
    return kept[:settings.max_detections]


def find_quiet_region(image: Image.Image | np.ndarray, size: tuple[int, int],
                      avoid: Sequence[Sequence[int]] = (), *, margin: int = 6, step: int = 4
                      ) -> tuple[int, int, int, int]:
    """The `size` (w, h) box (x0, y0, x1, y1) with the least texture, clear of `avoid` boxes.

    Texture is the mean gradient magnitude (Sobel) over the box, summed with an integral
    image on a `step`-pixel grid; a sign added there hides the least of the photo. Boxes
    overlapping `avoid` (grown by `margin`) are skipped unless nothing else fits. Ties go to the
    first box in raster order, so the choice is deterministic.
    """
    import cv2

    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    bw, bh = min(int(size[0]), w - 2 * margin), min(int(size[1]), h - 2 * margin)
    if bw < 4 or bh < 4:
        raise ValueError(f"a {size[0]}x{size[1]} region does not fit a {w}x{h} image")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    integral = cv2.integral(mag, sdepth=cv2.CV_64F)
    ys = np.arange(margin, h - margin - bh + 1, step)
    xs = np.arange(margin, w - margin - bw + 1, step)
    if len(ys) == 0 or len(xs) == 0:
        ys, xs = np.array([max(0, (h - bh) // 2)]), np.array([max(0, (w - bw) // 2)])
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    cost = (integral[yy + bh, xx + bw] - integral[yy, xx + bw] - integral[yy + bh, xx]
            + integral[yy, xx]) / float(bw * bh)
    blocked = np.zeros_like(cost, dtype=bool)
    for box in avoid:
        ax0, ay0, ax1, ay1 = (int(v) for v in box[:4])
        blocked |= ((xx < ax1 + margin) & (xx + bw > ax0 - margin)
                    & (yy < ay1 + margin) & (yy + bh > ay0 - margin))
    if not blocked.all():
        cost = np.where(blocked, np.inf, cost)
    i = int(np.argmin(cost))
    y0, x0 = int(yy.flat[i]), int(xx.flat[i])
    return x0, y0, x0 + bw, y0 + bh
