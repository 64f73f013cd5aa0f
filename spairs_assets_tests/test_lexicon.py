"""The policy lexicon: loading, validation, derived mappings, fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spairs_assets.lexicon import DEFAULT_LEXICON_PATH, LexiconError, load_lexicon
from spairs_assets.policy import load_policy
from spairs_assets.sources.pictograms import PICTOGRAMS


def _write(tmp_path: Path, data: dict, name: str = "lex.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _minimal() -> dict:
    return {"name": "t", "version": 1, "categories": {
        "O2": {"replace": {"hurt": "help", "Kill": "hug"}, "add": ["I will hurt you"]}}}


def test_builtin_lexicon_covers_every_policy_category():
    lex = load_lexicon()
    policy_ids = [c.id for c in load_policy().categories]
    assert lex.category_ids == policy_ids
    for cid in policy_ids:
        cat = lex.category(cid)
        assert len(cat.replace) >= 8, cid
        assert cat.add, cid
        assert cat.pictograms, cid
        for unsafe, benign in cat.pictograms.items():
            assert PICTOGRAMS[unsafe].unsafe and not PICTOGRAMS[benign].unsafe
            assert cid in PICTOGRAMS[unsafe].category_ids
        for word, benign in cat.replace.items():
            assert benign not in cat.replace, (cid, word, benign)


def test_builtin_lexicon_knows_the_demo_words():
    """Evaluation-side check: the demo's offending words are ordinary policy words, so a
    plausible lexicon lists them under their category (it was written independently)."""
    from spairs_assets.sources.demo import PHRASES

    lex = load_lexicon()
    missing = [(cid, p.offending_word) for cid, phrases in PHRASES.items() for p in phrases
               if p.offending_word not in lex.category(cid).replace]
    assert missing == []
    # ... and more than those: the lexicon is not the demo's list.
    demo_words = {p.offending_word for phrases in PHRASES.values() for p in phrases}
    assert len(set(lex.offending_index) - demo_words) >= 40


def test_entries_are_normalised_and_reverse_mappings_derived(tmp_path):
    lex = load_lexicon(_write(tmp_path, _minimal()))
    cat = lex.category("O2")
    assert cat.replace == {"HURT": "HELP", "KILL": "HUG"}
    assert cat.add == ("I WILL HURT YOU",)
    assert cat.reverse_words == {"HELP": "HURT", "HUG": "KILL"}
    # Pictograms default to the library's own benign twins.
    assert cat.pictograms == {"fist": "heart", "knife": "spoon"}
    assert cat.reverse_pictograms == {"heart": "fist", "spoon": "knife"}
    # A category the lexicon does not list has an empty lexicon, not an error.
    assert lex.category("O7").replace == {}


def test_fingerprint_follows_content_not_formatting(tmp_path):
    a = load_lexicon(_write(tmp_path, _minimal(), "a.yaml"))
    reordered = _minimal()
    reordered["categories"]["O2"]["replace"] = {"KILL": "HUG", "HURT": "HELP"}
    text = "# a comment\n" + yaml.safe_dump(reordered)
    (tmp_path / "b.yaml").write_text(text)
    b = load_lexicon(tmp_path / "b.yaml")
    assert a.fingerprint == b.fingerprint
    changed = _minimal()
    changed["categories"]["O2"]["replace"]["hurt"] = "HEAL"
    c = load_lexicon(_write(tmp_path, changed, "c.yaml"))
    assert c.fingerprint != a.fingerprint
    assert load_lexicon().fingerprint == load_lexicon(DEFAULT_LEXICON_PATH).fingerprint


def test_an_edited_file_is_read_again(tmp_path):
    path = _write(tmp_path, _minimal())
    first = load_lexicon(path).fingerprint
    data = _minimal()
    data["categories"]["O2"]["replace"]["STAB"] = "HUG"
    import os
    import time

    path.write_text(yaml.safe_dump(data))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert load_lexicon(path).fingerprint != first


@pytest.mark.parametrize(("patch", "message"), [
    ({"replace": {"HURT": "KILL", "KILL": "HUG"}}, "itself offending"),
    ({"pictograms": {"unicorn": "heart"}}, "unknown pictogram"),
    ({"pictograms": {"heart": "star"}}, "benign in the library"),
    ({"pictograms": {"knife": "pistol"}}, "is unsafe"),
    ({"add": ["HAVE A NICE DAY"]}, "contains none"),
    ({"reverse": {"HELLO": "SMASH"}}, "not a `replace` word"),
    ({"replace": {"HURT!": "HELP"}}, "letters/digits"),
])
def test_bad_entries_fail_with_a_message_naming_them(tmp_path, patch, message):
    data = _minimal()
    data["categories"]["O2"].update(patch)
    with pytest.raises(LexiconError, match=message) as err:
        load_lexicon(_write(tmp_path, data))
    assert "instructions.grounded.lexicon" in str(err.value)


def test_missing_or_malformed_files_fail_early(tmp_path):
    with pytest.raises(LexiconError, match="not found"):
        load_lexicon(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(LexiconError, match="mapping"):
        load_lexicon(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(LexiconError, match="YAML"):
        load_lexicon(tmp_path / "broken.yaml")
