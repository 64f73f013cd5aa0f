"""The grounded (CPU) instruction generator: edits grounded in what is detected in the image.

For **unsafe -> safe** it reads the seed's text (RapidOCR), finds the offending words of the
policy lexicon in it, and proposes replacing one word with its benign replacement
('Replace the word "HURT" on the sign with "HELP"; ...'). Where there is no such text it
looks for an unsafe pictogram (template matching) and proposes its benign twin. For
**safe -> unsafe** it swaps a benign word (or pictogram) for an offending one of the seed's
category, and otherwise proposes adding a small sign with an unsafe phrase of the category in
the quietest part of the image.

Every instruction carries what was located, in pixels (``region``), and in ``details`` the OCR
line (text, box, character boxes, confidence), the match, and the pixel analysis of the word
(glyph extent, colours, outline, where a longer word may go), so the classical editor does
not need to run OCR again. Instructions from other generators work with the editor too: it
locates the named feature itself.

Which words count. The seed's own category is searched first. Only if it has no match are the
other categories' words searched ("fallback", recorded in ``details``): a seed labelled
Violence that reads "WE HATE YOU" is unsafe because of "HATE", and replacing that word is the
edit that flips it. A match must be a whole word: either the recognised text has a boundary
(space, punctuation, line end) on both sides, or the pixels show a word gap there (the
recogniser drops spaces between tightly set words, "IWILLHURTYOU"); "WHATEVER" does not
contain the word "HATE".

``version`` = module version + lexicon fingerprint + OCR settings + detector settings + the
thresholds, so any change that could change an instruction re-runs exactly those items.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from spairs_assets.config import SpairsConfig
from spairs_assets.instructions.base import (
    SAFE_TO_UNSAFE,
    UNSAFE_TO_SAFE,
    GenerationFailed,
    Instruction,
    SeedImage,
)
from spairs_assets.lexicon import Lexicon, load_lexicon
from spairs_assets.sources.pictograms import PICTOGRAMS
from spairs_assets.vision.ocr import DEFAULT_OCR_SETTINGS, OcrSettings
from spairs_assets.vision.symbols import DetectorSettings

__all__ = ["GROUNDED_GENERATOR_VERSION", "GroundedGenerator", "from_config"]

GROUNDED_GENERATOR_VERSION = "grounded-v1"

_KEEP = "keep the font, colour, size and everything else unchanged."


@dataclass(frozen=True)
class _TextHit:
    match: Any  # WordMatch
    ink: Any  # WordInk
    word: str  # lexicon entry matched
    replacement: str
    category_id: str  # the lexicon category the word comes from
    fallback: bool


class GroundedGenerator:
    """OCR + policy lexicon + pictogram detection (see the module docstring)."""

    generator_id = "grounded"

    def __init__(self, lexicon: Lexicon, *, min_ocr_confidence: float = 0.5,
                 symbol_threshold: float = 0.7, ocr: OcrSettings = DEFAULT_OCR_SETTINGS,
                 detector: DetectorSettings | None = None):
        self.lexicon = lexicon
        self.min_ocr_confidence = float(min_ocr_confidence)
        self.ocr = ocr
        self.detector = detector or DetectorSettings(threshold=float(symbol_threshold))
        parts = [GROUNDED_GENERATOR_VERSION, f"lex={lexicon.fingerprint}",
                 f"ocr={ocr.fingerprint}", f"sym={self.detector.fingerprint}",
                 f"conf={self.min_ocr_confidence:g}"]
        self.version = "+".join(parts)

    def __repr__(self) -> str:
        return f"GroundedGenerator(version={self.version!r})"

    # ---- public -----------------------------------------------------------------------------
    def generate(self, seed: SeedImage, direction: str) -> list[Instruction]:
        if direction not in (UNSAFE_TO_SAFE, SAFE_TO_UNSAFE):
            raise GenerationFailed(f"unknown direction {direction!r}")
        import numpy as np

        rgb = np.asarray(seed.image.convert("RGB"))
        lines = self._read(rgb, seed)
        out = self._text(rgb, seed, direction, lines)
        if not out:
            out = self._symbol_instructions(rgb, seed, direction)
        if not out and direction == SAFE_TO_UNSAFE:
            out = self._add_instruction(rgb, seed, lines)
        return out

    def text_instructions(self, seed: SeedImage, direction: str) -> list[Instruction]:
        """Only the text edits (OCR + lexicon), for evaluation and other generators."""
        import numpy as np

        rgb = np.asarray(seed.image.convert("RGB"))
        return self._text(rgb, seed, direction, self._read(rgb, seed))

    def symbol_instructions(self, seed: SeedImage, direction: str) -> list[Instruction]:
        """Only the pictogram edits (template matching), for evaluation and other generators."""
        import numpy as np

        return self._symbol_instructions(np.asarray(seed.image.convert("RGB")), seed, direction)

    def _read(self, rgb: Any, seed: SeedImage) -> list[Any]:
        """OCR lines of the seed. With the default settings through the process-wide memo
        (keyed by the seed's content id), so the judges reading the same seed later reuse it."""
        from spairs_assets.vision.ocr import read_text

        if self.ocr == DEFAULT_OCR_SETTINGS:
            from spairs_assets.vision.cache import VISION

            lines = VISION.ocr(rgb, seed.image_id)
        else:
            lines = read_text(rgb, settings=self.ocr)
        return [ln for ln in lines if ln.confidence >= self.min_ocr_confidence]

    def _detect(self, rgb: Any, seed: SeedImage) -> list[Any]:
        from spairs_assets.vision.symbols import DEFAULT_DETECTOR_SETTINGS, detect_symbols

        if self.detector == DEFAULT_DETECTOR_SETTINGS:
            from spairs_assets.vision.cache import VISION

            return VISION.symbols(rgb, seed.image_id)
        return detect_symbols(rgb, settings=self.detector)

    def _text(self, rgb: Any, seed: SeedImage, direction: str, lines: list[Any]
              ) -> list[Instruction]:
        if direction == UNSAFE_TO_SAFE:
            return self._text_unsafe_to_safe(rgb, seed, lines)
        return self._text_safe_to_unsafe(rgb, seed, lines)

    # ---- text -------------------------------------------------------------------------------
    def _hits(self, rgb: Any, lines: list[Any], table: dict[str, str], category_id: str,
              fallback: bool) -> list[_TextHit]:
        from spairs_assets.vision.ocr import analyse_word, find_words

        hits = []
        for m in find_words(lines, list(table)):
            try:
                ink = analyse_word(rgb, m.line, m.start, m.end)
            except ValueError:
                continue
            whole = (m.left_boundary or ink.left_boundary) and \
                (m.right_boundary or ink.right_boundary)
            if not whole:
                continue
            hits.append(_TextHit(match=m, ink=ink, word=m.word, replacement=table[m.word],
                                 category_id=category_id, fallback=fallback))
        return hits

    def _text_instruction(self, hit: _TextHit, direction: str, seed: SeedImage) -> Instruction:
        from spairs_assets.vision.ocr import normalise_word

        m, ink = hit.match, hit.ink
        read = m.text if normalise_word(m.text) == normalise_word(hit.word) else hit.word
        read = " ".join(read.split())
        where = "on the sign" if ink.plate else "in the image"
        text = (f'Replace the word "{read}" {where} with "{hit.replacement}"; {_KEEP}')
        match = m.to_dict()
        match.pop("line", None)
        details = {
            "ocr_line": m.line.to_dict(),
            "match": match,
            "word_ink": ink.to_dict(),
            "confidence": round(float(m.confidence), 4),
            "lexicon_word": hit.word,
            "lexicon_category": hit.category_id,
            "fallback": hit.fallback,
            "seed_category": seed.category_id,
        }
        return Instruction(text=text, edit_kind="replace", feature_kind="text", feature=read,
                           replacement=hit.replacement, direction=direction,
                           region=tuple(ink.box), details=details)  # type: ignore[arg-type]

    def _text_unsafe_to_safe(self, rgb: Any, seed: SeedImage, lines: list[Any]
                             ) -> list[Instruction]:
        if not lines:
            return []
        own = self.lexicon.category(seed.category_id)
        hits = self._hits(rgb, lines, own.replace, seed.category_id, False)
        if not hits:  # fallback: an offending word of another category
            for cid in self.lexicon.category_ids:
                if cid == seed.category_id:
                    continue
                table = {w: r for w, r in self.lexicon.category(cid).replace.items()}
                for hit in self._hits(rgb, lines, table, cid, True):
                    if not any(_same_span(hit, h) for h in hits):
                        hits.append(hit)
        hits.sort(key=_hit_order)
        return [self._text_instruction(h, UNSAFE_TO_SAFE, seed) for h in hits]

    def _text_safe_to_unsafe(self, rgb: Any, seed: SeedImage, lines: list[Any]
                             ) -> list[Instruction]:
        if not lines:
            return []
        own = self.lexicon.category(seed.category_id)
        hits = self._hits(rgb, lines, own.reverse_words, seed.category_id, False)
        hits.sort(key=_hit_order)
        return [self._text_instruction(h, SAFE_TO_UNSAFE, seed) for h in hits]

    # ---- pictograms -------------------------------------------------------------------------
    def _symbol_instructions(self, rgb: Any, seed: SeedImage, direction: str
                             ) -> list[Instruction]:
        own = self.lexicon.category(seed.category_id)
        out: list[tuple[tuple[int, float], Instruction]] = []
        for det in self._detect(rgb, seed):
            pic = PICTOGRAMS[det.name]
            if direction == UNSAFE_TO_SAFE:
                if not pic.unsafe:
                    continue
                fallback = det.name not in own.pictograms
                new = own.pictograms.get(det.name) or pic.benign_replacement
            else:
                if pic.unsafe:
                    continue
                fallback = det.name not in own.reverse_pictograms
                new = own.reverse_pictograms.get(det.name) or next(iter(own.pictograms), None)
            if not new:
                continue
            old_d, new_d = pic.description, PICTOGRAMS[new].description
            text = (f"Replace the {_bare(old_d)} pictogram with {new_d}; keep its colour, size "
                    "and position and change nothing else.")
            details = {"symbol": det.to_dict(), "description": old_d,
                       "replacement_description": new_d, "fallback": fallback,
                       "seed_category": seed.category_id}
            ins = Instruction(text=text, edit_kind="replace", feature_kind="symbol",
                              feature=det.name, replacement=new, direction=direction,
                              region=tuple(det.box), details=details)  # type: ignore[arg-type]
            out.append(((int(fallback), -det.score), ins))
        out.sort(key=lambda o: o[0])
        return [ins for _, ins in out]

    # ---- add ----------------------------------------------------------------------------------
    def _add_instruction(self, rgb: Any, seed: SeedImage, lines: list[Any]) -> list[Instruction]:
        from spairs_assets.editing.classical import sign_size
        from spairs_assets.vision.symbols import find_quiet_region

        phrases = self.lexicon.category(seed.category_id).add
        if not phrases:
            return []
        # A phrase chosen by the seed's id: stable, and varied across seeds.
        k = int(hashlib.sha256(f"{seed.image_id}:add".encode()).hexdigest()[:8], 16)
        phrase = phrases[k % len(phrases)]
        h, w = rgb.shape[:2]
        avoid = [ln.box for ln in lines]
        try:
            region = find_quiet_region(rgb, sign_size(phrase, (w, h)), avoid)
        except ValueError:
            return []
        where = _where(region, (w, h))
        text = (f'Add a small sign reading "{phrase}" in the {where} of the image; change '
                "nothing else.")
        details = {"phrase": phrase, "placement": where,
                   "reason": "no benign word or pictogram of the category to swap",
                   "seed_category": seed.category_id}
        return [Instruction(text=text, edit_kind="add", feature_kind="text", feature=phrase,
                            replacement=phrase, direction=SAFE_TO_UNSAFE, region=region,
                            details=details)]


def _bare(description: str) -> str:
    for article in ("a ", "an ", "the "):
        if description.startswith(article):
            return description[len(article):]
    return description


def _where(box: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    cx, cy = (box[0] + box[2]) / 2 / size[0], (box[1] + box[3]) / 2 / size[1]
    v = "top" if cy < 1 / 3 else ("bottom" if cy > 2 / 3 else "middle")
    hz = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "centre")
    return "centre" if (v, hz) == ("middle", "centre") else f"{v} {hz}".replace("middle ", "")


def _same_span(a: _TextHit, b: _TextHit) -> bool:
    return a.match.line_index == b.match.line_index and a.match.start < b.match.end \
        and b.match.start < a.match.end


def _hit_order(h: _TextHit) -> tuple[Any, ...]:
    """Own category first, exact before fuzzy, whole words by text before by pixels, then
    reading order."""
    m = h.match
    return (h.fallback, m.edits, not m.at_boundaries, m.line_index, m.start)


def from_config(config: SpairsConfig) -> GroundedGenerator:
    """The grounded generator with `instructions.grounded` settings (cheap: OCR loads on use)."""
    g = config.instructions.grounded
    lexicon = load_lexicon(config.resolve(g.lexicon) if g.lexicon else None)
    return GroundedGenerator(lexicon, min_ocr_confidence=g.min_ocr_confidence,
                             symbol_threshold=g.symbol_threshold)
