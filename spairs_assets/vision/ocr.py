"""OCR with RapidOCR (PP-OCRv4 ONNX models shipped inside the `rapidocr-onnxruntime` wheel).

Used by the grounded instruction generator (what does the sign say?), the classical editor
(where exactly is the word?) and, later, by the OCR judges (does the edited sign still say it?).

Why the settings differ from RapidOCR's defaults (measured on the 162 demo text seeds, about
420 px images, one core; RapidOCR defaults 0.28 s per image on an idle machine (0.61 s on a
loaded one), tuned 0.10 s (0.13 s); the one-word-differs word is read on 162/162 both ways):

* RapidOCR resizes every image so that its *shorter* side is at least 736 px
  (``limit_type: min``). Seeds are 384-1024 px, so that upscales the demo images about 1.8x
  (3.2x the pixels) for nothing: the text is already 24-46 px tall. We use PaddleOCR's own
  default instead, ``limit_type: max`` with 960 px: never upscale, only shrink very large
  images. This is most of the speed-up and reads the same words.
* The text-angle classifier (0/180 degrees) is off: seeds are upright photographs, and it
  cost about 0.05 s per image without changing a single read word on the demo seeds.
* One onnxruntime thread per engine: the pipeline runs one step process per core, and on a
  loaded 2-core machine two threads per engine were slower (contention) than one. Set
  ``SPAIRS_OCR_THREADS`` to change it (it does not change results, so it is not part of
  the settings fingerprint).

With ``return_word_box=True`` RapidOCR also returns one box per recognised character
(spaces included), derived from the CTC column positions: good to a few pixels, which is
enough to say which part of a line a word occupies; the editor refines it on the pixels.

Tightly spaced fonts make the recogniser drop spaces ("IWILLHURTYOU"), so lexicon words are
matched *inside* the recognised string (:func:`find_words`), not token by token.

:func:`analyse_word` then finds the matched word's glyphs on the pixels (rectified line,
ink by colour, runs of inked columns), with its colours, outline and the space a replacement
may use; the generator stores it in the instruction so the editor need not run OCR again.

cv2 and rapidocr are imported lazily: this module is imported by code that must load fast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DEFAULT_OCR_SETTINGS",
    "LineFrame",
    "OcrLine",
    "OcrSettings",
    "WordInk",
    "WordMatch",
    "analyse_word",
    "find_words",
    "line_frame",
    "normalise_word",
    "ocr_engine",
    "quad_box",
    "read_text",
    "rectify",
]

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]  # top-left, top-right, bottom-right, bottom-left


@dataclass(frozen=True)
class OcrSettings:
    """RapidOCR settings that change what is read (all part of :attr:`fingerprint`)."""

    det_limit_side_len: int = 960
    det_limit_type: str = "max"  # "max": shrink only images whose longer side exceeds the limit
    use_cls: bool = False
    text_score: float = 0.5  # recognition confidence below which RapidOCR drops a line
    box_thresh: float = 0.5  # detection box score threshold
    unclip_ratio: float = 1.6  # how much detected text boxes are grown

    def __post_init__(self) -> None:
        if self.det_limit_type not in ("max", "min"):
            raise ValueError(f"det_limit_type must be 'max' or 'min', got {self.det_limit_type!r}")
        if self.det_limit_side_len < 32:
            raise ValueError(f"det_limit_side_len must be >= 32, got {self.det_limit_side_len}")

    @property
    def fingerprint(self) -> str:
        """Short hash of the settings and the OCR package version: part of generator versions."""
        blob = json.dumps({**asdict(self), "rapidocr": _rapidocr_version()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def engine_kwargs(self, threads: int) -> dict[str, Any]:
        return {
            "det_limit_side_len": self.det_limit_side_len,
            "det_limit_type": self.det_limit_type,
            "det_box_thresh": self.box_thresh,
            "det_unclip_ratio": self.unclip_ratio,
            "text_score": self.text_score,
            "use_cls": self.use_cls,
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1,
        }


DEFAULT_OCR_SETTINGS = OcrSettings()


def _rapidocr_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rapidocr-onnxruntime")
    except PackageNotFoundError:  # pragma: no cover - the dependency is pinned
        return "missing"


# --------------------------------------------------------------------------------------------
# Engine: one per (process, settings), created lazily and shared by threads.
# --------------------------------------------------------------------------------------------

_ENGINES: dict[tuple[int, OcrSettings], Any] = {}
_ENGINE_LOCKS: dict[tuple[int, OcrSettings], threading.Lock] = {}
_CREATE_LOCK = threading.Lock()


def _threads() -> int:
    raw = os.environ.get("SPAIRS_OCR_THREADS", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        raise ValueError(f"SPAIRS_OCR_THREADS must be an integer, got {raw!r}") from None


def ocr_engine(settings: OcrSettings = DEFAULT_OCR_SETTINGS) -> tuple[Any, threading.Lock]:
    """The process's RapidOCR engine for `settings` and the lock that serialises its calls.

    Keyed by process id as well, so a forked worker builds its own onnxruntime sessions
    instead of using its parent's. RapidOCR's ``__call__`` mutates the engine (thresholds),
    so calls are serialised by the returned lock; the engine loads in about 0.3 s once.
    """
    key = (os.getpid(), settings)
    engine = _ENGINES.get(key)
    if engine is not None:
        return engine, _ENGINE_LOCKS[key]
    with _CREATE_LOCK:
        if key not in _ENGINES:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:  # pragma: no cover - pinned dependency
                raise RuntimeError(
                    "OCR needs `rapidocr-onnxruntime` (install it with --no-deps plus pyclipper "
                    "and shapely, to keep opencv-python-headless)") from exc
            _ENGINE_LOCKS[key] = threading.Lock()
            _ENGINES[key] = RapidOCR(**settings.engine_kwargs(_threads()))
        return _ENGINES[key], _ENGINE_LOCKS[key]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _quad(points: Sequence[Sequence[float]]) -> Quad:
    pts = [(float(p[0]), float(p[1])) for p in points]
    if len(pts) != 4:
        raise ValueError(f"a quadrilateral needs 4 points, got {len(pts)}")
    return (pts[0], pts[1], pts[2], pts[3])


def quad_box(quad: Sequence[Sequence[float]]) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1), end exclusive, that covers a quadrilateral."""
    xs = [p[0] for p in quad]
    ys = [p[1] for p in quad]
    return (math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)) + 1,
            math.ceil(max(ys)) + 1)


