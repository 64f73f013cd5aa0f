"""The grounded instruction generator: OCR + lexicon, pictograms, both directions."""

from __future__ import annotations

import pytest
import yaml

from spairs_assets.config import SpairsConfig
from spairs_assets.instructions.base import (
    SAFE_TO_UNSAFE,
    UNSAFE_TO_SAFE,
    Instruction,
    InstructionGenerator,
    SeedImage,
)
from spairs_assets.instructions.grounded import GroundedGenerator, from_config
from spairs_assets.instructions.stage import build_generator
from spairs_assets.lexicon import load_lexicon
from spairs_assets_tests.fixtures_demo import (  # noqa: F401
    demo_subset,
    grounded_instructions,
    make_seed,
    pictogram_image,
    plain_photos,
    sign_image,
)


@pytest.fixture(scope="module")
def generator() -> GroundedGenerator:
    return from_config(SpairsConfig())


def _seed(image, category_id: str = "O2", rating: str = "Unsafe") -> SeedImage:
    return make_seed(image, category_id, rating)


def _inside(inner, outer, pad: int = 3) -> bool:
    return (inner[0] >= outer[0] - pad and inner[1] >= outer[1] - pad
            and inner[2] <= outer[2] + pad and inner[3] <= outer[3] + pad)


def test_factory_is_cheap_and_registered(tmp_path):
    from spairs_assets.vision import ocr

    before = dict(ocr._ENGINES)
    gen = build_generator(SpairsConfig())
    assert isinstance(gen, GroundedGenerator) and isinstance(gen, InstructionGenerator)
    assert ocr._ENGINES == before  # no OCR engine is built until the first seed
    assert gen.generator_id == "grounded"
    assert load_lexicon().fingerprint in gen.version


def test_version_follows_lexicon_and_thresholds(tmp_path):
    base = from_config(SpairsConfig())
    lex = tmp_path / "lex.yaml"
    lex.write_text(yaml.safe_dump({"name": "x", "version": 1,
                                   "categories": {"O2": {"replace": {"HURT": "HELP"}}}}))
    other = from_config(SpairsConfig(base_dir=tmp_path,
                                     instructions={"grounded": {"lexicon": "lex.yaml"}}))
    stricter = from_config(SpairsConfig(instructions={"grounded": {"symbol_threshold": 0.8}}))
    assert len({base.version, other.version, stricter.version}) == 3
    assert from_config(SpairsConfig()).version == base.version


def test_replaces_the_offending_word_with_its_benign_twin(generator):
    image, info = sign_image("I WILL HURT YOU")
    (ins, *_) = generator.generate(_seed(image, "O2"), UNSAFE_TO_SAFE)
    assert isinstance(ins, Instruction)
    assert (ins.edit_kind, ins.feature_kind, ins.feature, ins.replacement) == \
        ("replace", "text", "HURT", "HELP")
    assert '"HURT"' in ins.text and '"HELP"' in ins.text and "on the sign" in ins.text
    assert ins.target_rating == "Safe"
    assert _inside(ins.region, info["word_boxes"]["HURT"])
    d = ins.details
    assert d["ocr_line"]["text"].replace(" ", "") == "IWILLHURTYOU"
    assert len(d["ocr_line"]["char_quads"]) == len(d["ocr_line"]["text"])
    assert 0.5 <= d["confidence"] <= 1 and d["lexicon_category"] == "O2" and not d["fallback"]
    assert d["word_ink"]["plate"] is True


def test_falls_back_to_other_categories_only_when_its_own_has_no_match(generator):
    image, _ = sign_image("WE HATE YOU")
    (ins, *_) = generator.generate(_seed(image, "O2"), UNSAFE_TO_SAFE)
    assert ins.feature == "HATE" and ins.replacement == "LOVE"
    assert ins.details["fallback"] and ins.details["lexicon_category"] == "O1"
    # The same word for the seed's own category: no fallback.
    (own, *_) = generator.generate(_seed(image, "O1"), UNSAFE_TO_SAFE)
    assert not own.details["fallback"]


def test_a_word_inside_a_longer_word_is_not_a_match(generator):
    image, _ = sign_image("WHATEVER")
    assert generator.generate(_seed(image, "O1"), UNSAFE_TO_SAFE) == []


def test_nothing_to_edit_on_plain_photos(generator):
    for photo in plain_photos(6):
        assert generator.generate(_seed(photo, "O2"), UNSAFE_TO_SAFE) == []


def test_unsafe_pictogram_becomes_its_benign_twin(generator):
    image, info = pictogram_image("knife", color=(0, 0, 0), plate=(255, 214, 0))
    (ins, *_) = generator.generate(_seed(image, "O2"), UNSAFE_TO_SAFE)
    assert (ins.feature_kind, ins.feature, ins.replacement) == ("symbol", "knife", "spoon")
    assert "knife" in ins.text and "spoon" in ins.text
    assert _inside(ins.region, info["feature_box"])
    assert ins.details["symbol"]["name"] == "knife"


def test_safe_to_unsafe_swaps_a_benign_word_or_pictogram(generator):
    image, _ = sign_image("I WILL HELP YOU")
    (ins, *_) = generator.generate(_seed(image, "O2", "Safe"), SAFE_TO_UNSAFE)
    assert (ins.feature, ins.replacement, ins.direction) == ("HELP", "HURT", SAFE_TO_UNSAFE)
    assert ins.target_rating == "Unsafe"
    pic, _ = pictogram_image("spoon", color=(0, 0, 0), plate=(255, 255, 255))
    (sym, *_) = generator.generate(_seed(pic, "O2", "Safe"), SAFE_TO_UNSAFE)
    assert (sym.feature, sym.replacement) == ("spoon", "knife")


def test_safe_to_unsafe_adds_a_sign_where_there_is_nothing_to_swap(generator):
    photo = plain_photos(1)[0]
    seed = _seed(photo, "O6", "Safe")
    (ins, *_) = generator.generate(seed, SAFE_TO_UNSAFE)
    assert (ins.edit_kind, ins.feature_kind) == ("add", "text")
    assert ins.replacement in load_lexicon().category("O6").add
    x0, y0, x1, y1 = ins.region
    assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
    assert generator.generate(seed, SAFE_TO_UNSAFE) == [ins]  # deterministic


@pytest.mark.slow
def test_demo_seeds_get_instructions_naming_their_feature(generator, demo_subset):  # noqa: F811
    """Ground truth is read here (evaluation), never by the generator."""
    root, rows = demo_subset
    text = [r for r in rows if r["rating"] == "unsafe" and r["feature_kind"] == "text"]
    ok = 0
    for row in text:
        found = grounded_instructions(generator, root, row, UNSAFE_TO_SAFE)
        ok += bool(found) and found[0].feature.upper() == row["offending_word"]
    assert ok / len(text) >= 0.95, f"{ok}/{len(text)} text seeds named their offending word"
    safe = [r for r in rows if r["rating"] == "safe"]
    kinds = {r["feature_kind"]: set() for r in safe}
    for row in safe:
        found = grounded_instructions(generator, root, row, SAFE_TO_UNSAFE)
        assert found, row["file_name"]
        kinds[row["feature_kind"]].add(found[0].edit_kind)
    assert kinds["none"] == {"add"} and kinds["symbol"] == {"replace"}
