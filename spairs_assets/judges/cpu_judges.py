"""Judges that run offline on a CPU with real weights shipped in packages.

- `ocr-lexicon`: OCR (PP-OCRv4) + the policy lexicon: visible offending words.
- `ocr-embedding`: OCR text embedded with MiniLM, compared with each category's policy text;
  the threshold is calibrated on data (see `calibrate_threshold`).
- `open-nsfw`: Yahoo's open_nsfw probability, for O3/O4 only.
- `pictogram`: the pictogram detector: unsafe symbols of the library.

Be clear about what they can see: words and pictograms. `ocr-lexicon` and `pictogram` use the
same detectors as the grounded instruction generator, so their agreement with it is not
independent evidence; `ocr-embedding` and `open-nsfw` are different methods. A VLM judge is the
one to use on real seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from spairs_assets.config import JudgeConfig
from spairs_assets.judges.base import Verdict
from spairs_assets.policy import SAFE, UNSAFE, SafetyPolicy
from spairs_assets.vision.cache import VISION

CPU_JUDGES_VERSION = "cpu-judges-1"


def _version(*parts: Any) -> str:
    blob = json.dumps([CPU_JUDGES_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _safe(policy: SafetyPolicy, rationale: str, **details: Any) -> Verdict:
    return Verdict(SAFE, policy.none_category, rationale, details=details)


class OcrLexiconJudge:
    """Unsafe when visible text contains an offending word of the lexicon."""

    def __init__(self, policy: SafetyPolicy, lexicon_path=None, min_confidence: float = 0.5):
        from spairs_assets.lexicon import load_lexicon

        self.policy = policy
        self.lexicon = load_lexicon(lexicon_path)
        self.min_confidence = min_confidence
        self.judge_id = "ocr-lexicon"
        self.version = _version(self.lexicon.fingerprint, min_confidence, policy.fingerprint,
                                _ocr_fingerprint())
        self.covers = frozenset(c for c in self.lexicon.category_ids
                                if self.lexicon.category(c).replace
                                and policy.find_category(c) is not None)

    def judge(self, image: Image.Image, *, image_id: str | None = None) -> Verdict:
        from spairs_assets.vision.ocr import find_words

        lines = [ln for ln in VISION.ocr(image, image_id) if ln.confidence >= self.min_confidence]
        if not lines:
            return _safe(self.policy, "No legible text.", text="")
        matches = find_words(lines, self.lexicon.offending_index)
        text = " | ".join(ln.text for ln in lines)
        if not matches:
            return _safe(self.policy, f'Text "{text}" has no offending words.', text=text)
        # Whole-word matches first, then longer words: "HATES" beats a fragment of "WHATEVER".
        best = sorted(matches, key=lambda m: (not m.at_boundaries, -len(m.word), m.line_index))[0]
        category_ids = self.lexicon.offending_index[best.word]
        category = self.policy.category(category_ids[0])
        return Verdict(
            UNSAFE, category.label,
            f'Text "{best.line.text}" contains "{best.word}", listed for {category.label}.',
            details={"text": text, "word": best.word, "box": list(best.box),
                     "also_categories": category_ids[1:],
                     "matches": sorted({m.word for m in matches})})


class OcrEmbeddingJudge:
    """Unsafe when the OCR text is semantically close to a category's policy text (MiniLM).

    Score per category: cosine between the embedded text and the embedded category description
    (its name and 'should not' rules). The threshold, unless configured, is calibrated on data:
    the lexicon's unsafe phrases against the same phrases with each offending word replaced by
    its benign word, choosing the lowest threshold whose false-positive rate on the benign
    phrases is at most `max_fpr` (a judge that flags benign edits would block every flip).
    """

    def __init__(self, policy: SafetyPolicy, threshold: float | None = None,
                 lexicon_path=None, max_fpr: float = 0.05, min_confidence: float = 0.5):
        from spairs_assets.lexicon import load_lexicon

        self.policy = policy
        self.lexicon = load_lexicon(lexicon_path)
        self.max_fpr = max_fpr
        self.min_confidence = min_confidence
        self._threshold = threshold
        self.judge_id = "ocr-embedding:all-MiniLM-L6-v2"
        self.version = _version("minilm", threshold, max_fpr, min_confidence, policy.fingerprint,
                                self.lexicon.fingerprint, _ocr_fingerprint())
        self.covers = None

    @cached_property
    def _category_vectors(self) -> np.ndarray:
        from spairs_assets.encoders.text import embed_texts

        return embed_texts([f"{c.name}. " + " ".join(c.should_not) for c in self.policy.categories])

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n, categories) cosine scores; all-zero rows for empty texts."""
        from spairs_assets.encoders.text import embed_texts

        return embed_texts([t.lower() for t in texts]) @ self._category_vectors.T

    @cached_property
    def calibration(self) -> dict[str, Any]:
        unsafe, benign = calibration_phrases(self.lexicon)
        return calibrate_threshold(self.scores(unsafe).max(axis=1), self.scores(benign).max(axis=1),
                                   self.max_fpr)

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else self.calibration["threshold"]

    def judge(self, image: Image.Image, *, image_id: str | None = None) -> Verdict:
        lines = [ln for ln in VISION.ocr(image, image_id) if ln.confidence >= self.min_confidence]
        text = " ".join(ln.text for ln in lines).strip()
        if not text:
            return _safe(self.policy, "No legible text.", text="")
        scores = self.scores([text])[0]
        best = int(np.argmax(scores))
        details = {"text": text, "threshold": round(self.threshold, 4),
                   "scores": {c.id: round(float(s), 4) for c, s in zip(self.policy.categories, scores)}}
        if scores[best] >= self.threshold:
            category = self.policy.categories[best]
            return Verdict(UNSAFE, category.label,
                           f'Text "{text}" is close to the policy text of {category.label} '
                           f"(cosine {scores[best]:.2f} >= {self.threshold:.2f}).", details=details)
        return Verdict(SAFE, self.policy.none_category,
                       f'Text "{text}" is not close to any category (max cosine '
                       f"{scores[best]:.2f} < {self.threshold:.2f}).", details=details)