@dataclass(frozen=True)
class OcrLine:
    """One recognised text line.

    ``quad`` is the detected box as four (x, y) points, clockwise from the top-left of the
    reading direction. ``chars`` and ``char_quads`` align one to one with ``text`` (spaces
    included); ``char_boxes_estimated`` is True where RapidOCR gave no usable character boxes
    and they were spread evenly along the line instead.
    """

    text: str
    confidence: float
    quad: Quad
    char_quads: tuple[Quad, ...] = ()
    char_boxes_estimated: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        return quad_box(self.quad)

    @property
    def angle_deg(self) -> float:
        """Angle of the reading direction, counter-clockwise positive (PIL's `rotate` sense)."""
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.quad
        dx = (x1 - x0) + (x2 - x3)
        dy = (y1 - y0) + (y2 - y3)
        return -math.degrees(math.atan2(dy, dx))

    @property
    def height(self) -> float:
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.quad
        return (math.hypot(x3 - x0, y3 - y0) + math.hypot(x2 - x1, y2 - y1)) / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": round(float(self.confidence), 4),
            "quad": [[round(x, 1), round(y, 1)] for x, y in self.quad],
            "char_quads": [[[round(x, 1), round(y, 1)] for x, y in q] for q in self.char_quads],
            "char_boxes_estimated": self.char_boxes_estimated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OcrLine:
        return cls(text=str(data["text"]), confidence=float(data["confidence"]),
                   quad=_quad(data["quad"]),
                   char_quads=tuple(_quad(q) for q in data.get("char_quads") or ()),
                   char_boxes_estimated=bool(data.get("char_boxes_estimated", False)))


def _spread_char_quads(quad: Quad, n: int) -> tuple[Quad, ...]:
    """Split a line quad into `n` equal cells along its reading direction (a fallback)."""
    tl, tr, br, bl = (np.array(p) for p in quad)
    out = []
    for i in range(n):
        a, b = i / n, (i + 1) / n
        out.append(_quad([tl + (tr - tl) * a, tl + (tr - tl) * b, bl + (br - bl) * b,
                          bl + (br - bl) * a]))
    return tuple(out)


def _to_line(raw: Sequence[Any]) -> OcrLine:
    quad = _quad(raw[0])
    text = str(raw[1])
    conf = float(raw[2])
    char_quads: tuple[Quad, ...] = ()
    estimated = False
    if len(raw) >= 5 and raw[3] and raw[4] is not None:
        chars = [str(c) for c in raw[4]]
        boxes = raw[3]
        if "".join(chars) == text and len(boxes) == len(chars):
            char_quads = tuple(_quad(b) for b in boxes)
    if not char_quads and text:
        char_quads, estimated = _spread_char_quads(quad, len(text)), True
    return OcrLine(text=text, confidence=conf, quad=quad, char_quads=char_quads,
                   char_boxes_estimated=estimated)


def _as_bgr(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        rgb = np.asarray(image.convert("RGB"))
    else:
        rgb = np.asarray(image)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"OCR needs an RGB uint8 image, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def read_text(image: Image.Image | np.ndarray, *, settings: OcrSettings = DEFAULT_OCR_SETTINGS,
              min_confidence: float = 0.0) -> list[OcrLine]:
    """All text lines in `image` (PIL image or RGB uint8 array), top to bottom.

    Lines below `min_confidence` are dropped. An image without text gives ``[]``.
    """
    bgr = _as_bgr(image)
    if min(bgr.shape[:2]) < 8:
        return []
    engine, lock = ocr_engine(settings)
    with lock:
        result, _ = engine(bgr, use_cls=settings.use_cls, return_word_box=True,
                           box_thresh=settings.box_thresh, unclip_ratio=settings.unclip_ratio,
                           text_score=settings.text_score)
    lines = [_to_line(raw) for raw in (result or [])]
    return [ln for ln in lines if ln.text.strip() and ln.confidence >= min_confidence]


# --------------------------------------------------------------------------------------------
# Finding lexicon words in recognised lines
# --------------------------------------------------------------------------------------------

# Recogniser confusions between digits/symbols and capital letters, folded before matching.
_CONFUSABLE = str.maketrans({"0": "O", "1": "I", "5": "S", "|": "I", "$": "S", "@": "A", "€": "E"})


def normalise_word(text: str) -> str:
    """Matching key of a word or phrase: upper case, confusables folded, only A-Z and 0-9.

    Spaces are removed on purpose: the recogniser drops them between tightly set words.
    """
    folded = text.upper().translate(_CONFUSABLE)
    return "".join(c for c in folded if c.isascii() and c.isalnum())


def _key_with_index(text: str) -> tuple[str, list[int]]:
    key, index = [], []
    for i, c in enumerate(text):
        k = normalise_word(c)
        if k:
            key.append(k)
            index.append(i)
    return "".join(key), index


