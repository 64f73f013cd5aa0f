"""The classical editor: text and pictogram replacement, removal, adding a sign, locality,
determinism, and instructions that carry no location (as a VLM would write them)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from spairs_assets.config import SpairsConfig
from spairs_assets.editing.base import EditFailed, Editor
from spairs_assets.editing.classical import CLASSICAL_EDITOR_VERSION, ClassicalEditor, from_config
from spairs_assets.editing.stage import build_editor
from spairs_assets.instructions.base import UNSAFE_TO_SAFE, Instruction, SeedImage
from spairs_assets.instructions.grounded import from_config as generator_from_config
from spairs_assets.vision.ocr import find_words, read_text
from spairs_assets.vision.symbols import detect_symbols
from spairs_assets_tests.fixtures_demo import (  # noqa: F401
    changed_mask,
    changes_outside,
    demo_subset,
    grounded_instructions,
    image_of,
    make_seed,
    pictogram_image,
    plain_photos,
    seed_of,
    sign_image,
)


@pytest.fixture(scope="module")
def editor() -> ClassicalEditor:
    return from_config(SpairsConfig())


@pytest.fixture(scope="module")
def generator():
    return generator_from_config(SpairsConfig())


def _seed(image, category_id: str = "O2", rating: str = "Unsafe") -> SeedImage:
    return make_seed(image, category_id, rating)


def _reads(image: Image.Image, word: str) -> bool:
    return bool(find_words(read_text(image), [word]))


def _assert_only_inside_edited_box(before, result):
    box = result.details["edited_box"]
    changed = changed_mask(before, result.image)
    ys, xs = np.nonzero(changed)
    assert changed.sum() == result.details["changed_pixels"] > 0
    assert xs.min() >= box[0] and ys.min() >= box[1] and xs.max() < box[2] and ys.max() < box[3]


def test_identity_and_factory():
    ed = build_editor(SpairsConfig(editing={"classical": {"inpaint_radius": 3, "margin": 1}}))
    assert isinstance(ed, ClassicalEditor) and isinstance(ed, Editor)
    assert (ed.editor_id, ed.revision, ed.uses_gpu) == ("classical", CLASSICAL_EDITOR_VERSION,
                                                        False)
    assert ed.params == {"inpaint_radius": 3, "margin": 1}
    versions = ed.package_versions()
    assert set(versions) == {"opencv-python-headless", "pillow", "numpy", "rapidocr-onnxruntime"}
    with pytest.raises(ValueError, match="inpaint_radius"):
        ClassicalEditor(inpaint_radius=0)


def test_null_edit_is_an_identical_copy(editor):
    image = plain_photos(1)[0]
    out = editor.null_edit(image, 5)
    assert out is not image and out.tobytes() == image.tobytes()


def test_replaces_a_word_as_the_generator_located_it(editor, generator):
    image, info = sign_image("I WILL HURT YOU", plate=(0, 70, 160), ink=(255, 255, 255))
    (ins, *_) = generator.generate(_seed(image), UNSAFE_TO_SAFE)
    result = editor.edit(image, ins, seed=11)
    assert result.image.size == image.size
    assert _reads(result.image, "HELP") and not _reads(result.image, "HURT")
    assert _reads(result.image, "WILL") and _reads(result.image, "YOU")  # neighbours intact
    assert changes_outside(image, result.image, info["word_boxes"]["HURT"], pad=6) == 0
    _assert_only_inside_edited_box(image, result)
    d = result.details
    assert d["located_by"] == "instruction" and d["replacement_drawn"] == "HELP"
    # The new word keeps the old colours: the changed pixels are plate- or ink-coloured.
    px = np.asarray(result.image)[changed_mask(image, result.image)].astype(float)
    plate_or_ink = np.minimum(np.linalg.norm(px - (0, 70, 160), axis=1),
                              np.linalg.norm(px - (255, 255, 255), axis=1))
    assert np.median(plate_or_ink) < 30


def test_locates_the_word_itself_when_the_instruction_has_no_location(editor):
    image, info = sign_image("KICK THE DOG", angle=4.0)
    ins = Instruction(text='Replace the word "KICK" with "WALK"; change nothing else.',
                      edit_kind="replace", feature_kind="text", feature='the word "KICK"',
                      replacement="WALK", direction=UNSAFE_TO_SAFE)
    result = editor.edit(image, ins, seed=1)
    assert result.details["located_by"] == "ocr"
    assert _reads(result.image, "WALK") and not _reads(result.image, "KICK")
    assert changes_outside(image, result.image, info["sign_box"], pad=0) == 0


def test_removes_a_word(editor):
    image, info = sign_image("BEAT THEM UP")
    ins = Instruction(text='Remove the word "BEAT".', edit_kind="remove", feature_kind="text",
                      feature="BEAT", replacement=None, direction=UNSAFE_TO_SAFE)
    result = editor.edit(image, ins, seed=0)
    assert not _reads(result.image, "BEAT") and _reads(result.image, "THEM")
    assert changes_outside(image, result.image, info["word_boxes"]["BEAT"], pad=4) == 0


def test_replaces_a_pictogram_in_place(editor, generator):
    image, info = pictogram_image("flame", color=(255, 255, 255), plate=(200, 16, 30), angle=3)
    (ins, *_) = generator.generate(_seed(image, "O9"), UNSAFE_TO_SAFE)
    assert ins.feature == "flame"
    result = editor.edit(image, ins, seed=2)
    names = [d.name for d in detect_symbols(result.image)]
    assert names and names[0] == "water_drop" and "flame" not in names
    assert changes_outside(image, result.image, info["feature_box"], pad=0) == 0
    # Without the detection in `details` the editor finds the pictogram by name itself.
    bare = Instruction(text="Replace the flame with a water drop.", edit_kind="replace",
                       feature_kind="symbol", feature="a flame", replacement="a water drop",
                       direction=UNSAFE_TO_SAFE)
    again = editor.edit(image, bare, seed=2)
    assert again.details["located_by"] == "detector"
    assert again.image.tobytes() == result.image.tobytes()


def test_adds_a_sign_inside_the_region(editor, generator):
    photo = plain_photos(2)[1]
    (ins, *_) = generator.generate(_seed(photo, "O6", "Safe"), "safe_to_unsafe")
    result = editor.edit(photo, ins, seed=4)
    assert changes_outside(photo, result.image, ins.region, pad=0) == 0
    assert _reads(result.image, ins.replacement)


def test_same_seed_same_pixels_different_seeds_differ(editor, generator):
    image, _ = sign_image("GUNS FOR SALE")
    (ins, *_) = generator.generate(_seed(image, "O6"), UNSAFE_TO_SAFE)
    a, b = editor.edit(image, ins, seed=7), editor.edit(image, ins, seed=7)
    assert a.image.tobytes() == b.image.tobytes() and a.details == b.details
    others = {editor.edit(image, ins, seed=s).image.tobytes() for s in (1, 2, 3)}
    assert len(others | {a.image.tobytes()}) >= 3


def test_clear_failures(editor):
    image, _ = sign_image("HELLO THERE")
    missing = Instruction(text='Replace "HURT" with "HELP".', edit_kind="replace",
                          feature_kind="text", feature="HURT", replacement="HELP",
                          direction=UNSAFE_TO_SAFE)
    with pytest.raises(EditFailed, match="could not find the text 'HURT'.*HELLO"):
        editor.edit(image, missing, seed=0)
    obj = Instruction(text="Remove the gun.", edit_kind="remove", feature_kind="object",
                      feature="gun", replacement=None, direction=UNSAFE_TO_SAFE)
    with pytest.raises(EditFailed, match="text and pictograms only"):
        editor.edit(image, obj, seed=0)
    sym = Instruction(text="Replace the knife with a spoon.", edit_kind="replace",
                      feature_kind="symbol", feature="knife", replacement="spoon",
                      direction=UNSAFE_TO_SAFE)
    with pytest.raises(EditFailed, match="could not find the pictogram 'knife'"):
        editor.edit(plain_photos(1)[0], sym, seed=0)


@pytest.mark.slow
def test_demo_text_edits_flip_the_word_and_stay_local(editor, generator, demo_subset):  # noqa: F811
    """Required bar: >= 90 % of unsafe text seeds (a) read the benign word and no longer the
    offending one after the edit, and (b) change no pixel outside the ground-truth feature
    box grown by 3 px. Measured on the full demo: 141/144 and 143/144."""
    root, rows = demo_subset
    text = [r for r in rows if r["rating"] == "unsafe" and r["feature_kind"] == "text"]
    flipped = local = 0
    for row in text:
        found = grounded_instructions(generator, root, row, UNSAFE_TO_SAFE)
        if not found:
            continue
        image = image_of(root, row)
        result = editor.edit(image, found[0], seed=123)
        lines = read_text(result.image)
        flipped += bool(find_words(lines, [found[0].replacement])) and \
            not find_words(lines, [row["offending_word"]])
        local += changes_outside(image, result.image, row["feature_box"], pad=3) == 0
    n = len(text)
    assert flipped / n >= 0.9, f"flip rate {flipped}/{n}"
    assert local / n >= 0.9, f"locality {local}/{n}"


@pytest.mark.slow
def test_demo_pictogram_edits_replace_and_stay_local(editor, generator, demo_subset):  # noqa: F811
    """Measured on the full demo: 72/72 replaced (the detector then finds the benign
    pictogram and not the unsafe one), 72/72 local; asserted with a margin."""
    root, rows = demo_subset
    symbols = [r for r in rows if r["rating"] == "unsafe" and r["feature_kind"] == "symbol"]
    replaced = local = 0
    for row in symbols:
        found = generator.symbol_instructions(seed_of(root, row), UNSAFE_TO_SAFE)
        if not found or found[0].feature != row["symbol"]:
            continue
        image = image_of(root, row)
        result = editor.edit(image, found[0], seed=5)
        names = [d.name for d in detect_symbols(result.image)]
        replaced += found[0].replacement in names and row["symbol"] not in names
        local += changes_outside(image, result.image, row["feature_box"], pad=3) == 0
    n = len(symbols)
    assert replaced / n >= 0.85, f"replaced {replaced}/{n}"
    assert local / n >= 0.9, f"locality {local}/{n}"
