"""Computer-vision helpers shared by the CPU backends and judges.

- :mod:`spairs_assets.vision.ocr`: RapidOCR (PP-OCRv4) with tuned settings, lexicon-word
  matching inside recognised text (``find_words``) and pixel analysis of a matched word
  (``analyse_word``: glyph extent, colours, outline, word gaps).
- :mod:`spairs_assets.vision.symbols`: pictogram detection by template matching against the
  pictogram library (``detect_symbols``), and ``find_quiet_region`` for placing a sign.

Nothing here imports OpenCV or onnxruntime at module level: they load inside the functions
that need them, so `import spairs_assets.definitions` stays fast.
"""

from spairs_assets.vision.ocr import (
    DEFAULT_OCR_SETTINGS,
    OcrLine,
    OcrSettings,
    WordInk,
    WordMatch,
    analyse_word,
    find_words,
    normalise_word,
    read_text,
)
from spairs_assets.vision.symbols import (
    DEFAULT_DETECTOR_SETTINGS,
    DetectorSettings,
    SymbolDetection,
    detect_symbols,
    find_quiet_region,
)

__all__ = [
    "DEFAULT_DETECTOR_SETTINGS",
    "DEFAULT_OCR_SETTINGS",
    "DetectorSettings",
    "OcrLine",
    "OcrSettings",
    "SymbolDetection",
    "WordInk",
    "WordMatch",
    "analyse_word",
    "detect_symbols",
    "find_quiet_region",
    "find_words",
    "normalise_word",
    "read_text",
]
