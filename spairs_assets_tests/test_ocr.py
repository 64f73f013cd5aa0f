"""OCR wrapper: reading, matching lexicon words inside recognised text, locating glyphs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from spairs_assets.vision.ocr import (
    DEFAULT_OCR_SETTINGS,
    OcrLine,
    OcrSettings,
    analyse_word,
    find_words,
    normalise_word,
    ocr_engine,
    read_text,
)
from spairs_assets_tests.fixtures_demo import demo_subset, image_of, sign_image  # noqa: F401


def _line(text: str, x0: float = 0, y0: float = 0, char_w: float = 10, h: float = 20) -> OcrLine:
    quads = tuple(((x0 + i * char_w, y0), (x0 + (i + 1) * char_w, y0),
                   (x0 + (i + 1) * char_w, y0 + h), (x0 + i * char_w, y0 + h))
                  for i in range(len(text)))
    x1 = x0 + len(text) * char_w
    quad = ((x0, y0), (x1, y0), (x1, y0 + h), (x0, y0 + h))
    return OcrLine(text=text, confidence=0.99, quad=quad, char_quads=quads)


def test_normalise_word_folds_case_spaces_and_confusables():
    assert normalise_word("Strip club!") == "STRIPCLUB"
    assert normalise_word("W0RTHLE55") == "WORTHLESS"
    assert normalise_word("  ") == ""


def test_find_words_matches_inside_text_whose_spaces_were_dropped():
    line = _line("IWILLHURTYOU")
    (m,) = find_words([line], ["HURT"])
    assert (m.start, m.end, m.text) == (5, 9, "HURT")
    assert not m.left_boundary and not m.right_boundary
    # The box comes from the matched characters' boxes, not the whole line.
    assert m.box == (50, 0, 91, 21)


def test_find_words_prefers_exact_then_longer_then_whole_words():
    line = _line("EVERYONE HATES YOU")
    (m,) = find_words([line], ["HATE", "HATES"])
    assert m.word == "HATES" and m.at_boundaries
    # A one-letter recognition error still matches a long word, reported as one edit ...
    (f,) = find_words([_line("LIFE IS POINTLES")], ["POINTLESS"])
    assert f.edits == 1 and f.text == "POINTLES"
    # ... but short words must match exactly (HURL is not HURT).
    assert find_words([_line("HURL IT")], ["HURT"]) == []
    # An exact match beats a fuzzy one that overlaps it.
    (e,) = find_words([_line("NUDISTCAMP")], ["NUDIST", "NUDISTS"])
    assert e.word == "NUDIST" and e.edits == 0


def test_find_words_reports_matches_in_reading_order_across_lines():
    lines = [_line("KILL THEM ALL"), _line("OR HURT THEM", y0=40)]
    found = find_words(lines, ["HURT", "KILL"])
    assert [(m.line_index, m.word) for m in found] == [(0, "KILL"), (1, "HURT")]
    assert found[1].box[1] == 40


def test_ocr_line_round_trips_through_a_dict():
    line = _line("HELLO")
    back = OcrLine.from_dict(line.to_dict())
    assert back.text == line.text and back.box == line.box and len(back.char_quads) == 5


def test_settings_fingerprint_tracks_what_changes_results():
    assert DEFAULT_OCR_SETTINGS.fingerprint == OcrSettings().fingerprint
    assert OcrSettings(det_limit_side_len=640).fingerprint != DEFAULT_OCR_SETTINGS.fingerprint
    with pytest.raises(ValueError, match="det_limit_type"):
        OcrSettings(det_limit_type="mean")


def test_read_text_reads_a_sign_with_character_boxes():
    image, info = sign_image("I WILL HURT YOU")
    lines = read_text(image)
    text = "".join(ln.text for ln in lines).replace(" ", "")
    assert "IWILLHURTYOU" in text
    line = next(ln for ln in lines if "HURT" in ln.text)
    assert len(line.char_quads) == len(line.text) and not line.char_boxes_estimated
    x0, y0, x1, y1 = info["sign_box"]
    bx = line.box
    assert x0 - 2 <= bx[0] and bx[2] <= x1 + 2 and y0 - 2 <= bx[1] and bx[3] <= y1 + 2
    # A blank image has no text.
    assert read_text(Image.new("RGB", (200, 120), (90, 120, 160))) == []


def test_engine_is_reused_and_safe_to_share_between_threads():
    engine_a, lock_a = ocr_engine()
    engine_b, lock_b = ocr_engine()
    assert engine_a is engine_b and lock_a is lock_b
    images = [sign_image(t)[0] for t in ("KICK THE DOG", "GUNS FOR SALE")]
    expected = [[ln.text for ln in read_text(im)] for im in images]
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        results[i] = [ln.text for ln in read_text(images[i % 2])]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(4)] == [expected[0], expected[1], expected[0], expected[1]]


def test_analyse_word_finds_the_glyphs_colours_and_word_gaps():
    image, info = sign_image("I WILL HURT YOU", plate=(255, 214, 0), ink=(10, 10, 10))
    lines = read_text(image)
    (m,) = find_words(lines, ["HURT"])
    ink = analyse_word(image, m.line, m.start, m.end)
    true = info["word_boxes"]["HURT"]
    assert all(abs(a - b) <= 3 for a, b in zip(ink.box, true, strict=True)), (ink.box, true)
    assert ink.plate and ink.outline is None
    assert np.linalg.norm(np.subtract(ink.fill, (10, 10, 10))) < 40
    assert np.linalg.norm(np.subtract(ink.background, (255, 214, 0))) < 40
    assert ink.left_boundary and ink.right_boundary
    # A word inside a longer word has no word gap in the pixels.
    image2, _ = sign_image("WHATEVER")
    (m2,) = find_words(read_text(image2), ["HATE"])
    part = analyse_word(image2, m2.line, m2.start, m2.end)
    assert not (part.left_boundary and part.right_boundary)


@pytest.mark.slow
def test_demo_text_seeds_are_read(demo_subset):  # noqa: F811
    """Every text seed's one-word-differs word (offending or benign) is found by OCR."""
    root, rows = demo_subset
    text_rows = [r for r in rows if r["feature_kind"] == "text"]
    hits = 0
    for row in text_rows:
        word = row["offending_word"] or row["benign_word"]
        hits += bool(find_words(read_text(image_of(root, row)), [word]))
    rate = hits / len(text_rows)
    assert rate >= 0.95, f"OCR read rate {rate:.2%} on {len(text_rows)} demo text seeds"