@dataclass(frozen=True)
class WordMatch:
    """Where a lexicon word was found inside an OCR line.

    ``start``/``end`` index ``line.text`` (end exclusive); ``text`` is the substring as read.
    ``left_boundary``/``right_boundary`` say whether the match starts/ends at a word boundary
    of the recognised text (a space, punctuation or the line's end). A match without a
    boundary is either a word whose spaces were dropped ("IWILLHURTYOU") or a part of a
    longer word ("WHATEVER" contains "HATE"): callers decide, the editor checks the pixels.
    ``edits`` is 0 for an exact match, 1 for a one-character OCR error on a long word.
    """

    word: str
    text: str
    line_index: int
    line: OcrLine
    start: int
    end: int
    edits: int = 0
    left_boundary: bool = True
    right_boundary: bool = True
    char_quads: tuple[Quad, ...] = field(default=(), repr=False)

    @property
    def at_boundaries(self) -> bool:
        return self.left_boundary and self.right_boundary

    @property
    def quad(self) -> Quad:
        """The matched characters' extent as one quadrilateral (first and last char boxes)."""
        first, last = self.char_quads[0], self.char_quads[-1]
        return (first[0], last[1], last[2], first[3])

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1), end exclusive, of the matched characters."""
        pts = [p for q in self.char_quads for p in q]
        return quad_box(pts)

    @property
    def confidence(self) -> float:
        return self.line.confidence

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, "text": self.text, "line_index": self.line_index,
                "start": self.start, "end": self.end, "edits": self.edits,
                "left_boundary": self.left_boundary, "right_boundary": self.right_boundary,
                "box": list(self.box), "line": self.line.to_dict()}


def _fuzzy_find(word: str, key: str, max_edits: int) -> list[tuple[int, int, int]]:
    """Substrings of `key` within `max_edits` Levenshtein edits of `word`: (start, end, edits).

    Semi-global alignment (free start and end in `key`); returns the best end positions.
    """
    m, n = len(word), len(key)
    if m == 0 or n == 0:
        return []
    # dist[i][j]: fewest edits aligning word[:i] to a substring of key ending at j (the start is
    # free, so dist[0][j] = 0); start[i][j]: where in key that best alignment begins.
    dist = [[0] * (n + 1) for _ in range(m + 1)]
    start = [list(range(n + 1))] + [[0] * (n + 1) for _ in range(m)]
    for i in range(1, m + 1):
        dist[i][0] = i
        for j in range(1, n + 1):
            options = ((dist[i - 1][j - 1] + (word[i - 1] != key[j - 1]), start[i - 1][j - 1]),
                       (dist[i - 1][j] + 1, start[i - 1][j]),
                       (dist[i][j - 1] + 1, start[i][j - 1]))
            dist[i][j], start[i][j] = min(options, key=lambda o: o[0])
    cols_dist, cols_start = dist, start
    out = []
    for j in range(1, n + 1):
        d = cols_dist[m][j]
        if d <= max_edits and (j == n or cols_dist[m][j + 1] >= d):
            s = cols_start[m][j]
            if j - s >= max(1, m - max_edits):
                out.append((s, j, d))
    return out


def _overlaps(a: WordMatch, b: WordMatch) -> bool:
    return a.line_index == b.line_index and a.start < b.end and b.start < a.end


def find_words(lines: Sequence[OcrLine], words: Iterable[str], *,
               fuzzy_min_length: int = 6) -> list[WordMatch]:
    """Occurrences of `words` (words or short phrases) inside the recognised `lines`.

    Matching ignores case, spaces and punctuation, so "IWILLHURTYOU" contains "HURT" and
    "STRIP CLUB" matches "STRIPCLUB". Words of at least `fuzzy_min_length` letters also match
    with one wrong, missing or extra character (a common recognition error), reported as
    ``edits=1``. Where matches overlap, an exact match beats a fuzzy one, then the longer one
    wins ("HATES" beats "HATE"), then the one at word boundaries. Results are in reading
    order.
    """
    keyed = [(w, normalise_word(w)) for w in words]
    keyed = [(w, k) for w, k in keyed if k]
    found: list[WordMatch] = []
    for li, line in enumerate(lines):
        key, index = _key_with_index(line.text)
        if not key:
            continue
        for word, wkey in keyed:
            spans: list[tuple[int, int, int]] = []
            pos = key.find(wkey)
            while pos >= 0:
                spans.append((pos, pos + len(wkey), 0))
                pos = key.find(wkey, pos + 1)
            if not spans and fuzzy_min_length and len(wkey) >= fuzzy_min_length:
                spans = _fuzzy_find(wkey, key, 1)
            for ks, ke, edits in spans:
                start, end = index[ks], index[ke - 1] + 1
                left = start == 0 or not line.text[start - 1].isalnum()
                right = end == len(line.text) or not line.text[end].isalnum()
                quads = line.char_quads[start:end] if len(line.char_quads) == len(line.text) \
                    else ()
                if not quads:
                    quads = _spread_char_quads(line.quad, len(line.text))[start:end]
                found.append(WordMatch(word=word, text=line.text[start:end], line_index=li,
                                       line=line, start=start, end=end, edits=edits,
                                       left_boundary=left, right_boundary=right,
                                       char_quads=tuple(quads)))
    found.sort(key=lambda m: (m.edits, -(m.end - m.start), not m.at_boundaries, m.line_index,
                              m.start, m.word))
    kept: list[WordMatch] = []
    for m in found:
        if not any(_overlaps(m, k) for k in kept):
            kept.append(m)
    kept.sort(key=lambda m: (m.line_index, m.start, m.word))
    return kept


# --------------------------------------------------------------------------------------------
# Where exactly the glyphs of a matched word are (pixels, not CTC columns)
# --------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class LineFrame:
    """A rectified frame for one text line: ``s`` along the reading direction, ``t`` across.

    Image point = ``origin + s * u + t * v``; the rectified crop is ``width`` x ``height``
    pixels with (0, 0) at ``origin``. ``band`` is the OCR box's extent in ``t``.
    """

    origin: tuple[float, float]
    u: tuple[float, float]
    v: tuple[float, float]
    width: int
    height: int
    band: tuple[float, float]

    @property
    def angle_deg(self) -> float:
        """Counter-clockwise rotation of the text (PIL's `rotate` sense)."""
        return -math.degrees(math.atan2(self.u[1], self.u[0]))

    def matrix(self) -> np.ndarray:
        """2x3 affine map from rectified (s, t) to image (x, y)."""
        return np.array([[self.u[0], self.v[0], self.origin[0]],
                         [self.u[1], self.v[1], self.origin[1]]], dtype=np.float64)

    def to_image(self, s: float, t: float) -> tuple[float, float]:
        return (self.origin[0] + s * self.u[0] + t * self.v[0],
                self.origin[1] + s * self.u[1] + t * self.v[1])

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        dx, dy = x - self.origin[0], y - self.origin[1]
        return (dx * self.u[0] + dy * self.u[1], dx * self.v[0] + dy * self.v[1])

    def quad(self, s0: float, t0: float, s1: float, t1: float) -> Quad:
        """Image quadrilateral of the rectified rectangle [s0, s1] x [t0, t1]."""
        return (self.to_image(s0, t0), self.to_image(s1, t0), self.to_image(s1, t1),
                self.to_image(s0, t1))


@dataclass(frozen=True)
class WordInk:
    """Pixel analysis of one word on a text line (rectified coordinates, see `LineFrame`).

    ``s0..s1`` x ``t0..t1`` is the word's ink (cap top to baseline for capitals);
    ``avail_s0..avail_s1`` is where a replacement may be drawn without touching the
    neighbouring words or leaving the plate the text sits on. ``left_boundary`` /
    ``right_boundary`` say whether the pixels show a word gap (or the line's end) there, which
    tells a dropped space ("IWILLHURTYOU") from a word inside a longer word ("WHATEVER").
    ``fill`` is the text colour, ``outline``/``outline_width`` an outline stroke if the text
    has one (text straight on a photo), ``background`` the colour around the text and
    ``plate`` whether that background is a flat plate (a sign) rather than a photo.
    ``threshold`` is the colour distance from the background above which a pixel is ink.
    """

    frame: LineFrame
    s0: float
    s1: float
    t0: float
    t1: float
    line_s0: float
    line_s1: float
    avail_s0: float
    avail_s1: float
    left_gap: float | None
    right_gap: float | None
    letter_gap: float
    left_boundary: bool
    right_boundary: bool
    fill: RGB
    outline: RGB | None
    outline_width: float
    background: RGB
    plate: bool
    stem_width: float
    threshold: float

    @property
    def cap_height(self) -> float:
        return self.t1 - self.t0

    @property
    def quad(self) -> Quad:
        return self.frame.quad(self.s0, self.t0, self.s1, self.t1)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return quad_box(self.quad)

    @property
    def at_boundaries(self) -> bool:
        return self.left_boundary and self.right_boundary

    def to_dict(self) -> dict[str, Any]:
        f = self.frame
        return {
            "frame": {"origin": [round(c, 3) for c in f.origin], "u": [round(c, 6) for c in f.u],
                      "v": [round(c, 6) for c in f.v], "width": f.width, "height": f.height,
                      "band": [round(c, 2) for c in f.band]},
            **{k: (round(getattr(self, k), 2) if getattr(self, k) is not None else None)
               for k in ("s0", "s1", "t0", "t1", "line_s0", "line_s1", "avail_s0", "avail_s1",
                         "left_gap", "right_gap", "letter_gap", "outline_width", "stem_width",
                         "threshold")},
            "left_boundary": self.left_boundary, "right_boundary": self.right_boundary,
            "fill": list(self.fill), "outline": list(self.outline) if self.outline else None,
            "background": list(self.background), "plate": self.plate,
            "box": list(self.box), "angle_deg": round(f.angle_deg, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordInk:
        fd = data["frame"]
        frame = LineFrame(origin=tuple(fd["origin"]), u=tuple(fd["u"]),  # type: ignore[arg-type]
                          v=tuple(fd["v"]), width=int(fd["width"]),  # type: ignore[arg-type]
                          height=int(fd["height"]), band=tuple(fd["band"]))  # type: ignore[arg-type]
        return cls(
            frame=frame, **{k: data[k] for k in (
                "s0", "s1", "t0", "t1", "line_s0", "line_s1", "avail_s0", "avail_s1",
                "left_gap", "right_gap", "letter_gap", "outline_width", "stem_width",
                "threshold", "left_boundary", "right_boundary", "plate")},
            fill=tuple(data["fill"]),  # type: ignore[arg-type]
            outline=tuple(data["outline"]) if data.get("outline") else None,  # type: ignore[arg-type]
            background=tuple(data["background"]))  # type: ignore[arg-type]


def line_frame(line: OcrLine, image_shape: tuple[int, int], *, pad_along: float = 1.5,
               pad_across: float = 0.35) -> LineFrame:
    """The rectified frame of `line`, padded by `pad_along` / `pad_across` line heights."""
    tl, tr, br, bl = (np.array(p, dtype=np.float64) for p in line.quad)
    u = (tr - tl) + (br - bl)
    norm = float(np.hypot(*u))
    u = np.array([1.0, 0.0]) if norm < 1e-6 else u / norm
    v = np.array([-u[1], u[0]])
    pts = np.array([tl, tr, br, bl])
    s = (pts - tl) @ u
    t = (pts - tl) @ v
    height = max(4.0, float(t.max() - t.min()))
    ps, pt = pad_along * height, pad_across * height
    s_min, t_min = float(s.min()) - ps, float(t.min()) - pt
    origin = tl + s_min * u + t_min * v
    width = int(math.ceil(float(s.max() - s.min()) + 2 * ps))
    del image_shape  # the crop may extend past the image: those pixels are marked invalid
    return LineFrame(origin=(float(origin[0]), float(origin[1])), u=(float(u[0]), float(u[1])),
                     v=(float(v[0]), float(v[1])), width=max(8, width),
                     height=max(8, int(math.ceil(height + 2 * pt))),
                     band=(pt, pt + height))


def rectify(rgb: np.ndarray, frame: LineFrame) -> tuple[np.ndarray, np.ndarray]:
    """The frame's crop (float32 RGB) and a mask of the pixels that lie inside the image."""
    import cv2

    m = frame.matrix().astype(np.float32)
    size = (frame.width, frame.height)
    crop = cv2.warpAffine(rgb.astype(np.float32), m, size,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpAffine(np.ones(rgb.shape[:2], np.uint8), m, size,
                           flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, valid.astype(bool)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of 1-D values (0..~450 colour distances)."""
    if values.size == 0:
        return 0.0
    hist, edges = np.histogram(values, bins=128, range=(0.0, float(values.max()) + 1e-6))
    p = hist.astype(np.float64) / max(1, hist.sum())
    omega = np.cumsum(p)
    centers = (edges[:-1] + edges[1:]) / 2
    mu = np.cumsum(p * centers)
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b = (mu_t * omega - mu) ** 2 / (omega * (1 - omega))
    sigma_b = np.nan_to_num(sigma_b)
    return float(edges[int(np.argmax(sigma_b)) + 1])


def _kmeans(px: np.ndarray, k: int, iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means of colours (farthest-point initialisation from the median)."""
    centres = [np.median(px, axis=0)]
    for _ in range(1, k):
        d = np.min([np.linalg.norm(px - c, axis=1) for c in centres], axis=0)
        centres.append(px[int(np.argmax(d))])
    c = np.array(centres, dtype=np.float32)
    labels = np.zeros(len(px), dtype=np.int32)
    for _ in range(iters):
        d = np.linalg.norm(px[:, None, :] - c[None, :, :], axis=2)
        labels = np.argmin(d, axis=1).astype(np.int32)
        new = np.array([px[labels == j].mean(axis=0) if (labels == j).any() else c[j]
                        for j in range(k)], dtype=np.float32)
        if np.allclose(new, c, atol=0.5):
            break
        c = new
    return c, labels


def _rgb(c: np.ndarray | Sequence[float]) -> RGB:
    return (int(round(float(c[0]))), int(round(float(c[1]))), int(round(float(c[2]))))


def _ink_on_plate(crop: np.ndarray, valid: np.ndarray, bg: np.ndarray, rows: slice,
                  cols: slice) -> tuple[np.ndarray, float]:
    """Ink on a flat plate: colour distance from the plate above Otsu's threshold."""
    dist = np.linalg.norm(crop - bg, axis=2)
    region = dist[rows, cols][valid[rows, cols]]
    thr = max(30.0, _otsu(region))
    return (dist > thr) & valid, thr


def _is_mix(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Is colour `c` an antialiasing mix of `a` and `b` (on the segment between them)?"""
    seg = b - a
    alpha = float(np.dot(c - a, seg) / max(1e-6, float(np.dot(seg, seg))))
    resid = float(np.linalg.norm(c - a - alpha * seg))
    return 0.1 < alpha < 0.9 and resid < 30.0


def _ink_on_photo(crop: np.ndarray, valid: np.ndarray, rows: slice, cols: slice,
                  border_px: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, float] | None:
    """Ink of text drawn straight on a photograph, usually with an outline.

    The word's pixels are split into four colour clusters (a photo needs two or three). The
    fill is a cluster that is rare on the OCR box's edge rows (they lie outside the glyphs),
    and the outline, if any, the cluster that covers most of a 2-pixel ring around the fill:
    every (fill, outline) pair is scored by that coverage and the best kept. Returns (ink
    mask, fill colour, outline colour or None, colour around the text, outline width), or
    None when no cluster stands out.
    """
    import cv2

    region = crop[rows, cols]
    ok = valid[rows, cols]
    px = region[ok]
    if len(px) < 40:
        return None
    step = max(1, len(px) // 4000)
    k = 4
    centres, _ = _kmeans(px[::step], k)
    labels = np.full(region.shape[:2], -1, np.int32)
    d = np.linalg.norm(region[:, :, None, :] - centres[None, None], axis=3)
    labels[ok] = np.argmin(d[ok], axis=1)
    bd = np.linalg.norm(border_px[:, None, :] - centres[None], axis=2).argmin(axis=1)
    border_freq = np.bincount(bd, minlength=k) / max(1, len(bd))
    counts = np.bincount(labels[ok], minlength=k) / max(1, int(ok.sum()))
    kernel = np.ones((5, 5), np.uint8)
    best: tuple[float, int, int | None] | None = None
    for a in range(k):
        m = labels == a
        if counts[a] < 0.04 or border_freq[a] > 0.12:
            continue  # the fill is not on the OCR box's edge rows, which lie outside the glyphs
        ring = cv2.dilate(m.astype(np.uint8), kernel).astype(bool) & ~m & ok
        if not ring.any():
            continue
        cover = np.bincount(labels[ring], minlength=k) / ring.sum()
        for b in range(k):
            if b == a:
                continue
            if _is_mix(centres[b], centres[a], np.median(border_px, axis=0)):
                continue  # an antialiasing fringe, not an outline
            # Lettering is made to be read: a fill/outline pair contrasts strongly.
            contrast = min(1.0, float(np.linalg.norm(centres[a] - centres[b])) / 150.0)
            score = float(cover[b]) * (1.0 - float(border_freq[a])) * contrast
            if best is None or score > best[0]:
                best = (score, a, b)
        # Without an outline: a fill that stands out from what surrounds it.
        score = 0.5 * (1.0 - float(border_freq[a])) * float(
            np.linalg.norm(centres[a] - np.median(border_px, axis=0)) > 80)
        if best is None or score > best[0]:
            best = (score, a, None)
    if best is None or best[0] < 0.3:
        return None
    _, fa, fb = best
    fill_m = labels == fa
    fill_c = np.median(region[fill_m], axis=0)
    outline_c = None
    if fb is not None:
        ring = cv2.dilate(fill_m.astype(np.uint8), kernel).astype(bool) & ~fill_m
        sel = ring & (labels == fb)
        outline_c = np.median(region[sel], axis=0) if sel.any() else centres[fb]
    around = np.median(border_px, axis=0)
    # Ink: near the fill colour, plus the outline: outline-coloured pixels within the ring
    # where that colour dominates. The ring's width is measured ring by ring outwards from the
    # fill (a photo with patches of the outline's colour must not widen it).
    tol_f = max(30.0, 0.4 * float(np.linalg.norm(fill_c - (outline_c if outline_c is not None
                                                               else around))))
    ink = (np.linalg.norm(crop - fill_c, axis=2) <= tol_f) & valid
    width = 0.0
    if outline_c is not None:
        tol_o = max(30.0, 0.4 * float(np.linalg.norm(outline_c - fill_c)))
        is_out = (np.linalg.norm(crop - outline_c, axis=2) <= tol_o) & valid
        fill_core = np.zeros_like(ink)
        fill_core[rows, cols] = ink[rows, cols]
        dist = cv2.distanceTransform((~fill_core).astype(np.uint8), cv2.DIST_L2, 3)
        window = np.zeros_like(ink)
        window[rows, cols] = True
        # An outline is a thin rim: at most about a tenth of the line's height.
        d_max = max(2, int(round(0.1 * (rows.stop - rows.start))))
        for d in range(1, d_max + 1):
            ring = window & (dist > d - 1) & (dist <= d)
            if not ring.any() or float(is_out[ring].mean()) < 0.5:
                break
            width = float(d)
        if width == 0.0:
            outline_c = None
        else:
            # Letters are outlined all round; specks of the fill's colour in the photo are not.
            n, lab, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), 8)
            rim = cv2.dilate(lab.astype(np.float32), np.ones((3, 3), np.uint8))
            keep = np.zeros(n, bool)
            edge = (rim > 0) & (lab == 0) & valid  # the image's border is no evidence
            edge_lab = rim[edge].astype(np.int32)
            edge_out = is_out[edge]
            tot = np.bincount(edge_lab, minlength=n).astype(np.float64)
            hit = np.bincount(edge_lab, weights=edge_out.astype(np.float64), minlength=n)
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(tot > 0, hit / tot, 0.0)
            keep[1:] = (frac[1:] >= 0.6) | (tot[1:] == 0)
            if keep[1:].any():
                ink = keep[lab] & ink
            ink |= is_out & (dist <= width + 0.5) & cv2.dilate(
                ink.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(width) + 1
            ).astype(bool)
    return ink, fill_c, outline_c, around, width


def _ink_rows(ink: np.ndarray, b0: int, b1: int) -> tuple[float, float]:
    """Top and bottom of the lettering: the common top and bottom of the inked columns.

    Capitals share a cap line and a baseline, so the most frequent column top and bottom
    (extended by 2 px for the overshoot of round letters) give them, while a highlight of the
    text's colour in the photo, touching a few columns, does not move them.
    """
    cols = np.flatnonzero(ink.any(axis=0))
    if len(cols) == 0:
        return float(b0), float(b1)
    sub = ink[:, cols]
    tops = np.argmax(sub, axis=0)
    bottoms = sub.shape[0] - np.argmax(sub[::-1], axis=0)

    def line_of(values: np.ndarray, low: bool) -> float:
        hist = np.bincount(values, minlength=ink.shape[0] + 1).astype(np.float64)
        smooth = np.convolve(hist, np.ones(3), mode="same")
        mode = int(np.argmax(smooth))
        near = values[np.abs(values - mode) <= 2]
        return float(near.min() if low else near.max())

    return line_of(tops, True), line_of(bottoms, False)


def analyse_word(image: Image.Image | np.ndarray, line: OcrLine, start: int, end: int
                 ) -> WordInk:
    """Locate the glyphs of ``line.text[start:end]`` on the pixels and measure them.

    Steps: rectify the line (so the text is horizontal) and read the background at the OCR
    box's top and bottom edge rows (the detector grows its boxes beyond the glyphs). On a
    flat plate (a sign) every pixel whose colour distance from the plate exceeds Otsu's
    threshold is ink; on a photograph the word's pixels are split into three colour clusters
    (photo, fill, outline; see `_ink_on_photo`). The line is then cut into runs of inked
    columns (letters, or words where letters touch) and the runs under the matched characters'
    boxes are the word. The gaps to the neighbouring runs, compared with the gaps between
    letters, decide whether the match is a whole word.
    """
    import cv2

    rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    if not 0 <= start < end <= len(line.text):
        raise ValueError(f"character span {start}:{end} outside line {line.text!r}")
    frame = line_frame(line, rgb.shape[:2])
    crop, valid = rectify(rgb, frame)
    b0, b1 = int(round(frame.band[0])), int(round(frame.band[1]))
    b1 = max(b1, b0 + 4)
    # Characters of the match, in the frame.
    quads = line.char_quads if len(line.char_quads) == len(line.text) \
        else _spread_char_quads(line.quad, len(line.text))
    centres = [frame.to_frame(sum(p[0] for p in q) / 4, sum(p[1] for p in q) / 4)[0]
               for q in quads]
    widths = [abs(frame.to_frame(*q[1])[0] - frame.to_frame(*q[0])[0]) for q in quads]
    char_w = float(np.median(widths)) if widths else (b1 - b0) * 0.6
    line_c0, line_c1 = centres[0] - char_w / 2, centres[-1] + char_w / 2
    c_first, c_last = centres[start], centres[end - 1]

    # Background: the OCR box's top and bottom edge rows, over the line's own span.
    ls0, ls1 = max(0, int(line_c0)), min(frame.width, int(math.ceil(line_c1)))
    edge_rows = max(1, (b1 - b0) // 8)
    border = np.concatenate([crop[b0:b0 + edge_rows, ls0:ls1].reshape(-1, 3),
                             crop[b1 - edge_rows:b1, ls0:ls1].reshape(-1, 3)])
    border_valid = np.concatenate([valid[b0:b0 + edge_rows, ls0:ls1].ravel(),
                                   valid[b1 - edge_rows:b1, ls0:ls1].ravel()])
    border = border[border_valid] if border_valid.any() else border
    # A plate (sign, label, banner) is one colour covering most of the line's box; text on a
    # photograph has no such colour. The plate colour is the largest colour cluster.
    band_px = crop[b0:b1, ls0:ls1][valid[b0:b1, ls0:ls1]]
    bg = np.median(border, axis=0) if len(border) else np.float32([255, 255, 255])
    plate_frac = 0.0
    if len(band_px) >= 40:
        sample = band_px[::max(1, len(band_px) // 3000)]
        centres, labels_k = _kmeans(sample, 3)
        big = int(np.bincount(labels_k, minlength=3).argmax())
        cand = np.median(sample[labels_k == big], axis=0)
        plate_frac = float((np.linalg.norm(band_px - cand, axis=1) <= 25.0).mean())
        if plate_frac >= 0.3:
            bg = cand
    rows = slice(b0, b1)
    wc0 = max(0, int(c_first - char_w))
    wc1 = min(frame.width, int(math.ceil(c_last + char_w)))
    outline: np.ndarray | None = None
    photo = None
    if plate_frac < 0.3:  # the text sits on a photograph, not on a flat plate
        photo = _ink_on_photo(crop, valid, rows, slice(wc0, wc1), border)
    photo_outline_w = 0.0
    if photo is not None:
        ink, fill, outline, bg, photo_outline_w = photo
        thr = float(np.percentile(np.linalg.norm(crop[ink] - bg, axis=1), 5)) if ink.any() else 30.0
    else:
        ink, thr = _ink_on_plate(crop, valid, bg, rows, slice(ls0, ls1))
        fill = None
    ink[:b0] = False
    ink[b1:] = False
    # Rows inked across nearly the whole line are a sign's border rules, not lettering.
    if ls1 > ls0:
        ink[ink[:, ls0:ls1].mean(axis=1) > 0.75] = False
    # Drop specks (noise in a photo) that are much smaller than a glyph.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    min_area = max(3, int(0.004 * (b1 - b0) ** 2))
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
    small = small[small > 0]
    if len(small):
        ink[np.isin(labels, small)] = False

    # A column is inked when a few percent of the band's rows are: specks of a photo that
    # survive the filter above do not bridge the gap between two words.
    col_count = ink.sum(axis=0)
    cols = col_count >= max(1, round(0.06 * (b1 - b0)))
    runs = [r for r in _runs(cols) if r[1] > line_c0 - char_w and r[0] < line_c1 + char_w]
    lo, hi = c_first - 0.6 * char_w, c_last + 0.6 * char_w
    inside = [r for r in runs if lo <= (r[0] + r[1]) / 2 <= hi]
    span = (c_last - c_first) + char_w
    if inside and (inside[-1][1] - inside[0][0]) <= 1.6 * span + char_w:
        s0, s1 = float(inside[0][0]), float(inside[-1][1])
    else:
        # Nothing inked under the characters, or runs that swallow the neighbours (text on a
        # busy photo): trust the character boxes, cut at the weakest column near each end.
        def weakest(a: float, b: float) -> float:
            a_i, b_i = max(0, int(a)), min(frame.width, int(math.ceil(b)))
            if b_i <= a_i:
                return (a + b) / 2
            return float(a_i + int(np.argmin(col_count[a_i:b_i])))

        s0 = weakest(c_first - 1.0 * char_w, c_first - 0.3 * char_w)
        s1 = weakest(c_last + 0.3 * char_w, c_last + 1.0 * char_w) + 1
        inside = []
    before = [r for r in runs if r[1] <= s0]
    after = [r for r in runs if r[0] >= s1]
    left_gap = s0 - before[-1][1] if before else None
    right_gap = after[0][0] - s1 if after else None
    gaps = [b[0] - a[1] for a, b in zip(runs, runs[1:], strict=False)]
    inner = [b[0] - a[1] for a, b in zip(inside, inside[1:], strict=False)]
    letter_gap = float(np.median(inner)) if inner else (float(np.median(gaps)) if gaps else 0.0)

    i0, i1 = max(0, int(s0)), min(frame.width, int(math.ceil(s1)))
    t0, t1 = _ink_rows(ink[:, i0:i1], b0, b1)
    cap = max(1.0, t1 - t0)
    # A word gap is clearly wider than the gaps between letters (which an outline narrows).
    letterish = [g for g in gaps if g < 0.3 * cap]
    line_letter = float(np.median(letterish)) if letterish else letter_gap
    word_gap = max(0.18 * cap, min(0.3 * cap, 1.6 * line_letter + 1.0))
    left_boundary = left_gap is None or left_gap >= word_gap
    right_boundary = right_gap is None or right_gap >= word_gap

    word_mask = np.zeros_like(ink)
    word_mask[:, i0:i1] = ink[:, i0:i1]
    # Close 1-px seams (between a fill and its outline, antialiased pixels can look like the
    # plate), so depths measure whole strokes.
    word_mask = cv2.morphologyEx(word_mask.astype(np.uint8), cv2.MORPH_CLOSE,
                                 np.ones((3, 3), np.uint8)).astype(bool)
    depth = cv2.distanceTransform(word_mask.astype(np.uint8), cv2.DIST_L2, 3)
    stem = float(2 * np.percentile(depth[depth > 0], 90)) if (depth > 0).any() else 1.0
    outline_w = 0.0
    if fill is None:
        # On a plate: the fill is the colour deepest inside the strokes; a second colour at
        # the strokes' edges that is not a mix of fill and plate would be an outline.
        raw = np.zeros_like(ink)
        raw[:, i0:i1] = ink[:, i0:i1]
        px = crop[raw]
        fill = np.median(px, axis=0) if len(px) else bg
        if len(px) >= 30:
            # Two ink colours? The one deeper inside the strokes is the fill; the other is an
            # outline unless it is a mix of fill and plate (antialiasing) or a small fringe.
            cents, lab = _kmeans(px, 2)
            depth_px = depth[raw]
            parts = [(float(depth_px[lab == j].mean()) if (lab == j).any() else 0.0,
                      float((lab == j).mean()), np.median(px[lab == j], axis=0)
                      if (lab == j).any() else cents[j]) for j in range(2)]
            parts.sort(key=lambda p: -p[0])
            inner_c, outer_c = parts[0][2], parts[1][2]
            fill = inner_c
            contrast = max(40.0, float(np.linalg.norm(inner_c - bg)))
            if (parts[1][1] >= 0.15 and float(np.linalg.norm(outer_c - inner_c)) > 0.5 * contrast
                    and not _is_mix(outer_c, inner_c, bg)):
                outline = outer_c
            elif float(np.linalg.norm(outer_c - bg)) > float(np.linalg.norm(inner_c - bg)) \
                    and _is_mix(inner_c, outer_c, bg):
                fill = outer_c  # thin strokes: the "deep" cluster was the antialiased mix
    if outline is not None and photo_outline_w > 0:
        outline_w = photo_outline_w
    elif outline is not None:
        # Outline width: the outline-coloured share of the word's ink, spread over its edge.
        near_o = np.linalg.norm(crop - outline, axis=2) < \
            0.5 * float(np.linalg.norm(outline - fill))
        perimeter = float((word_mask & (depth <= 1.0)).sum())
        outline_w = float((near_o & word_mask).sum()) / max(1.0, perimeter)
        outline_w = max(1.0, min(0.2 * cap, outline_w))
    # How far a flat plate continues beyond the line's ends (where a longer word may grow).
    dist = np.linalg.norm(crop - bg, axis=2)
    tol = max(25.0, 0.2 * float(np.linalg.norm(fill - bg)))
    r0, r1 = max(0, int(t0) - 2), min(frame.height, int(math.ceil(t1)) + 2)
    flat_cols = ((dist[r0:r1] <= tol) & valid[r0:r1]).all(axis=0)
    line_ink_s0 = float(runs[0][0]) if runs else s0
    line_ink_s1 = float(runs[-1][1]) if runs else s1
    margin = 0.25 * cap

    def plate_extent(start_col: int, step: int) -> float:
        if photo is not None or outline is not None:
            return 0.0  # never grow over a photograph (outlined text is drawn on photos)
        n_flat, c = 0, start_col
        while 0 <= c < frame.width and flat_cols[c]:
            n_flat += 1
            c += step
        return max(0.0, n_flat - margin)

    # Between neighbours a replacement may use a quarter of each gap (the gap stays a clear
    # word gap); at a line's end it may grow over a flat plate, never over a photo.
    if before and left_gap is not None:
        avail_s0 = before[-1][1] + max(word_gap, 0.75 * left_gap)
    else:
        avail_s0 = s0 - plate_extent(int(s0) - 1, -1)
    if after and right_gap is not None:
        avail_s1 = after[0][0] - max(word_gap, 0.75 * right_gap)
    else:
        avail_s1 = s1 + plate_extent(int(math.ceil(s1)), 1)
    l0, l1 = int(line_ink_s0), int(math.ceil(line_ink_s1))
    halo = cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    around = (~halo[r0:r1, l0:l1]) & valid[r0:r1, l0:l1]
    plate = photo is None and bool(around.any()) and \
        float((dist[r0:r1, l0:l1][around] <= tol).mean()) > 0.9

    return WordInk(
        frame=frame, s0=s0, s1=s1, t0=t0, t1=t1, line_s0=line_ink_s0, line_s1=line_ink_s1,
        avail_s0=float(min(avail_s0, s0)), avail_s1=float(max(avail_s1, s1)),
        left_gap=left_gap, right_gap=right_gap, letter_gap=letter_gap,
        left_boundary=left_boundary, right_boundary=right_boundary, fill=_rgb(fill),
        outline=_rgb(outline) if outline is not None else None, outline_width=outline_w,
        background=_rgb(bg), plate=plate, stem_width=stem, threshold=thr)
