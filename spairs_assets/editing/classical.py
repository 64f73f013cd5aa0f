"""The classical (CPU) editor: locate the feature, inpaint it away, draw the replacement.

It follows an :class:`~spairs_assets.instructions.base.Instruction`:

* **text** (``replace`` / ``remove``): the word's glyphs are located on the pixels (from the
  OCR line and word analysis the grounded generator stored in ``details``; otherwise the
  editor runs OCR itself and looks for the named word, so instructions written by a VLM work
  too). The glyphs and their outline are inpainted with OpenCV inside a tight mask, and the
  replacement word is drawn with the original's cap height, colours, outline, baseline and
  rotation, in the DejaVu face whose proportions best match the original word, condensed if it
  must fit the space between the neighbouring words (or the plate's edge);
* **symbol** (``replace`` / ``remove``): the pictogram is located by template matching (or
  taken from ``details``), inpainted inside its own (dilated) coverage mask, and the
  replacement pictogram is drawn in the original's colour, rotation and place, scaled to fit
  inside the original's ink box;
* ``add``: a small sign with the phrase is drawn at ``region`` (or at the quietest place).

The hard rule: every pixel outside the edited region is bit-identical to the input. Each
step composes its result only inside its mask, and a final guard copies the input back
everywhere outside the union of the masks; ``details["edited_box"]`` records the box.

Candidates vary with the seed, deterministically: the inpainting method (Telea or
Navier-Stokes), a sub-pixel shift of the placement, and, where two faces match the original
about equally well, the face. The same seed always gives the same pixels.

There is no model, hence no round trip: :meth:`ClassicalEditor.null_edit` returns an identical
copy (pairs of source and null edit then measure nothing, which is the truth for this editor).

OpenCV, the OCR engine and the pictogram detector are imported on first use.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spairs_assets.config import SpairsConfig
from spairs_assets.editing.base import EditFailed, EditResult
from spairs_assets.instructions.base import Instruction

__all__ = ["CLASSICAL_EDITOR_VERSION", "ClassicalEditor", "from_config"]

CLASSICAL_EDITOR_VERSION = "classical-v1"

RGB = tuple[int, int, int]

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
              "/usr/share/fonts/TTF", "/usr/local/share/fonts")
# Candidate faces, bold first (signs are mostly bold). Each: (name, file, condensed twin).
_FACES: tuple[tuple[str, str, str | None], ...] = (
    ("DejaVuSans-Bold", "DejaVuSans-Bold.ttf", "DejaVuSansCondensed-Bold"),
    ("DejaVuSansCondensed-Bold", "DejaVuSansCondensed-Bold.ttf", None),
    ("DejaVuSerif-Bold", "DejaVuSerif-Bold.ttf", "DejaVuSerifCondensed-Bold"),
    ("DejaVuSerifCondensed-Bold", "DejaVuSerifCondensed-Bold.ttf", None),
    ("DejaVuSansMono-Bold", "DejaVuSansMono-Bold.ttf", "DejaVuSansCondensed-Bold"),
    ("DejaVuSans", "DejaVuSans.ttf", "DejaVuSansCondensed"),
    ("DejaVuSansCondensed", "DejaVuSansCondensed.ttf", None),
    ("DejaVuSerif", "DejaVuSerif.ttf", "DejaVuSerifCondensed"),
    ("DejaVuSerifCondensed", "DejaVuSerifCondensed.ttf", None),
    ("DejaVuSansMono", "DejaVuSansMono.ttf", "DejaVuSansCondensed"),
)
_DEFAULT_FACE = "pillow-default"
_MIN_SQUEEZE = 0.62  # narrowest horizontal scaling of a replacement word before it shrinks


# --------------------------------------------------------------------------------------------
# Fonts
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def available_faces() -> dict[str, str]:
    """name -> path of the candidate faces present on this machine (may be empty)."""
    found: dict[str, str] = {}
    for name, file, _ in _FACES:
        for d in _FONT_DIRS:
            path = os.path.join(d, file)
            if os.path.isfile(path):
                found[name] = path
                break
    return found


@lru_cache(maxsize=512)
def _font(face: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = max(4, int(size))
    path = available_faces().get(face)
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=64)
def _cap_height_per_px(face: str) -> float:
    """Cap height ("H" ink height) per pixel of font size."""
    font = _font(face, 100)
    left, top, right, bottom = font.getbbox("H", anchor="ls")
    return max(1.0, float(bottom - top)) / 100.0


def _size_for_cap(face: str, cap: float) -> int:
    return max(6, int(round(cap / _cap_height_per_px(face))))


@lru_cache(maxsize=2048)
def _word_metrics(face: str, size: int, text: str) -> tuple[float, float]:
    """(ink width, stem width) of `text` drawn in `face` at `size`."""
    import cv2

    font = _font(face, size)
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    w, h = int(right - left) + 4, int(bottom - top) + 4
    img = Image.new("L", (max(1, w), max(1, h)), 0)
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, font=font, fill=255, anchor="ls")
    arr = (np.asarray(img) > 127).astype(np.uint8)
    depth = cv2.distanceTransform(arr, cv2.DIST_L2, 3)
    stem = float(2 * np.percentile(depth[depth > 0], 90)) if (depth > 0).any() else 1.0
    return float(right - left), stem


def rank_faces(original: str, ink_width: float, stem: float, cap: float) -> list[tuple[float, str]]:
    """Candidate faces ranked by how well they reproduce the original word's proportions.

    The original word (as read) is rendered in every face at the measured cap height; its
    ink width and stem width are compared with the measured ones (log ratios, width counting
    double). Lower is better.
    """
    faces = list(available_faces()) or [_DEFAULT_FACE]
    ranked = []
    for face in faces:
        size = _size_for_cap(face, cap)
        w, s = _word_metrics(face, size, original)
        if w <= 0 or ink_width <= 0:
            continue
        score = 2.0 * abs(math.log(w / ink_width)) + abs(math.log(max(0.5, s) / max(0.5, stem)))
        ranked.append((score, face))
    ranked.sort()
    return ranked or [(0.0, faces[0])]


def _condensed(face: str) -> str | None:
    twin = next((c for n, _, c in _FACES if n == face), None)
    return twin if twin in available_faces() else None


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _match_case(word: str, like: str) -> str:
    """`word` in the case of `like` (by majority: OCR sometimes reads one capital as lower
    case, "FLoOD")."""
    letters = [c for c in like if c.isalpha()]
    if not letters:
        return word
    upper = sum(c.isupper() for c in letters) / len(letters)
    if upper >= 0.6:
        return word.upper()
    if upper <= 0.2 and not letters[0].isupper():
        return word.lower()
    if letters[0].isupper():
        return word[:1].upper() + word[1:].lower()
    return word.lower()


def _quoted(text: str) -> list[str]:
    return re.findall(r"[\"“”']([^\"“”']{1,60})[\"“”']", text)


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _inpaint(rgb: np.ndarray, mask: np.ndarray, radius: int, method: str) -> np.ndarray:
    """Inpaint `mask` (bool) of `rgb`, working on a crop around it; returns a full image."""
    import cv2

    box = _box_of(mask)
    out = rgb.copy()
    if box is None:
        return out
    h, w = mask.shape
    pad = 3 * radius + 4
    x0, y0 = max(0, box[0] - pad), max(0, box[1] - pad)
    x1, y1 = min(w, box[2] + pad), min(h, box[3] + pad)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1])
    m = mask[y0:y1, x0:x1].astype(np.uint8) * 255
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    filled = cv2.inpaint(crop, m, radius, flag)[:, :, ::-1]
    region = out[y0:y1, x0:x1]
    sel = m > 0
    region[sel] = filled[sel]
    return out


def _composite(base: np.ndarray, colour_premul: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`base` over which a premultiplied colour layer with `alpha` (0..1) is laid."""
    out = base.astype(np.float32) * (1.0 - alpha[..., None]) + colour_premul
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _warp_layer(layer: Image.Image, matrix: np.ndarray, shape: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Warp an RGBA layer into image space by the 2x3 `matrix` (layer -> image).

    Returns (premultiplied colour, alpha 0..1) in image coordinates. Premultiplying before
    resampling keeps the transparent surround from darkening the antialiased edges.
    """
    import cv2

    arr = np.asarray(layer, dtype=np.float32)
    alpha = arr[..., 3] / 255.0
    premul = arr[..., :3] * alpha[..., None]
    h, w = shape
    m = matrix.astype(np.float32)
    warped_c = cv2.warpAffine(premul, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped_a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped_a[warped_a < 1.0 / 255] = 0.0
    return warped_c, np.clip(warped_a, 0.0, 1.0)


def _polygon_mask(shape: tuple[int, int], quad: Any) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    pts = np.round(np.array(quad, dtype=np.float64) * 4).astype(np.int32)  # 2 fractional bits
    cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=2)
    return m.astype(bool)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    if px <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


@dataclass(frozen=True)
class _Variation:
    """What a candidate seed changes (deterministically)."""

    inpaint: str  # "telea" | "ns"
    shift: float  # sub-pixel shift of the placement along the text / symbol, in pixels
    face_rank: int  # 0: the best-matching face; 1: the runner-up, when it matches about as well

    @classmethod
    def from_seed(cls, seed: int) -> _Variation:
        rng = random.Random(f"classical-editor:{int(seed)}")
        return cls(inpaint=rng.choice(("telea", "ns")), shift=round(rng.uniform(-0.6, 0.6), 3),
                   face_rank=0 if rng.random() < 0.7 else 1)


# --------------------------------------------------------------------------------------------
# The editor
# --------------------------------------------------------------------------------------------


class ClassicalEditor:
    """Instruction-driven OpenCV editor (see the module docstring)."""

    editor_id = "classical"
    revision = CLASSICAL_EDITOR_VERSION
    uses_gpu = False

    def __init__(self, inpaint_radius: int = 5, margin: int = 2):
        if inpaint_radius < 1 or margin < 0:
            raise ValueError(f"inpaint_radius must be >= 1 and margin >= 0, got "
                             f"{inpaint_radius}, {margin}")
        self.inpaint_radius = int(inpaint_radius)
        self.margin = int(margin)
        self.params: dict[str, Any] = {"inpaint_radius": self.inpaint_radius,
                                       "margin": self.margin}

    def __repr__(self) -> str:
        return f"ClassicalEditor(revision={self.revision!r}, params={self.params})"

    @staticmethod
    def package_versions() -> dict[str, str]:
        from spairs_assets.versioning import package_versions

        return package_versions("opencv-python-headless", "pillow", "numpy",
                                "rapidocr-onnxruntime")

    def null_edit(self, image: Image.Image, seed: int) -> Image.Image:
        """An identical copy: this editor has no encode/decode round trip to imitate."""
        del seed
        return image.convert("RGB").copy()

    # ---- dispatch -----------------------------------------------------------------------
    def edit(self, image: Image.Image, instruction: Instruction, seed: int) -> EditResult:
        rgb = np.array(image.convert("RGB"))
        var = _Variation.from_seed(seed)
        kind, feature = instruction.edit_kind, instruction.feature_kind
        if kind == "add":
            out, details = self._add(rgb, instruction, var)
        elif feature == "text":
            out, details = self._text(rgb, instruction, var)
        elif feature == "symbol":
            out, details = self._symbol(rgb, instruction, var)
        else:
            raise EditFailed(f"the classical editor edits text and pictograms only, not "
                             f"{feature!r} features ({instruction.feature!r}); use a diffusion "
                             "editor for objects")
        allowed = details.pop("_allowed")
        out = np.where(allowed[..., None], out, rgb)  # the guard: nothing else may change
        changed = np.any(out != rgb, axis=2)
        box = _box_of(changed)
        details.update(edited_box=list(box) if box else None, changed_pixels=int(changed.sum()),
                       inpaint=var.inpaint, shift=var.shift, seed=int(seed))
        if box is None:
            raise EditFailed("the edit changed no pixel (the feature may be invisible)")
        return EditResult(image=Image.fromarray(out), details=details)

    # ---- text -----------------------------------------------------------------------------
    def _locate_text(self, rgb: np.ndarray, instruction: Instruction) -> tuple[Any, Any, str, str]:
        """(OcrLine, WordInk, word as read, how it was found)."""
        from spairs_assets.vision.ocr import (
            OcrLine,
            WordInk,
            analyse_word,
            find_words,
            read_text,
        )

        d = instruction.details or {}
        if d.get("ocr_line") and d.get("word_ink") and d.get("match"):
            line = OcrLine.from_dict(d["ocr_line"])
            ink = WordInk.from_dict(d["word_ink"])
            m = d["match"]
            if ink.frame.width > 0 and max(ink.box[2], ink.box[3]) <= max(rgb.shape) + 8:
                return line, ink, str(m.get("text") or instruction.feature), "instruction"
        targets = [t for t in _quoted(instruction.feature) if t.strip()] or [instruction.feature]
        lines = read_text(rgb)
        matches = find_words(lines, targets)
        if instruction.region is not None and matches:
            x0, y0, x1, y1 = instruction.region

            def overlap(m: Any) -> int:
                bx = m.box
                return (max(0, min(x1, bx[2]) - max(x0, bx[0]))
                        * max(0, min(y1, bx[3]) - max(y0, bx[1])))

            matches.sort(key=lambda m: -overlap(m))
        if not matches:
            read = "; ".join(ln.text for ln in lines) or "no text"
            raise EditFailed(f"could not find the text {targets[0]!r} in the image "
                             f"(OCR read: {read})")
        m = matches[0]
        return m.line, analyse_word(rgb, m.line, m.start, m.end), m.text, "ocr"

    def _text_mask(self, rgb: np.ndarray, ink: Any) -> np.ndarray:
        """Pixels of the word's glyphs (fill and outline), grown by `margin` for the
        antialiased edges, inside the word's ink box (which includes any outline) plus 1 px."""
        import cv2

        region = _polygon_mask(rgb.shape[:2], ink.frame.quad(ink.s0 - 0.5, ink.t0 - 0.5,
                                                             ink.s1 + 0.5, ink.t1 + 0.5))
        box = _box_of(region)
        if box is None:
            return region
        x0, y0, x1, y1 = box
        px = rgb[y0:y1, x0:x1].astype(np.float32)
        reg = region[y0:y1, x0:x1]
        bg = np.float32(ink.background)
        fill = np.float32(ink.fill)
        if ink.plate:
            tol = max(20.0, 0.2 * float(np.linalg.norm(fill - bg)))
            glyph = np.linalg.norm(px - bg, axis=2) > tol
        else:
            other = np.float32(ink.outline) if ink.outline is not None else bg
            glyph = np.linalg.norm(px - fill, axis=2) <= max(30.0, 0.45 * float(
                np.linalg.norm(fill - other)))
            if ink.outline is not None:
                # The outline: its colour, within its width of the fill (a photo with patches
                # of that colour must not enlarge the mask).
                out_c = np.float32(ink.outline)
                is_out = np.linalg.norm(px - out_c, axis=2) <= max(
                    30.0, 0.45 * float(np.linalg.norm(out_c - fill)))
                dist = cv2.distanceTransform((~(glyph & reg)).astype(np.uint8), cv2.DIST_L2, 3)
                glyph |= is_out & (dist <= ink.outline_width + 0.5)
        glyph &= reg
        full = np.zeros(rgb.shape[:2], bool)
        full[y0:y1, x0:x1] = glyph
        # Grow by `margin` for the antialiased edge; an outline's own edge is already in it,
        # so text with an outline grows by 1 px only.
        grow = self.margin if ink.outline is None else min(self.margin, 1)
        return _dilate(full, grow) & _dilate(region, grow)

    def _text(self, rgb: np.ndarray, instruction: Instruction, var: _Variation
              ) -> tuple[np.ndarray, dict[str, Any]]:
        line, ink, read, located_by = self._locate_text(rgb, instruction)
        mask = self._text_mask(rgb, ink)
        if not mask.any():
            raise EditFailed(f"found {read!r} but no glyph pixels to remove")
        out = _inpaint(rgb, mask, self.inpaint_radius, var.inpaint)
        details: dict[str, Any] = {
            "located_by": located_by, "feature_read": read, "line_text": line.text,
            "word_box": list(ink.box), "angle_deg": round(ink.frame.angle_deg, 3),
            "fill": list(ink.fill), "outline": list(ink.outline) if ink.outline else None,
            "mask_pixels": int(mask.sum()),
        }
        allowed = mask.copy()
        if instruction.edit_kind == "replace":
            if not instruction.replacement or not instruction.replacement.strip():
                raise EditFailed("a text replacement needs the replacement word")
            word = _match_case(" ".join(instruction.replacement.split()), read)
            out, drawn, info = self._draw_word(out, ink, word, read, var)
            details.update(info)
            allowed |= drawn
        elif instruction.edit_kind != "remove":
            raise EditFailed(f"unsupported edit kind {instruction.edit_kind!r} for text")
        details["_allowed"] = allowed
        return out, details

    def _draw_word(self, rgb: np.ndarray, ink: Any, word: str, original: str, var: _Variation
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Draw `word` where `ink` was: same cap height, colours, outline, baseline, angle."""
        ow = float(ink.outline_width) if ink.outline is not None else 0.0
        cap = max(4.0, ink.cap_height - 2 * ow)
        orig_w = max(2.0, (ink.s1 - ink.s0) - 2 * ow)
        stem = max(1.0, ink.stem_width - 2 * ow)
        ranked = rank_faces(_match_case(original, original).replace(" ", ""), orig_w, stem,
                            cap)
        pick = 1 if var.face_rank == 1 and len(ranked) > 1 and \
            ranked[1][0] - ranked[0][0] < 0.08 else 0
        face = ranked[pick][1]
        avail = max(4.0, (ink.avail_s1 - ink.avail_s0))
        stroke = int(round(ow))

        def measure(f: str, size: int) -> tuple[float, tuple[float, float, float, float]]:
            bb = _font(f, size).getbbox(word, anchor="ls", stroke_width=stroke)
            return float(bb[2] - bb[0]), tuple(float(v) for v in bb)  # type: ignore[return-value]

        size = _size_for_cap(face, cap)
        width, bbox = measure(face, size)
        squeeze = 1.0
        if width > avail:
            twin = _condensed(face)
            if twin is not None:
                t_size = _size_for_cap(twin, cap)
                t_width, t_bbox = measure(twin, t_size)
                if t_width < width:
                    face, size, width, bbox = twin, t_size, t_width, t_bbox
        if width > avail:
            # Too wide even condensed: squeeze a little (to 0.85), then make it smaller (to
            # 0.75 of the height), and only then squeeze more: a smaller word reads better
            # than a crushed one.
            squeeze = max(0.85, avail / width)
            floor = max(6, int(0.75 * size))
            while width * squeeze > avail and size > floor:
                size -= 1
                width, bbox = measure(face, size)
            squeeze = max(_MIN_SQUEEZE, min(1.0, avail / width))
            while width * squeeze > avail and size > 6:
                size -= 1
                width, bbox = measure(face, size)
                squeeze = max(_MIN_SQUEEZE, min(1.0, avail / width))
        font = _font(face, size)
        left, top, right, bottom = bbox
        pad = stroke + 3
        lw, lh = int(math.ceil(right - left)) + 2 * pad, int(math.ceil(bottom - top)) + 2 * pad
        layer = Image.new("RGBA", (max(1, lw), max(1, lh)), (0, 0, 0, 0))
        fill = (*ink.fill, 255)
        kw: dict[str, Any] = {"font": font, "fill": fill, "anchor": "ls"}
        if stroke > 0 and ink.outline is not None:
            kw.update(stroke_width=stroke, stroke_fill=(*ink.outline, 255))
        origin_x, origin_y = pad - left, pad - top  # baseline-left of the text in the layer
        ImageDraw.Draw(layer).text((origin_x, origin_y), word, **kw)
        if squeeze < 1.0:
            new_w = max(1, int(round(lw * squeeze)))
            layer = layer.resize((new_w, lh), Image.Resampling.LANCZOS)
        ink_w = width * squeeze
        # Placement in the frame: centred on the old word, kept inside the available span;
        # the baseline on the old baseline (caps sit on it; an outline hangs below by its width).
        centre = (ink.s0 + ink.s1) / 2 + var.shift
        s_left = min(max(centre - ink_w / 2, ink.avail_s0), ink.avail_s1 - ink_w)
        baseline_t = ink.t1 - ow
        # Layer pixel (lx, ly) -> frame (s, t): s = s_left + (lx - pad*squeeze), t = baseline +
        # (ly - origin_y). Then frame -> image by the frame's matrix.
        to_frame = np.array([[1.0, 0.0, s_left - pad * squeeze],
                             [0.0, 1.0, baseline_t - origin_y],
                             [0.0, 0.0, 1.0]])
        matrix = ink.frame.matrix() @ to_frame
        colour, alpha = _warp_layer(layer, matrix, rgb.shape[:2])
        # Never draw past the available span (neighbouring words, the plate's edge).
        limit = _polygon_mask(rgb.shape[:2], ink.frame.quad(
            ink.avail_s0, ink.t0 - 1, ink.avail_s1, ink.t1 + 1))
        alpha[~limit] = 0.0
        colour[~limit] = 0.0
        drawn = alpha > 0
        out = _composite(rgb, colour, alpha)
        out[~drawn] = rgb[~drawn]
        info = {"replacement_drawn": word, "font": face, "font_size": size,
                "squeeze": round(squeeze, 3), "available_width": round(avail, 1),
                "drawn_pixels": int(drawn.sum())}
        return out, drawn, info

    # ---- symbols --------------------------------------------------------------------------
    def _locate_symbol(self, rgb: np.ndarray, instruction: Instruction) -> tuple[Any, str]:
        from spairs_assets.vision.symbols import SymbolDetection, detect_symbols

        d = instruction.details or {}
        if d.get("symbol"):
            return SymbolDetection.from_dict(d["symbol"]), "instruction"
        wanted = _pictogram_name(instruction.feature)
        dets = detect_symbols(rgb)
        if wanted is not None:
            named = [x for x in dets if x.name == wanted]
            if named:
                return named[0], "detector"
        if instruction.region is not None and dets:
            x0, y0, x1, y1 = instruction.region
            inside = [x for x in dets if x0 <= (x.box[0] + x.box[2]) / 2 < x1
                      and y0 <= (x.box[1] + x.box[3]) / 2 < y1]
            if inside and wanted is None:
                return inside[0], "detector"
        seen = ", ".join(f"{x.name} ({x.score:.2f})" for x in dets) or "none"
        raise EditFailed(f"could not find the pictogram {instruction.feature!r} in the image "
                         f"(pictograms detected: {seen})")

    def _symbol(self, rgb: np.ndarray, instruction: Instruction, var: _Variation
                ) -> tuple[np.ndarray, dict[str, Any]]:
        from spairs_assets.vision.symbols import placed_mask

        det, located_by = self._locate_symbol(rgb, instruction)
        shape = rgb.shape[:2]
        cover = placed_mask(det.name, det.size, det.angle_deg, det.center, shape)
        # The pictogram's pixels: its placed coverage, plus ink-coloured pixels just around it
        # (the placement is good to a pixel or two), grown by 1 px for the antialiased edge.
        near = _dilate(cover > 0.02, self.margin + 1)
        px = rgb.astype(np.float32)
        ink_c, bg_c = np.float32(det.color), np.float32(det.background)
        d_ink = np.linalg.norm(px - ink_c, axis=2)
        d_bg = np.linalg.norm(px - bg_c, axis=2)
        contrast = float(np.linalg.norm(ink_c - bg_c))
        ink_like = (d_ink < d_bg) & (d_bg > 0.2 * contrast)
        mask = _dilate((cover > 0.5) | (near & ink_like), 1) & near
        out = _inpaint(rgb, mask, self.inpaint_radius, var.inpaint)
        details: dict[str, Any] = {"located_by": located_by, "symbol": det.name,
                                   "symbol_box": list(det.box), "symbol_score": round(det.score, 4),
                                   "angle_deg": det.angle_deg, "color": list(det.color),
                                   "mask_pixels": int(mask.sum())}
        allowed = mask.copy()
        if instruction.edit_kind == "replace":
            name = _pictogram_name(instruction.replacement or "")
            if name is None:
                raise EditFailed(f"unknown replacement pictogram {instruction.replacement!r}")
            # On a plate (sign, sticker) the new pictogram may fill the old one's square; on a
            # photo it must fit inside the old one's ink box, or it would cover the photo.
            plate, sq_box = _on_plate(det, near, d_bg, contrast, shape)
            new = _fit_pictogram(name, det, var.shift, fill_square=plate)
            alpha = placed_mask(name, new[0], det.angle_deg, new[1], shape)
            bx0, by0, bx1, by1 = sq_box if plate else det.box
            m = 1
            keep = np.zeros(shape, bool)
            keep[max(0, by0 - m):by1 + m, max(0, bx0 - m):bx1 + m] = True
            alpha[~keep] = 0.0
            alpha[alpha < 1.0 / 255] = 0.0
            colour = alpha[..., None] * np.float32(det.color)
            drawn = alpha > 0
            composed = _composite(out, colour, alpha)
            out = np.where(drawn[..., None], composed, out)
            allowed |= drawn
            details.update(replacement_drawn=name, replacement_size=new[0],
                           drawn_pixels=int(drawn.sum()))
        elif instruction.edit_kind != "remove":
            raise EditFailed(f"unsupported edit kind {instruction.edit_kind!r} for a symbol")
        details["_allowed"] = allowed
        return out, details

    # ---- add ------------------------------------------------------------------------------
    def _add(self, rgb: np.ndarray, instruction: Instruction, var: _Variation
             ) -> tuple[np.ndarray, dict[str, Any]]:
        phrase = " ".join((instruction.replacement or instruction.feature or "").split())
        quoted = _quoted(instruction.text)
        if not phrase and quoted:
            phrase = quoted[0]
        if not phrase:
            raise EditFailed("an 'add' instruction needs the phrase to add (replacement)")
        if instruction.feature_kind not in ("text", "other"):
            raise EditFailed(f"the classical editor adds text signs only, not "
                             f"{instruction.feature_kind!r}")
        h, w = rgb.shape[:2]
        if instruction.region is not None:
            x0, y0, x1, y1 = (int(v) for v in instruction.region)
        else:
            from spairs_assets.vision.symbols import find_quiet_region

            x0, y0, x1, y1 = find_quiet_region(rgb, sign_size(phrase, (w, h)))
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 16 or y1 - y0 < 10:
            raise EditFailed(f"region {instruction.region} is too small for a sign")
        sign, plate, ink_c = _render_sign(phrase, (x1 - x0, y1 - y0),
                                          rgb[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0), var)
        arr = np.asarray(sign, dtype=np.float32)
        alpha = arr[..., 3] / 255.0
        out = rgb.copy()
        patch = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(np.rint(patch * (1 - alpha[..., None])
                                            + arr[..., :3] * alpha[..., None]), 0, 255)
        allowed = np.zeros((h, w), bool)
        allowed[y0:y1, x0:x1] = alpha > 0
        return out, {"located_by": "region" if instruction.region else "quiet-region",
                     "phrase": phrase, "sign_box": [x0, y0, x1, y1], "plate": list(plate),
                     "ink": list(ink_c), "_allowed": allowed}


# --------------------------------------------------------------------------------------------
# Pictogram and sign helpers
# --------------------------------------------------------------------------------------------


def _pictogram_name(text: str) -> str | None:
    """A library name from a name ("knife"), a description ("a knife") or a phrase."""
    from spairs_assets.sources.pictograms import PICTOGRAMS

    t = text.strip().lower()
    if not t:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", t).strip("_")
    if key in PICTOGRAMS:
        return key
    for name, p in PICTOGRAMS.items():
        if t == p.description.lower() or t.removeprefix("a ").removeprefix("an ") == \
                p.description.lower().removeprefix("a ").removeprefix("an "):
            return name
    # The longest library name mentioned as words ("the knife pictogram" -> knife).
    hits = [n for n in PICTOGRAMS if re.search(rf"\b{n.replace('_', '[ _-]')}\b", t)]
    return max(hits, key=len) if hits else None


def _on_plate(det: Any, near: np.ndarray, d_bg: np.ndarray, contrast: float,
              shape: tuple[int, int]) -> tuple[bool, tuple[int, int, int, int]]:
    """Does the detected pictogram sit on a plate (a sign, a sticker)? And its square's box.

    A plate: the pictogram's square, outside the pictogram itself, is all background colour;
    and well outside the square (0.3 to 0.45 of its side) the colour changes, or it would be
    a flat stretch of the photo the pictogram was drawn on.
    """
    h, w = shape
    half = det.size / 2.0
    x0, y0 = int(math.floor(det.center[0] - half)), int(math.floor(det.center[1] - half))
    x1, y1 = int(math.ceil(det.center[0] + half)) + 1, int(math.ceil(det.center[1] + half)) + 1
    box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
    square = np.zeros(shape, bool)
    square[box[1]:box[3], box[0]:box[2]] = True
    free = square & ~near
    tol = max(25.0, 0.15 * contrast)
    if not free.any() or float((d_bg[free] <= tol).mean()) <= 0.97:
        return False, box
    g0, g1 = int(0.3 * det.size), int(0.45 * det.size)
    outer = np.zeros(shape, bool)
    outer[max(0, y0 - g1):y1 + g1, max(0, x0 - g1):x1 + g1] = True
    outer[max(0, y0 - g0):y1 + g0, max(0, x0 - g0):x1 + g0] = False
    return bool(outer.any()) and float((d_bg[outer] <= tol).mean()) < 0.4, box


def _fit_pictogram(name: str, det: Any, shift: float, *, fill_square: bool = False
                   ) -> tuple[int, tuple[float, float]]:
    """(size, centre) that puts pictogram `name` where `det` was: its ink box, unrotated,
    scaled to fit inside the old ink box (or, `fill_square`, the old pictogram's whole square)
    and centred on it (the seed's shift is sub-pixel)."""
    from spairs_assets.sources.pictograms import pictogram_mask

    def ink_box(n: str, size: int) -> tuple[float, float, float, float]:
        arr = np.asarray(pictogram_mask(n, size)) > 5
        ys, xs = np.nonzero(arr)
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)

    s = int(det.size)
    ox0, oy0, ox1, oy1 = (0.0, 0.0, float(s), float(s)) if fill_square else ink_box(det.name, s)
    nx0, ny0, nx1, ny1 = ink_box(name, s)
    scale = min((ox1 - ox0) / max(1.0, nx1 - nx0), (oy1 - oy0) / max(1.0, ny1 - ny0),
                1.0 if fill_square else 1.15)
    new_size = max(8, int(math.floor(s * scale)))
    # Centre offsets of the ink boxes from the square's centre, rotated like the detection.
    c_old = ((ox0 + ox1) / 2 - s / 2, (oy0 + oy1) / 2 - s / 2)
    k = new_size / s
    c_new = (((nx0 + nx1) / 2 - s / 2) * k, ((ny0 + ny1) / 2 - s / 2) * k)
    a = math.radians(det.angle_deg)
    dx, dy = c_old[0] - c_new[0], c_old[1] - c_new[1]
    # Counter-clockwise rotation in image coordinates (y down).
    rx = dx * math.cos(a) + dy * math.sin(a)
    ry = -dx * math.sin(a) + dy * math.cos(a)
    return new_size, (det.center[0] + rx + shift * 0.5, det.center[1] + ry)


def sign_size(phrase: str, image_size: tuple[int, int]) -> tuple[int, int]:
    """A small sign's (width, height) for `phrase` on an image of `image_size` (w, h)."""
    w, h = image_size
    sign_h = int(min(90, max(28, round(0.12 * min(w, h)))))
    fs = 0.5 * sign_h
    sign_w = int(round(len(phrase) * 0.72 * fs + 1.2 * fs))
    return min(sign_w, int(0.9 * w)), sign_h


_SIGN_PALETTES: tuple[tuple[RGB, RGB], ...] = (
    ((255, 255, 255), (0, 0, 0)), ((255, 214, 0), (0, 0, 0)), ((200, 16, 30), (255, 255, 255)),
    ((20, 20, 20), (255, 220, 0)), ((0, 70, 160), (255, 255, 255)),
)


def _render_sign(phrase: str, size: tuple[int, int], local_mean: np.ndarray, var: _Variation
                 ) -> tuple[Image.Image, RGB, RGB]:
    """An RGBA sign of exactly `size` with `phrase` fitted inside (one or two lines)."""
    w, h = size
    lum = float(np.dot(local_mean, [0.299, 0.587, 0.114]))
    # The plate contrasting most with what lies under it; the seed picks between the top two.
    ranked = sorted(_SIGN_PALETTES, key=lambda p: -abs(float(np.dot(p[0], [0.299, 0.587, 0.114]))
                                                       - lum))
    plate, ink_c = ranked[1 if var.inpaint == "ns" else 0]
    faces = available_faces()
    face = "DejaVuSans-Bold" if "DejaVuSans-Bold" in faces else (next(iter(faces), _DEFAULT_FACE))
    border = max(1, h // 14)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    d.rounded_rectangle((0, 0, w - 1, h - 1), radius=max(2, h // 8), fill=(*plate, 255),
                        outline=(*ink_c, 255), width=border)
    inner_w, inner_h = w - 4 * border - 4, h - 4 * border - 2
    words = phrase.split()
    layouts = [[phrase]]
    if len(words) >= 2:
        cut = max(range(1, len(words)), key=lambda i: -abs(len(" ".join(words[:i]))
                                                           - len(" ".join(words[i:]))))
        layouts.append([" ".join(words[:cut]), " ".join(words[cut:])])
    best = None
    for lines in layouts:
        size = inner_h // len(lines)
        while size > 6:
            font = _font(face, size)
            boxes = [font.getbbox(t) for t in lines]
            tw = max(b[2] - b[0] for b in boxes)
            th = sum(b[3] - b[1] for b in boxes) + (len(lines) - 1) * size // 5
            if tw <= inner_w and th <= inner_h:
                break
            size -= 1
        if best is None or size > best[0]:
            best = (size, lines)
    assert best is not None
    size, lines = best
    font = _font(face, size)
    boxes = [font.getbbox(t) for t in lines]
    total = sum(b[3] - b[1] for b in boxes) + (len(lines) - 1) * size // 5
    y = (h - total) / 2
    for t, b in zip(lines, boxes, strict=True):
        x = (w - (b[2] - b[0])) / 2 - b[0] + var.shift
        d.text((x, y - b[1]), t, font=font, fill=(*ink_c, 255))
        y += (b[3] - b[1]) + size // 5
    return layer, plate, ink_c


def from_config(config: SpairsConfig) -> ClassicalEditor:
    """The classical editor with `editing.classical` settings (cheap: nothing is loaded)."""
    c = config.editing.classical
    return ClassicalEditor(inpaint_radius=c.inpaint_radius, margin=c.margin)