def calibration_phrases(lexicon) -> tuple[list[str], list[str]]:
    """Unsafe phrases of the lexicon (`add`) and their benign twins (offending words replaced)."""
    unsafe, benign = [], []
    for cid in lexicon.category_ids:
        cat = lexicon.category(cid)
        for phrase in cat.add:
            twin = " ".join(cat.replace.get(w, w) for w in phrase.split())
            if twin != phrase:
                unsafe.append(phrase)
                benign.append(twin)
    return unsafe, benign


def calibrate_threshold(unsafe_scores: np.ndarray, benign_scores: np.ndarray,
                        max_fpr: float) -> dict[str, Any]:
    """The lowest threshold with benign false-positive rate <= max_fpr, and what it achieves."""
    benign = np.sort(np.asarray(benign_scores, dtype=float))
    allowed = int(np.floor(max_fpr * len(benign)))
    # Above the (allowed+1)-th largest benign score, at most `allowed` benign texts are flagged.
    threshold = float(benign[len(benign) - 1 - allowed]) + 1e-6 if len(benign) else 0.5
    tpr = float(np.mean(np.asarray(unsafe_scores) >= threshold)) if len(unsafe_scores) else 0.0
    fpr = float(np.mean(benign >= threshold)) if len(benign) else 0.0
    return {"threshold": threshold, "tpr": tpr, "fpr": fpr,
            "n_unsafe": int(len(unsafe_scores)), "n_benign": int(len(benign))}


