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
from collections.abc import Sequence
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
    """|normalised cross-correlation| of every window of `image` with `templ`.

    The absolute value makes light-on-dark and dark-on-light pictograms score alike. OpenCV
    returns 0 for flat windows (undefined correlation).
    """
    import cv2

    r = cv2.matchTemplate(image, templ, cv2.TM_CCOEFF_NORMED)
    np.abs(r, out=r)
    r[~np.isfinite(r)] = 0.0
    return r


def _window_std(integral: np.ndarray, integral_sq: np.ndarray, h: int, w: int) -> np.ndarray:
    """Standard deviation of every h x w window, from integral images (result-shaped)."""
    n = float(h * w)
    s = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]
    q = integral_sq[h:, w:] - integral_sq[:-h, w:] - integral_sq[h:, :-w] + integral_sq[:-h, :-w]
    return np.sqrt(np.maximum(q / n - (s / n) ** 2, 0.0))


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
    """
    import cv2

    f = settings.coarse_factor
    h, w = planes["gray"].shape
    cands: list[tuple[float, str, int, float, float, str]] = []
    smalls: dict[str, np.ndarray] = {}
    for plane, full in planes.items():
        small = cv2.resize(full, (max(1, round(w / f)), max(1, round(h / f))),
                           interpolation=cv2.INTER_AREA)
        if plane != "gray" and float(small.std()) < 4.0:
            continue  # a grey image: nothing to see in the chroma planes
        smalls[plane] = small
        sx, sy = w / small.shape[1], h / small.shape[0]
        integral, integral_sq = cv2.integral2(small, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        sizes = settings.sizes if plane == "gray" else settings.sizes[1::3]
        for size in sizes:
            ts = max(5, round(size / f))
            if ts >= min(small.shape) - 1:
                continue
            # Windows with almost no contrast (sky, a blank wall) correlate with noise.
            textured = _window_std(integral, integral_sq, ts, ts) >= 3.0
            for name in settings.library:
                r = _ncc(small, _mask_array(name, ts))
                r[~textured] = 0.0
                peaks = (r >= settings.coarse_threshold) & (r >= cv2.dilate(r, np.ones((3, 3))))
                ys, xs = np.nonzero(peaks)
                if len(ys) > 8:  # keep the strongest few per template and size
                    order = np.argsort(-r[ys, xs])[:8]
                    ys, xs = ys[order], xs[order]
                for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
                    cx = (x + (ts - 1) / 2.0 + 0.5) * sx - 0.5
                    cy = (y + (ts - 1) / 2.0 + 0.5) * sy - 0.5
                    cands.append((float(r[y, x]), name, size, cx, cy, plane))
    cands.sort(key=lambda c: -c[0])
    sites: list[_Site] = []
    for score, name, size, cx, cy, plane in cands[:3000]:
        site = next((st for st in sites
                     if math.hypot(st.x - cx, st.y - cy) < 0.35 * max(st.size, size)), None)
        if site is not None:
            # One candidate per (name, plane): the planes may disagree about the size.
            key = (name, plane)
            if key in site.names:
                if site.names[key][0] < score:
                    site.names[key] = (score, size, cx, cy)
            elif name in {n for n, _ in site.names} or \
                    len({n for n, _ in site.names}) < settings.names_per_site:
                site.names[key] = (score, size, cx, cy)
            continue
        if len(sites) >= settings.max_sites or score < settings.site_threshold:
            continue
        small = smalls[plane]
        sx, sy = w / small.shape[1], h / small.shape[0]
        if not _coarse_flat_ink(small, name, size, cx / sx, cy / sy, f, settings):
            continue  # a textured blob: do not let it take a site from a real pictogram
        sites.append(_Site(cx, cy, size, score, {(name, plane): (score, size, cx, cy)}))
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


def _refine(gray: np.ndarray, name: str, size: int, cx: float, cy: float,
            settings: DetectorSettings) -> tuple[float, int, float, float, float]:
    """Best (score, size, angle, cx, cy) near a coarse candidate, at full resolution."""
    h, w = gray.shape
    radius = settings.coarse_factor + 2

    def search(sz: int, angle: float, cx: float, cy: float, rad: int
               ) -> tuple[float, float, float]:
        t = _template(name, sz, angle)
        side = t.shape[0]
        x0 = int(round(cx - (side - 1) / 2.0)) - rad
        y0 = int(round(cy - (side - 1) / 2.0)) - rad
        x1, y1 = x0 + side + 2 * rad, y0 + side + 2 * rad
        cx0, cy0 = max(0, x0), max(0, y0)
        roi = gray[cy0:min(h, y1), cx0:min(w, x1)]
        if roi.shape[0] < side or roi.shape[1] < side:
            return -1.0, cx, cy
        r = _ncc(roi, t)
        yy, xx = np.unravel_index(int(np.argmax(r)), r.shape)
        return (float(r[yy, xx]), cx0 + xx + (side - 1) / 2.0, cy0 + yy + (side - 1) / 2.0)

    # Start: a size sweep around the coarse size (the coarse ladder is 10 % apart and thin
    # shapes are poorly sized at a quarter of the resolution), upright.
    best = (-1.0, size, 0.0, cx, cy)
    lo_size, hi_size = round(0.9 * settings.min_size), round(1.1 * settings.max_size)
    for k in (0.9, 1.0, 1.1):
        sz = min(hi_size, max(lo_size, round(size * k)))
        s, x, y = search(sz, 0.0, cx, cy, radius)
        if s > best[0]:
            best = (s, sz, 0.0, x, y)
    if best[0] < 0.45:
        return best  # hopeless: no refinement lifts a correlation this low to a detection
    # Then coordinate descent over size (3 % steps) and angle (2-degree steps, within the
    # configured range), re-centring within 2 px at every step.
    lo, hi = -settings.max_angle_deg, settings.max_angle_deg
    step_a = settings.angle_step_deg
    for _ in range(8):
        s0, sz, angle, x, y = best
        moves = [(round(sz * 1.03), angle), (round(sz / 1.03), angle)]
        moves += [(sz, a) for a in (angle - step_a, angle + step_a) if lo <= a <= hi]
        improved = False
        for msz, ma in moves:
            if not lo_size <= msz <= hi_size:
                continue
            s, mx, my = search(msz, ma, x, y, 2)
            if s > best[0] + 1e-4:
                best, improved = (s, msz, ma, mx, my), True
        if not improved:
            break
    # Finish with 1 % size and 1-degree steps: at 130 px a 3 % step is 2 px at the edges,
    # which matters to an editor that must stay inside the pictogram's box.
    for _ in range(4):
        s0, sz, angle, x, y = best
        improved = False
        for msz, ma in ((round(sz * 1.01), angle), (round(sz / 1.01), angle),
                        (sz, angle - 1.0), (sz, angle + 1.0)):
            if msz == sz and ma == angle or not lo_size <= msz <= hi_size or not lo <= ma <= hi:
                continue
            s, mx, my = search(msz, ma, x, y, 1)
            if s > best[0] + 1e-4:
                best, improved = (s, msz, ma, mx, my), True
        if not improved:
            break
    return best


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


def _pooled_r(win: np.ndarray, model: np.ndarray, region: np.ndarray) -> float:
    """Correlation of `model` with the colour pixels over `region`, pooled over channels:
    the square root of the R^2 of the least-squares fit ``pixel_c = a_c + b_c * model``."""
    m = model[region]
    px = win[region]
    m = m - m.mean()
    px = px - px.mean(axis=0)
    var_m = float((m * m).sum())
    total = float((px * px).sum())
    if var_m <= 1e-9 or total <= 1e-6:
        return 0.0
    cov = m @ px
    return math.sqrt(max(0.0, float((cov * cov).sum()) / (var_m * total)))


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
    """
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
    depth_in = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    depth_out = cv2.distanceTransform(1 - cover, cv2.DIST_L2, 3)
    band = max(4.0, size / 8.0)
    near = depth_out <= band
    score = _pooled_r(win, t, near)

    ys, xs = np.nonzero(cover)
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    ellipse = np.zeros(t.shape, np.uint8)
    cv2.ellipse(ellipse, (((bx0 + bx1 - 1) / 2.0, (by0 + by1 - 1) / 2.0),
                          (float(bx1 - bx0), float(by1 - by0)), 0.0), 1, -1)
    rect = np.zeros(t.shape, np.uint8)
    rect[by0:by1, bx0:bx1] = 1
    blob_score = max(_pooled_r(win, ellipse.astype(np.float32), near),
                     _pooled_r(win, rect.astype(np.float32), near))

    core = depth_in >= 1.5
    outside = (depth_out >= 1.5) & near
    if core.sum() < 12 or outside.sum() < 12:
        return None
    ink = win[core]
    color_f = np.median(ink, axis=0)
    far = outside & (depth_out > band / 2)
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
        score=score, blob_score=blob_score, ink_std=ink_std, purity=min(p_in, p_out, p_hole),
        contrast=contrast, color=tuple(int(round(v)) for v in color_f),  # type: ignore[arg-type]
        background=tuple(int(round(v)) for v in bg_f),  # type: ignore[arg-type]
        box=(x0 + bx0, y0 + by0, x0 + bx1, y0 + by1))


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
    results: list[SymbolDetection] = []
    for site in _coarse_sites(planes, settings):
        refined = []
        # The strongest few (name, plane) candidates of the site, at most two planes per name.
        entries = sorted(site.names.items(), key=lambda kv: -kv[1][0])
        chosen: list[tuple[tuple[str, str], tuple[float, int, float, float]]] = []
        for key, val in entries:
            if val[0] < site.score - settings.name_margin or len(chosen) >= 4:
                break
            if sum(1 for k, _ in chosen if k[0] == key[0]) < 2:
                chosen.append((key, val))
        for (name, plane), (_, size, cx, cy) in chosen:
            s, sz, angle, x, y = _refine(planes[plane], name, size, cx, cy, settings)
            if s > 0:
                refined.append((s, name, sz, angle, x, y))
        refined.sort(key=lambda r: -r[0])
        verified = []
        for s, name, sz, angle, x, y in refined[:3]:
            v = _verify(rgb, name, sz, angle, x, y)
            if v is not None:
                verified.append((v, s, name, sz, angle, x, y))
        if not verified:
            continue
        verified.sort(key=lambda r: -r[0].score)
        v, gray_score, name, sz, angle, x, y = verified[0]
        runner = verified[1] if len(verified) > 1 else None
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
                   "coarse_score": max(v[0] for k, v in site.names.items() if k[0] == name),
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
