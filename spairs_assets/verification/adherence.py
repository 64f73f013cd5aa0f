"""Instruction adherence: did the edit change what the instruction named, into what it said?

Text: OCR of the edit reads the replacement and no longer the feature. Symbols: the pictogram
detector finds the replacement and no longer the feature. Anything else (a VLM's free-text
"object" edit) cannot be checked by these detectors: the result is None ("unknown"), which
curation does not count as a failure.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from spairs_assets.vision.cache import VISION


def check_adherence(instruction: dict[str, Any], edited: Image.Image,
                    edited_image_id: str | None) -> tuple[bool | None, str]:
    kind = instruction.get("feature_kind")
    feature = (instruction.get("feature") or "").strip()
    replacement = (instruction.get("replacement") or "").strip()
    edit_kind = instruction.get("edit_kind")
    if kind == "text":
        from spairs_assets.vision.ocr import find_words, normalise_word

        lines = VISION.ocr(edited, edited_image_id)
        text = " | ".join(line.text for line in lines)
        has = {w: bool(find_words(lines, [w])) for w in {feature, replacement} if w}
        if edit_kind == "add":
            ok = has.get(replacement or feature, False)
            return ok, f'added text {"found" if ok else "not found"}; edit reads "{text}"'
        # A replacement containing the feature ("HUG" in "HUGS") cannot be told apart by reading.
        feature_gone = not has.get(feature, False) or (
            replacement and normalise_word(feature) in normalise_word(replacement))
        if edit_kind == "remove":
            return bool(feature_gone), f'edit reads "{text}"'
        ok = bool(feature_gone and has.get(replacement, False))
        return ok, (f'replacement "{replacement}" {"found" if has.get(replacement) else "missing"}, '
                    f'feature "{feature}" {"gone" if feature_gone else "still there"}; '
                    f'edit reads "{text}"')
    if kind == "symbol":
        from spairs_assets.sources.pictograms import PICTOGRAMS

        if feature not in PICTOGRAMS or (replacement and replacement not in PICTOGRAMS):
            return None, f"symbol {feature!r} is not in the pictogram library: not checkable"
        names = {d.name for d in VISION.symbols(edited, edited_image_id)}
        gone = feature not in names
        if edit_kind == "add":
            ok = (replacement or feature) in names
        elif edit_kind == "remove":
            ok = gone
        else:
            ok = gone and replacement in names
        return ok, f"symbols in the edit: {sorted(names) or 'none'}"
    return None, f"feature kind {kind!r} is not checkable by OCR or the pictogram detector"
