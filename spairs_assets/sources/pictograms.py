"""A small library of vector pictograms drawn with PIL.

Used by the demo seed generator (to put a safety-critical symbol on a photo) and by the symbol
detector of the classical editor (template matching), so rendering is a pure, deterministic
function of ``(name, size, color)``: every shape is drawn as polygons, ellipses and thick lines on
a binary mask at 4x the requested size, box-filtered down to ``size`` for antialiasing, and used as
the alpha channel of a single-colour RGBA image. No fonts are involved, so the output does not
depend on which fonts a machine has.

Each unsafe pictogram names the policy categories it belongs to (LlavaGuard v1.2 ids, ``O1`` ..
``O9``) and the benign pictogram that replaces it in a counterfactual. The unsafe set is kept
mild and iconic (no gore, no hate symbols).

This module must stay cheap to import and must not import dagster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

__all__ = [
    "PICTOGRAMS",
    "Pictogram",
    "benign_pictograms",
    "pictogram_mask",
    "pictograms_for_category",
    "render_pictogram",
]

_SUPERSAMPLE = 4

Point = tuple[float, float]


@dataclass(frozen=True)
class Pictogram:
    name: str
    description: str  # plain words, e.g. "a knife"
    unsafe: bool
    category_ids: tuple[str, ...] = ()  # policy ids of unsafe pictograms; empty for benign ones
    benign_replacement: str | None = None  # name of the benign pictogram used in a counterfactual


# --------------------------------------------------------------------------------------------
# Drawing helpers: all coordinates are in the unit square [0, 1] x [0, 1] (y downwards).
# --------------------------------------------------------------------------------------------


class _Pen:
    """Draws on a binary "L" mask; ``ink=False`` erases (cuts holes)."""

    def __init__(self, px: int):
        self.px = px
        self.mask = Image.new("L", (px, px), 0)
        self.draw = ImageDraw.Draw(self.mask)

    def _p(self, pt: Point) -> tuple[float, float]:
        return (pt[0] * self.px, pt[1] * self.px)

    def _v(self, ink: bool) -> int:
        return 255 if ink else 0

    def poly(self, pts: Sequence[Point], ink: bool = True) -> None:
        self.draw.polygon([self._p(p) for p in pts], fill=self._v(ink))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float | None = None,
                ink: bool = True) -> None:
        ry = rx if ry is None else ry
        self.draw.ellipse(
            [self._p((cx - rx, cy - ry)), self._p((cx + rx, cy + ry))], fill=self._v(ink)
        )

    def rot_ellipse(self, cx: float, cy: float, rx: float, ry: float, angle_deg: float,
                    ink: bool = True, n: int = 72) -> None:
        a = math.radians(angle_deg)
        ca, sa = math.cos(a), math.sin(a)
        pts = []
        for i in range(n):
            t = 2 * math.pi * i / n
            x, y = rx * math.cos(t), ry * math.sin(t)
            pts.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
        self.poly(pts, ink)

    def rect(self, x0: float, y0: float, x1: float, y1: float, ink: bool = True,
             radius: float = 0.0) -> None:
        box = [self._p((x0, y0)), self._p((x1, y1))]
        if radius > 0:
            self.draw.rounded_rectangle(box, radius=radius * self.px, fill=self._v(ink))
        else:
            self.draw.rectangle(box, fill=self._v(ink))

    def line(self, pts: Sequence[Point], width: float, ink: bool = True,
             round_caps: bool = True) -> None:
        w = max(1, round(width * self.px))
        self.draw.line([self._p(p) for p in pts], fill=self._v(ink), width=w, joint="curve")
        if round_caps:
            for p in (pts[0], pts[-1]):
                self.ellipse(p[0], p[1], width / 2, ink=ink)

    def arc(self, cx: float, cy: float, r: float, start: float, end: float, width: float,
            ink: bool = True) -> None:
        self.draw.arc(
            [self._p((cx - r, cy - r)), self._p((cx + r, cy + r))], start, end,
            fill=self._v(ink), width=max(1, round(width * self.px)),
        )

    def pieslice(self, cx: float, cy: float, r: float, start: float, end: float,
                 ink: bool = True) -> None:
        self.draw.pieslice(
            [self._p((cx - r, cy - r)), self._p((cx + r, cy + r))], start, end, fill=self._v(ink)
        )

    def ring(self, cx: float, cy: float, r: float, width: float, ink: bool = True) -> None:
        self.draw.ellipse(
            [self._p((cx - r, cy - r)), self._p((cx + r, cy + r))],
            outline=self._v(ink), width=max(1, round(width * self.px)),
        )


def _rotate(pts: Iterable[Point], angle_deg: float, center: Point = (0.5, 0.5)) -> list[Point]:
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = center
    return [(cx + (x - cx) * ca - (y - cy) * sa, cy + (x - cx) * sa + (y - cy) * ca)
            for x, y in pts]


def _rect_pts(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _star_pts(cx: float, cy: float, r_out: float, r_in: float, n: int,
              phase_deg: float = -90.0) -> list[Point]:
    pts = []
    for i in range(2 * n):
        r = r_out if i % 2 == 0 else r_in
        a = math.radians(phase_deg + 180.0 * i / n)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _x_bars(pen: _Pen, cx: float, cy: float, half: float, width: float, ink: bool) -> None:
    pen.line([(cx - half, cy - half), (cx + half, cy + half)], width, ink, round_caps=False)
    pen.line([(cx - half, cy + half), (cx + half, cy - half)], width, ink, round_caps=False)


# --------------------------------------------------------------------------------------------
# Benign pictograms
# --------------------------------------------------------------------------------------------


def _heart(pen: _Pen) -> None:
    pen.ellipse(0.30, 0.35, 0.21)
    pen.ellipse(0.70, 0.35, 0.21)
    pen.poly([(0.10, 0.40), (0.50, 0.90), (0.90, 0.40), (0.50, 0.33)])


def _star(pen: _Pen) -> None:
    pen.poly(_star_pts(0.5, 0.54, 0.47, 0.19, 5))


def _flower(pen: _Pen) -> None:
    for i in range(6):
        a = math.radians(60 * i - 90)
        pen.ellipse(0.5 + 0.26 * math.cos(a), 0.5 + 0.26 * math.sin(a), 0.18)
    pen.ellipse(0.5, 0.5, 0.13, ink=False)
    pen.ellipse(0.5, 0.5, 0.08)


def _leaf(pen: _Pen) -> None:
    # A pointed leaf (two circular arcs) on a diagonal, with a stem and a cut-out midrib.
    pts: list[Point] = []
    n = 40
    for i in range(n + 1):
        t = -1 + 2 * i / n
        pts.append((0.5 + 0.40 * t, 0.5 - 0.19 * (1 - t * t)))
    for i in range(n + 1):
        t = 1 - 2 * i / n
        pts.append((0.5 + 0.40 * t, 0.5 + 0.19 * (1 - t * t)))
    pen.poly(_rotate(pts, -45))
    stem = _rotate([(0.10, 0.5), (-0.02, 0.5)], -45)
    pen.line(stem, 0.05)
    rib = _rotate([(0.18, 0.5), (0.80, 0.5)], -45)
    pen.line(rib, 0.03, ink=False)


def _smiley(pen: _Pen) -> None:
    pen.ellipse(0.5, 0.5, 0.46)
    pen.ellipse(0.35, 0.38, 0.06, 0.09, ink=False)
    pen.ellipse(0.65, 0.38, 0.06, 0.09, ink=False)
    pen.arc(0.5, 0.48, 0.27, 25, 155, 0.07, ink=False)


def _checkmark(pen: _Pen) -> None:
    pen.line([(0.12, 0.55), (0.38, 0.80), (0.88, 0.20)], 0.15)


def _sun(pen: _Pen) -> None:
    pen.ellipse(0.5, 0.5, 0.23)
    for i in range(8):
        a = math.radians(45 * i)
        b1, b2 = a - math.radians(11), a + math.radians(11)
        pen.poly([
            (0.5 + 0.30 * math.cos(b1), 0.5 + 0.30 * math.sin(b1)),
            (0.5 + 0.47 * math.cos(a), 0.5 + 0.47 * math.sin(a)),
            (0.5 + 0.30 * math.cos(b2), 0.5 + 0.30 * math.sin(b2)),
        ])


def _paw_print(pen: _Pen) -> None:
    pen.ellipse(0.50, 0.68, 0.22, 0.19)
    pen.rot_ellipse(0.17, 0.42, 0.09, 0.12, -20)
    pen.rot_ellipse(0.37, 0.22, 0.09, 0.13, -8)
    pen.rot_ellipse(0.63, 0.22, 0.09, 0.13, 8)
    pen.rot_ellipse(0.83, 0.42, 0.09, 0.12, 20)


def _thumb_hand(pen: _Pen) -> None:
    """A thumbs-up hand; thumbs-down is this shape flipped vertically."""
    pen.rect(0.08, 0.46, 0.26, 0.92, radius=0.03)  # cuff
    pen.rect(0.32, 0.44, 0.86, 0.92, radius=0.08)  # four folded fingers
    pen.rect(0.32, 0.08, 0.52, 0.56, radius=0.10)  # thumb
    for y in (0.56, 0.68, 0.80):
        pen.line([(0.60, y), (0.88, y)], 0.025, ink=False, round_caps=False)


def _thumbs_up(pen: _Pen) -> None:
    _thumb_hand(pen)


def _pencil(pen: _Pen) -> None:
    body = _rect_pts(0.22, 0.42, 0.78, 0.58)
    tip = [(0.22, 0.42), (0.04, 0.50), (0.22, 0.58)]
    eraser = _rect_pts(0.84, 0.42, 0.96, 0.58)
    ang = -40
    pen.poly(_rotate(body, ang))
    pen.poly(_rotate(tip, ang))
    pen.poly(_rotate(eraser, ang))
    pen.poly(_rotate([(0.10, 0.455), (0.04, 0.50), (0.10, 0.545)], ang), ink=False)
    pen.poly(_rotate([(0.05, 0.475), (0.04, 0.50), (0.05, 0.525)], ang))  # graphite point
    pen.line(_rotate([(0.26, 0.50), (0.74, 0.50)], ang), 0.015, ink=False, round_caps=False)


def _bird_shape(pen: _Pen, ox: float, oy: float, s: float, ink: bool = True) -> None:
    def t(pts: Sequence[Point]) -> list[Point]:
        return [(ox + x * s, oy + y * s) for x, y in pts]

    pen.rot_ellipse(ox + 0.48 * s, oy + 0.58 * s, 0.28 * s, 0.17 * s, -12, ink)  # body
    pen.ellipse(ox + 0.74 * s, oy + 0.36 * s, 0.12 * s, ink=ink)  # head
    pen.poly(t([(0.84, 0.31), (0.98, 0.38), (0.84, 0.42)]), ink)  # beak
    pen.poly(t([(0.02, 0.50), (0.26, 0.56), (0.24, 0.70), (0.04, 0.76)]), ink)  # tail
    pen.poly(t([(0.30, 0.50), (0.46, 0.12), (0.64, 0.48)]), ink)  # raised wing
    pen.line(t([(0.46, 0.73), (0.42, 0.92)]), 0.025 * s, ink)  # legs
    pen.line(t([(0.56, 0.73), (0.58, 0.92)]), 0.025 * s, ink)


def _bird(pen: _Pen) -> None:
    _bird_shape(pen, 0.0, 0.0, 1.0)
    pen.ellipse(0.76, 0.34, 0.025, ink=False)  # eye


def _water_drop(pen: _Pen) -> None:
    pen.ellipse(0.5, 0.64, 0.30)
    pen.poly([(0.21, 0.57), (0.5, 0.04), (0.79, 0.57)])
    pen.arc(0.5, 0.64, 0.19, 100, 160, 0.05, ink=False)  # highlight


_TSHIRT_PTS: list[Point] = [
    (0.36, 0.10), (0.44, 0.16), (0.56, 0.16), (0.64, 0.10),  # collar
    (0.94, 0.26), (0.84, 0.46), (0.76, 0.41),  # right sleeve
    (0.76, 0.92), (0.24, 0.92), (0.24, 0.41),  # body
    (0.16, 0.46), (0.06, 0.26),  # left sleeve
]


def _tshirt(pen: _Pen) -> None:
    pen.poly(_TSHIRT_PTS)
    pen.ellipse(0.5, 0.12, 0.09, 0.07, ink=False)


def _spoon(pen: _Pen) -> None:
    ang = -40
    pen.rot_ellipse(*_rotate([(0.24, 0.5)], ang)[0], 0.20, 0.13, ang)
    pen.line(_rotate([(0.40, 0.5), (0.94, 0.5)], ang), 0.07)


# --------------------------------------------------------------------------------------------
# Unsafe pictograms
# --------------------------------------------------------------------------------------------


def _angry_face(pen: _Pen) -> None:  # O1
    cx, cy, r = 0.42, 0.58, 0.38
    pen.ellipse(cx, cy, r)
    # slanted, frowning brows and eyes
    pen.line([(0.22, 0.42), (0.38, 0.50)], 0.06, ink=False)
    pen.line([(0.62, 0.42), (0.46, 0.50)], 0.06, ink=False)
    pen.ellipse(0.32, 0.57, 0.045, ink=False)
    pen.ellipse(0.52, 0.57, 0.045, ink=False)
    pen.arc(cx, 0.90, 0.20, 215, 325, 0.06, ink=False)  # frown
    # a jagged "shout" burst with an exclamation mark
    pen.poly(_star_pts(0.80, 0.20, 0.19, 0.11, 7))
    pen.line([(0.80, 0.12), (0.80, 0.21)], 0.04, ink=False)
    pen.ellipse(0.80, 0.27, 0.025, ink=False)


def _thumbs_down(pen: _Pen) -> None:  # O1
    tmp = _Pen(pen.px)
    _thumb_hand(tmp)
    pen.mask.paste(tmp.mask.transpose(Image.Transpose.FLIP_TOP_BOTTOM), (0, 0))
    _x_bars(pen, 0.80, 0.80, 0.11, 0.06, True)


def _fist(pen: _Pen) -> None:  # O2
    pen.rect(0.36, 0.66, 0.70, 0.98)  # forearm
    pen.rect(0.18, 0.22, 0.82, 0.74, radius=0.10)  # fist
    for i in range(4):
        pen.ellipse(0.26 + 0.16 * i, 0.24, 0.085)  # knuckles
    for i in range(1, 4):
        x = 0.18 + 0.16 * i
        pen.line([(x, 0.20), (x, 0.44)], 0.022, ink=False, round_caps=False)
    pen.line([(0.16, 0.52), (0.62, 0.52)], 0.025, ink=False, round_caps=False)  # thumb edge
    pen.line([(0.18, 0.76), (0.82, 0.76)], 0.02, ink=False, round_caps=False)  # wrist


def _knife(pen: _Pen) -> None:  # O2
    ang = -35
    blade = [(0.04, 0.50), (0.20, 0.40), (0.58, 0.38), (0.58, 0.56), (0.26, 0.56)]
    pen.poly(_rotate(blade, ang))
    pen.poly(_rotate(_rect_pts(0.58, 0.34, 0.63, 0.60), ang))  # guard
    pen.poly(_rotate(_rect_pts(0.63, 0.40, 0.96, 0.54), ang))  # handle
    for x in (0.72, 0.86):
        c = _rotate([(x, 0.47)], ang)[0]
        pen.ellipse(c[0], c[1], 0.018, ink=False)  # rivets


def _xxx_badge(pen: _Pen) -> None:  # O3
    pen.rect(0.02, 0.26, 0.98, 0.74, radius=0.08)
    for cx in (0.21, 0.50, 0.79):
        _x_bars(pen, cx, 0.50, 0.10, 0.06, False)


def _adult_18(pen: _Pen) -> None:  # O3: a ring badge reading "18+" (drawn, not typeset)
    pen.ring(0.5, 0.5, 0.46, 0.07)
    pen.line([(0.20, 0.40), (0.27, 0.34), (0.27, 0.68)], 0.055, round_caps=False)  # "1"
    pen.ring(0.44, 0.41, 0.075, 0.045)  # "8"
    pen.ring(0.44, 0.59, 0.095, 0.045)
    pen.line([(0.64, 0.50), (0.84, 0.50)], 0.055, round_caps=False)  # "+"
    pen.line([(0.74, 0.40), (0.74, 0.60)], 0.055, round_caps=False)


def _no_clothes(pen: _Pen) -> None:  # O4: a crossed-out T-shirt
    shirt = [(0.5 + (x - 0.5) * 0.62, 0.5 + (y - 0.5) * 0.62) for x, y in _TSHIRT_PTS]
    pen.poly(shirt)
    pen.ellipse(0.5, 0.5 + (0.12 - 0.5) * 0.62, 0.056, 0.044, ink=False)
    pen.ring(0.5, 0.5, 0.46, 0.08)
    slash = [(0.5 + 0.33 * math.cos(math.radians(a)), 0.5 + 0.33 * math.sin(math.radians(a)))
             for a in (-135, 45)]
    pen.line(slash, 0.13, ink=False, round_caps=False)
    pen.line(slash, 0.08, round_caps=False)


def _burglar_mask(pen: _Pen) -> None:  # O5: a domino eye mask
    pts: list[Point] = []
    n = 48
    for i in range(n + 1):
        t = i / n
        x = 0.10 + 0.80 * t
        pts.append((x, 0.36 - 0.06 * math.sin(math.pi * t) + 0.04 * math.sin(2 * math.pi * t) ** 2))
    for i in range(n + 1):
        t = 1 - i / n
        x = 0.10 + 0.80 * t
        dip = 0.08 * math.exp(-((t - 0.5) / 0.08) ** 2)  # nose notch
        pts.append((x, 0.66 + 0.04 * math.sin(math.pi * t) - dip))
    pen.poly(pts)
    pen.rot_ellipse(0.33, 0.50, 0.10, 0.065, 8, ink=False)
    pen.rot_ellipse(0.67, 0.50, 0.10, 0.065, -8, ink=False)
    pen.line([(0.12, 0.44), (0.02, 0.30)], 0.045)  # ties
    pen.line([(0.12, 0.50), (0.02, 0.62)], 0.045)
    pen.line([(0.88, 0.44), (0.98, 0.30)], 0.045)
    pen.line([(0.88, 0.50), (0.98, 0.62)], 0.045)


def _crowbar(pen: _Pen) -> None:  # O5
    pen.line([(0.22, 0.94), (0.66, 0.20)], 0.085)
    pen.arc(0.76, 0.24, 0.11, 180, 360, 0.085)
    pen.arc(0.76, 0.24, 0.11, 0, 50, 0.085)
    pen.poly([(0.16, 0.96), (0.10, 0.86), (0.24, 0.86)])  # flattened chisel end
    pen.line([(0.845, 0.30), (0.86, 0.30)], 0.05, ink=False, round_caps=False)  # claw slot


def _pistol(pen: _Pen) -> None:  # O6: a pistol silhouette
    pen.rect(0.06, 0.26, 0.92, 0.44, radius=0.02)  # slide
    pen.rect(0.06, 0.22, 0.12, 0.26)  # front sight
    pen.poly([(0.62, 0.42), (0.90, 0.42), (0.96, 0.88), (0.72, 0.90), (0.66, 0.62)])  # grip
    pen.ring(0.56, 0.52, 0.09, 0.035)  # trigger guard
    pen.line([(0.56, 0.44), (0.53, 0.55)], 0.03)  # trigger
    for x in (0.70, 0.76, 0.82):
        pen.line([(x, 0.29), (x, 0.41)], 0.018, ink=False, round_caps=False)  # serrations


def _syringe(pen: _Pen) -> None:  # O6
    ang = -35
    pen.poly(_rotate(_rect_pts(0.86, 0.36, 0.92, 0.64), ang))  # plunger thumb rest
    pen.poly(_rotate(_rect_pts(0.68, 0.47, 0.88, 0.53), ang))  # plunger rod
    pen.poly(_rotate(_rect_pts(0.62, 0.38, 0.66, 0.62), ang))  # finger flange
    pen.poly(_rotate(_rect_pts(0.28, 0.41, 0.68, 0.59), ang))  # barrel
    pen.poly(_rotate([(0.28, 0.45), (0.20, 0.48), (0.20, 0.52), (0.28, 0.55)], ang))  # hub
    pen.poly(_rotate(_rect_pts(0.03, 0.49, 0.20, 0.51), ang))  # needle
    for x in (0.36, 0.44, 0.52, 0.60):
        pen.line(_rotate([(x, 0.41), (x, 0.49)], ang), 0.015, ink=False, round_caps=False)


def _razor_blade(pen: _Pen) -> None:  # O7: a double-edged safety-razor blade
    pen.rect(0.04, 0.28, 0.96, 0.72, radius=0.03)
    pen.line([(0.26, 0.50), (0.74, 0.50)], 0.07, ink=False)  # centre slot
    pen.ellipse(0.22, 0.50, 0.06, ink=False)
    pen.ellipse(0.78, 0.50, 0.06, ink=False)
    pen.ellipse(0.50, 0.50, 0.07, ink=False)
    for y in (0.28, 0.72):  # notches on the long edges
        pen.poly([(0.44, y), (0.50, 0.50 + (y - 0.50) * 0.70), (0.56, y)], ink=False)
    for x in (0.04, 0.96):  # notches on the short edges
        pen.poly([(x, 0.44), (0.50 + (x - 0.50) * 0.90, 0.50), (x, 0.56)], ink=False)


def _caged_bird(pen: _Pen) -> None:  # O8
    pen.arc(0.5, 0.40, 0.36, 180, 360, 0.04)  # dome
    pen.ring(0.5, 0.05, 0.04, 0.03)  # hook
    pen.rect(0.08, 0.86, 0.92, 0.96, radius=0.02)  # base
    for x in (0.14, 0.32, 0.50, 0.68, 0.86):
        top = 0.40 - math.sqrt(max(0.0, 0.36 ** 2 - (x - 0.5) ** 2))
        pen.line([(x, top + 0.01), (x, 0.87)], 0.03, round_caps=False)
    _bird_shape(pen, 0.22, 0.42, 0.50)
    for x in (0.32, 0.50, 0.68):  # bars in front of the bird
        pen.line([(x, 0.42), (x, 0.87)], 0.045, ink=False, round_caps=False)
        pen.line([(x, 0.40), (x, 0.87)], 0.03, round_caps=False)


def _dog_stick(pen: _Pen) -> None:  # O8: a cowering dog under a raised stick
    pen.rot_ellipse(0.50, 0.70, 0.26, 0.11, 0)  # body
    pen.line([(0.32, 0.72), (0.28, 0.94)], 0.055)  # legs
    pen.line([(0.42, 0.76), (0.42, 0.94)], 0.055)
    pen.line([(0.62, 0.76), (0.64, 0.94)], 0.055)
    pen.line([(0.72, 0.72), (0.76, 0.94)], 0.055)
    pen.ellipse(0.22, 0.66, 0.11)  # head, lowered
    pen.rot_ellipse(0.10, 0.72, 0.08, 0.05, 20)  # snout
    pen.rot_ellipse(0.27, 0.62, 0.05, 0.10, -30, ink=False)  # gap for the ear
    pen.rot_ellipse(0.28, 0.63, 0.035, 0.085, -30)  # drooping ear
    pen.line([(0.76, 0.68), (0.92, 0.80)], 0.035)  # tail tucked
    pen.ellipse(0.18, 0.63, 0.018, ink=False)  # eye
    pen.line([(0.30, 0.40), (0.86, 0.06)], 0.06)  # raised stick
    for x0, y0, x1, y1 in ((0.16, 0.38, 0.06, 0.30), (0.20, 0.30, 0.14, 0.18),
                           (0.28, 0.26, 0.28, 0.14)):
        pen.line([(x0, y0), (x1, y1)], 0.025)  # motion lines


def _flame(pen: _Pen) -> None:  # O9
    outer = [(0.50, 0.96), (0.24, 0.88), (0.12, 0.66), (0.18, 0.44), (0.28, 0.52),
             (0.30, 0.30), (0.44, 0.14), (0.50, 0.02), (0.58, 0.22), (0.70, 0.30),
             (0.72, 0.44), (0.80, 0.36), (0.88, 0.58), (0.84, 0.82), (0.70, 0.92)]
    pen.poly(outer)
    inner = [(0.50, 0.90), (0.34, 0.82), (0.32, 0.68), (0.42, 0.56), (0.46, 0.44),
             (0.56, 0.58), (0.66, 0.66), (0.64, 0.82)]
    pen.poly(inner, ink=False)


def _explosion(pen: _Pen) -> None:  # O9: an irregular starburst
    radii = (0.47, 0.24, 0.40, 0.26, 0.46, 0.22, 0.36, 0.27, 0.48, 0.23, 0.38, 0.25,
             0.44, 0.22, 0.34, 0.26)
    pts = []
    for i, r in enumerate(radii):
        a = math.radians(-90 + 360 * i / len(radii) + (7 if i % 4 == 1 else 0))
        pts.append((0.5 + r * math.cos(a), 0.5 + r * math.sin(a)))
    pen.poly(pts)
    inner = []
    for i, r in enumerate(radii):
        a = math.radians(-90 + 360 * i / len(radii))
        inner.append((0.5 + 0.45 * r * math.cos(a), 0.5 + 0.45 * r * math.sin(a)))
    pen.poly(inner, ink=False)


def _radiation(pen: _Pen) -> None:  # O9: the radiation trefoil
    pen.ring(0.5, 0.5, 0.475, 0.035)
    for start in (-120, 0, 120):
        pen.pieslice(0.5, 0.5, 0.41, start, start + 60)
    pen.ellipse(0.5, 0.5, 0.15, ink=False)
    pen.ellipse(0.5, 0.5, 0.09)


_DRAWERS: dict[str, Callable[[_Pen], None]] = {
    # benign
    "heart": _heart,
    "star": _star,
    "flower": _flower,
    "leaf": _leaf,
    "smiley": _smiley,
    "checkmark": _checkmark,
    "sun": _sun,
    "paw_print": _paw_print,
    "thumbs_up": _thumbs_up,
    "pencil": _pencil,
    "bird": _bird,
    "water_drop": _water_drop,
    "tshirt": _tshirt,
    "spoon": _spoon,
    # unsafe
    "angry_face": _angry_face,
    "thumbs_down": _thumbs_down,
    "fist": _fist,
    "knife": _knife,
    "xxx_badge": _xxx_badge,
    "adult_18": _adult_18,
    "no_clothes": _no_clothes,
    "burglar_mask": _burglar_mask,
    "crowbar": _crowbar,
    "pistol": _pistol,
    "syringe": _syringe,
    "razor_blade": _razor_blade,
    "caged_bird": _caged_bird,
    "dog_stick": _dog_stick,
    "flame": _flame,
    "explosion": _explosion,
    "radiation": _radiation,
}


def _benign(name: str, description: str) -> Pictogram:
    return Pictogram(name=name, description=description, unsafe=False)


def _unsafe(name: str, description: str, category_ids: tuple[str, ...],
            replacement: str) -> Pictogram:
    return Pictogram(name=name, description=description, unsafe=True,
                     category_ids=category_ids, benign_replacement=replacement)


PICTOGRAMS: dict[str, Pictogram] = {
    p.name: p
    for p in (
        _benign("heart", "a heart"),
        _benign("star", "a star"),
        _benign("flower", "a flower"),
        _benign("leaf", "a leaf"),
        _benign("smiley", "a smiling face"),
        _benign("checkmark", "a check mark"),
        _benign("sun", "a sun"),
        _benign("paw_print", "a paw print"),
        _benign("thumbs_up", "a thumbs-up hand"),
        _benign("pencil", "a pencil"),
        _benign("bird", "a bird"),
        _benign("water_drop", "a water drop"),
        _benign("tshirt", "a T-shirt"),
        _benign("spoon", "a spoon"),
        _unsafe("angry_face", "an angry shouting face", ("O1",), "smiley"),
        _unsafe("thumbs_down", "a thumbs-down hand with an X", ("O1",), "thumbs_up"),
        _unsafe("fist", "a clenched fist", ("O2",), "heart"),
        _unsafe("knife", "a knife", ("O2",), "spoon"),
        _unsafe("xxx_badge", "an XXX badge", ("O3",), "star"),
        _unsafe("adult_18", "an 18+ adult badge", ("O3",), "checkmark"),
        _unsafe("no_clothes", "a crossed-out T-shirt (no clothes) sign", ("O4",), "tshirt"),
        _unsafe("burglar_mask", "a burglar's eye mask", ("O5",), "sun"),
        _unsafe("crowbar", "a crowbar", ("O5",), "pencil"),
        _unsafe("pistol", "a pistol", ("O6",), "flower"),
        _unsafe("syringe", "a syringe", ("O6",), "pencil"),
        _unsafe("razor_blade", "a razor blade", ("O7",), "leaf"),
        _unsafe("caged_bird", "a bird locked in a cage", ("O8",), "bird"),
        _unsafe("dog_stick", "a cowering dog under a raised stick", ("O8",), "paw_print"),
        _unsafe("flame", "a flame", ("O9",), "water_drop"),
        _unsafe("explosion", "an explosion", ("O9",), "sun"),
        _unsafe("radiation", "a radiation hazard trefoil", ("O9",), "flower"),
    )
}

assert set(PICTOGRAMS) == set(_DRAWERS), "every pictogram needs a drawer"


def _check_name(name: str) -> None:
    if name not in PICTOGRAMS:
        raise KeyError(f"unknown pictogram {name!r}; known: {sorted(PICTOGRAMS)}")


@lru_cache(maxsize=512)
def pictogram_mask(name: str, size: int) -> Image.Image:
    """The antialiased coverage mask ("L", ``size`` x ``size``) of a pictogram.

    Cached: treat the returned image as read-only (copy before modifying it).
    """
    _check_name(name)
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"pictogram size must be an int >= 4, got {size!r}")
    pen = _Pen(size * _SUPERSAMPLE)
    _DRAWERS[name](pen)
    return pen.mask.reduce(_SUPERSAMPLE)


def render_pictogram(name: str, size: int, color: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Render pictogram ``name`` as a ``size`` x ``size`` RGBA image in one colour.

    The background is fully transparent; the alpha channel is the antialiased shape coverage.
    Deterministic: the same (name, size, color) always gives the same pixels.
    """
    r, g, b = (int(c) for c in color[:3])
    img = Image.new("RGBA", (size, size), (r, g, b, 0))
    img.putalpha(pictogram_mask(name, size))
    return img


def pictograms_for_category(category_id: str) -> list[Pictogram]:
    """The unsafe pictograms of a policy category, in a stable order."""
    return [p for p in PICTOGRAMS.values() if p.unsafe and category_id in p.category_ids]


def benign_pictograms() -> list[Pictogram]:
    return [p for p in PICTOGRAMS.values() if not p.unsafe]
