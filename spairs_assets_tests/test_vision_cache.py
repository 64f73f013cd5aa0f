"""The vision memo: edits are read incrementally and give what a full read gives."""

import numpy as np
import pytest

from spairs_assets.vision.cache import VisionMemo
from spairs_assets.vision.ocr import normalise_word, read_text
from spairs_assets.vision.symbols import detect_symbols
from spairs_assets_tests.fixtures_demo import demo_subset, grounded_instructions, image_of  # noqa: F401

pytestmark = pytest.mark.slow


def _words(lines):
    return normalise_word("".join(line.text for line in lines))


@pytest.fixture(scope="module")
def edits(demo_subset):
    from spairs_assets.config import load_config
    from spairs_assets.editing.classical import from_config as classical
    from spairs_assets.instructions.grounded import from_config as grounded

    config = load_config()
    generator, editor = grounded(config), classical(config)
    root, rows = demo_subset
    out = []
    for row in [r for r in rows if r["rating"] == "unsafe"][:14]:
        source = image_of(root, row)
        for instruction in grounded_instructions(generator, root, row, "unsafe_to_safe")[:1]:
            out.append((source, editor.edit(source, instruction, seed=0).image))
    return out


def test_incremental_reads_equal_full_reads(edits):
    memo = VisionMemo()
    same_text = same_symbols = 0
    for i, (source, edited) in enumerate(edits):
        memo.register_edit(f"e{i}", f"s{i}", lambda s=source: s)
        incremental = memo.ocr(edited, f"e{i}")
        same_text += _words(incremental) == _words(read_text(edited))  # same words, same order
        names = sorted(d.name for d in memo.symbols(edited, f"e{i}"))
        same_symbols += names == sorted(d.name for d in detect_symbols(edited))
    assert len(edits) >= 10
    assert same_text == len(edits)
    assert same_symbols == len(edits)


def test_identical_edit_reuses_the_source_reading(edits):
    memo = VisionMemo()
    source = edits[0][0]
    memo.register_edit("copy", "src", lambda: source)
    assert [l.text for l in memo.ocr(source.copy(), "copy")] == [l.text for l in memo.ocr(source, "src")]


def test_unregistered_or_large_changes_are_read_in_full(edits):
    memo = VisionMemo()
    source, edited = edits[0]
    noisy = np.clip(np.asarray(edited).astype(int) + 40, 0, 255).astype(np.uint8)
    memo.register_edit("noisy", "src", lambda: source)
    assert memo._changed_box(noisy, "noisy") is None  # whole image changed: full read
    assert memo._changed_box(np.asarray(edited), "unregistered") is None


def test_results_persist_in_a_store(tmp_path, edits):
    from spairs_assets.storage import ItemCache, Storage

    store = ItemCache(Storage(tmp_path), "vision")
    first = VisionMemo()
    first.use_store(store)
    lines = first.ocr(edits[0][0], "img")
    second = VisionMemo()
    second.use_store(store)
    assert [l.text for l in second.ocr(edits[0][0], "img")] == [l.text for l in lines]
    assert store.hits == 1