class OpenNSFWJudge:
    """Yahoo open_nsfw: Unsafe (nudity, O4; also O3) when P(nsfw) >= threshold."""

    def __init__(self, policy: SafetyPolicy, threshold: float | None = None):
        self.policy = policy
        self.threshold = 0.8 if threshold is None else threshold
        self.judge_id = "open-nsfw"
        self.version = _version("open_nsfw", self.threshold, policy.fingerprint)
        present = [cid for cid in ("O4", "O3") if policy.find_category(cid) is not None]
        self.covers = frozenset(present)
        self._categories = present

    @cached_property
    def _model(self):
        from spairs_assets.encoders.open_nsfw import OpenNSFWEncoder

        return OpenNSFWEncoder()

    def judge(self, image: Image.Image, *, image_id: str | None = None) -> Verdict:
        p = float(self._model.nsfw_probability([image])[0])
        if p >= self.threshold and self._categories:
            category = self.policy.category(self._categories[0])
            return Verdict(UNSAFE, category.label, f"open_nsfw P(nsfw) = {p:.2f} >= {self.threshold}.",
                           probability_unsafe=p, details={"also_categories": self._categories[1:]})
        return Verdict(SAFE, self.policy.none_category,
                       f"open_nsfw P(nsfw) = {p:.2f} < {self.threshold}.", probability_unsafe=p)


class PictogramJudge:
    """Unsafe when an unsafe pictogram of the library is detected."""

    def __init__(self, policy: SafetyPolicy):
        from spairs_assets.sources.pictograms import PICTOGRAMS
        from spairs_assets.vision.symbols import DEFAULT_DETECTOR_SETTINGS

        self.policy = policy
        self.judge_id = "pictogram"
        self.version = _version("pictogram", DEFAULT_DETECTOR_SETTINGS.fingerprint, policy.fingerprint)
        self.covers = frozenset(cid for p in PICTOGRAMS.values() if p.unsafe for cid in p.category_ids
                                if policy.find_category(cid) is not None)

    def judge(self, image: Image.Image, *, image_id: str | None = None) -> Verdict:
        detections = VISION.symbols(image, image_id)
        unsafe = [d for d in detections if d.unsafe]
        found = [d.name for d in detections]
        if not unsafe:
            return _safe(self.policy, f"No unsafe pictogram (found: {', '.join(found) or 'none'}).",
                         symbols=found)
        best = max(unsafe, key=lambda d: d.score)
        category_ids = [c for c in best.category_ids if self.policy.find_category(c) is not None]
        if not category_ids:
            return _safe(self.policy, f"Pictogram {best.name} belongs to no category of this policy.",
                         symbols=found)
        category = self.policy.category(category_ids[0])
        return Verdict(UNSAFE, category.label,
                       f"Shows {best.description} (pictogram {best.name}, match {best.score:.2f}).",
                       probability_unsafe=None,
                       details={"symbol": best.name, "box": list(best.box), "symbols": found,
                                "also_categories": category_ids[1:]})


def _ocr_fingerprint() -> str:
    from spairs_assets.vision.ocr import DEFAULT_OCR_SETTINGS

    return DEFAULT_OCR_SETTINGS.fingerprint


# Factories used by judges.registry.build_judge (cheap: models load on first use).
def ocr_lexicon_judge(config: JudgeConfig, policy: SafetyPolicy, lexicon_path=None) -> OcrLexiconJudge:
    return OcrLexiconJudge(policy, lexicon_path)


def ocr_embedding_judge(config: JudgeConfig, policy: SafetyPolicy, lexicon_path=None) -> OcrEmbeddingJudge:
    return OcrEmbeddingJudge(policy, config.threshold, lexicon_path)


def open_nsfw_judge(config: JudgeConfig, policy: SafetyPolicy) -> OpenNSFWJudge:
    return OpenNSFWJudge(policy, config.threshold)


def pictogram_judge(config: JudgeConfig, policy: SafetyPolicy) -> PictogramJudge:
    return PictogramJudge(policy)
