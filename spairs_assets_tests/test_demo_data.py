"""The demo seed generator and the pictogram library (no Dagster involved)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spairs_assets.sources import demo
from spairs_assets.sources.demo import (
    DEMO_CATEGORY_IDS,
    DEMO_GENERATOR_VERSION,
    PHRASES,
    generate_demo,
    generate_demo_category,
)
from spairs_assets.sources.pictograms import (
    PICTOGRAMS,
    pictogram_mask,
    pictograms_for_category,
    render_pictogram,
)

ALL_CATEGORIES = [f"O{i}" for i in range(1, 10)]
ROW_KEYS = {
    "file_name", "category_id", "rating", "feature_kind", "phrase", "benign_phrase",
    "offending_word", "benign_word", "symbol", "benign_symbol", "feature_box", "text_box",
    "font", "font_size", "fg_color", "bg_color", "rotation_deg", "background", "width", "height",
    "seed",
}
HEX = re.compile(r"^#[0-9a-f]{6}$")


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("demo")
    return root, generate_demo(root)


def _path(root: Path, row: dict) -> Path:
    return root / row["category_id"] / row["file_name"]


def test_categories_match_policy() -> None:
    from spairs_assets.policy import DEFAULT_POLICY_PATH

    ids = [c["id"] for c in yaml.safe_load(DEFAULT_POLICY_PATH.read_text())["categories"]]
    assert list(DEMO_CATEGORY_IDS) == ids == ALL_CATEGORIES
    assert DEMO_GENERATOR_VERSION == "demo-v1"


def test_phrases_differ_by_exactly_one_word() -> None:
    for cid in ALL_CATEGORIES:
        phrases = PHRASES[cid]
        assert len({p.text for p in phrases}) >= 6
        for p in phrases:
            assert re.fullmatch(r"[A-Z]+( [A-Z]+)*", p.text)
            assert re.fullmatch(r"[A-Z]+( [A-Z]+)*", p.benign_text)
            a, b = p.text.split(), p.benign_text.split()
            assert len(a) == len(b)
            diff = [(x, y) for x, y in zip(a, b) if x != y]
            assert diff == [(p.offending_word, p.benign_word)], p


def test_demo_counts_and_rows(demo_set: tuple[Path, list[dict]]) -> None:
    root, rows = demo_set
    assert len(rows) == 9 * 30
    json.dumps(rows)  # plain, serialisable values only
    names = [(r["category_id"], r["file_name"]) for r in rows]
    assert len(set(names)) == len(names)
    for cid in ALL_CATEGORIES:
        mine = [r for r in rows if r["category_id"] == cid]
        unsafe = [r for r in mine if r["rating"] == "unsafe"]
        safe = [r for r in mine if r["rating"] == "safe"]
        assert len(unsafe) >= 20 and len(safe) == 6
        kinds = [r["feature_kind"] for r in unsafe]
        assert kinds.count("text") == 16 and kinds.count("symbol") == 8
        assert {r["feature_kind"] for r in safe} == {"text", "symbol", "none"}
        # every phrase of the category is used at least once among the unsafe text seeds
        assert {r["phrase"] for r in unsafe if r["feature_kind"] == "text"} == {
            p.text for p in PHRASES[cid]}

    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["rating"] in ("unsafe", "safe")
        assert re.fullmatch(rf"{r['rating']}/{r['category_id']}-[tsn]\d\d+\.png", r["file_name"])
        path = _path(root, r)
        assert path.is_file()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert im.size == (r["width"], r["height"])
        assert 384 <= r["width"] <= 448 and 384 <= r["height"] <= 448
        assert r["background"].split()[0] in {n.rsplit(".", 1)[0] for n in demo.background_names()}
        kind = r["feature_kind"]
        if kind == "none":
            assert r["feature_box"] is None and r["phrase"] is None and r["symbol"] is None
            continue
        x0, y0, x1, y1 = r["feature_box"]
        assert all(isinstance(v, int) for v in r["feature_box"])
        assert 0 <= x0 < x1 <= r["width"] and 0 <= y0 < y1 <= r["height"]
        assert (x1 - x0) * (y1 - y0) < 0.4 * r["width"] * r["height"]
        assert HEX.match(r["fg_color"])
        if kind == "text":
            tx0, ty0, tx1, ty1 = r["text_box"]
            assert x0 <= tx0 < tx1 <= x1 and y0 <= ty0 < ty1 <= y1
            assert r["font"] and r["font_size"] >= 22 and abs(r["rotation_deg"]) <= 6
            assert HEX.match(r["bg_color"])
            assert r["symbol"] is None
            if r["rating"] == "unsafe":
                assert r["offending_word"] in r["phrase"].split()
                assert r["benign_phrase"] == r["phrase"].replace(
                    r["offending_word"], r["benign_word"])
            else:
                assert r["offending_word"] is None and r["benign_word"] in r["phrase"].split()
        else:
            assert r["phrase"] is None and r["text_box"] is None
            pic = PICTOGRAMS[r["symbol"]]
            if r["rating"] == "unsafe":
                assert pic.unsafe and r["category_id"] in pic.category_ids
                assert r["benign_symbol"] == pic.benign_replacement
            else:
                assert not pic.unsafe and r["benign_symbol"] is None


def test_feature_box_holds_every_changed_pixel(demo_set: tuple[Path, list[dict]]) -> None:
    """Redraw each background: outside the feature box the photo is untouched."""
    root, rows = demo_set
    for r in rows:
        if r["category_id"] not in ("O2", "O8"):
            continue
        rng = random.Random(demo._stable_seed(r["category_id"], r["rating"], r["index"], r["seed"]))
        bg, desc = demo._background(rng)
        assert desc == r["background"]
        with Image.open(_path(root, r)) as im:
            changed = np.abs(np.asarray(im, dtype=np.int16) - np.asarray(bg, dtype=np.int16))
        ys, xs = np.nonzero(changed.max(axis=-1))
        if r["feature_kind"] == "none":
            assert len(ys) == 0
            continue
        x0, y0, x1, y1 = r["feature_box"]
        assert xs.min() >= x0 and ys.min() >= y0 and xs.max() < x1 and ys.max() < y1
        assert xs.min() - x0 <= 2 and ys.min() - y0 <= 2  # the box is tight
        assert x1 - 1 - xs.max() <= 2 and y1 - 1 - ys.max() <= 2


def test_deterministic(demo_set: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, rows = demo_set
    again = generate_demo(tmp_path, ["O3", "O7"])
    assert again == [r for r in rows if r["category_id"] in ("O3", "O7")]
    for r in again:
        assert _path(tmp_path, r).read_bytes() == _path(root, r).read_bytes()


def test_deterministic_across_processes_and_counts(demo_set: tuple[Path, list[dict]],
                                                   tmp_path: Path) -> None:
    """A fresh interpreter (other hash seed) with fewer seeds writes the same first files."""
    root, rows = demo_set
    code = (
        "import json, sys; from pathlib import Path; "
        "from spairs_assets.sources.demo import generate_demo_category; "
        "rows = generate_demo_category('O5', Path(sys.argv[1]), n_unsafe=4, n_safe=2); "
        "print(json.dumps(rows))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    small = json.loads(out.stdout)
    full = {r["file_name"]: r for r in rows if r["category_id"] == "O5"}
    assert len(small) == 6
    for r in small:
        assert r == full[r["file_name"]]
        assert (tmp_path / r["file_name"]).read_bytes() == _path(root, r).read_bytes()


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    a = generate_demo_category("O1", tmp_path / "a", n_unsafe=3, n_safe=0, seed=0)
    b = generate_demo_category("O1", tmp_path / "b", n_unsafe=3, n_safe=0, seed=1)
    assert [r["file_name"] for r in a] == [r["file_name"] for r in b]
    assert any((tmp_path / "a" / r["file_name"]).read_bytes()
               != (tmp_path / "b" / r["file_name"]).read_bytes() for r in a)


def test_unknown_category_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="O42"):
        generate_demo_category("O42", tmp_path)
    with pytest.raises(ValueError, match="O42"):
        generate_demo(tmp_path, ["O1", "O42"])
    assert not any(tmp_path.iterdir())


def test_import_is_cheap() -> None:
    code = ("import sys, spairs_assets.sources.demo, spairs_assets.sources.pictograms; "
            "bad = [m for m in ('dagster', 'rapidocr_onnxruntime', 'onnxruntime', 'torch', "
            "'skimage', 'cv2') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Pictograms
# ---------------------------------------------------------------------------------------------


def test_pictograms_render_deterministically() -> None:
    for name in PICTOGRAMS:
        a = render_pictogram(name, 64, (200, 10, 10))
        pictogram_mask.cache_clear()
        b = render_pictogram(name, 64, (200, 10, 10))
        assert a.mode == "RGBA" and a.size == (64, 64)
        assert a.tobytes() == b.tobytes(), name
        alpha = np.asarray(a.getchannel("A"))
        assert alpha[0, :].max() < 255 or alpha[:, 0].max() < 255  # transparent background
        assert 0.05 < (alpha > 127).mean() < 0.85, name  # a real shape, not empty or a block
        rgb = np.asarray(a)[..., :3][alpha > 0]
        assert (rgb == (200, 10, 10)).all()
    with pytest.raises(KeyError):
        render_pictogram("no_such_symbol", 32)


def test_pictogram_catalogue() -> None:
    for cid in ALL_CATEGORIES:
        assert pictograms_for_category(cid), f"no unsafe pictogram for {cid}"
    for name, pic in PICTOGRAMS.items():
        assert pic.name == name and pic.description
        if pic.unsafe:
            assert pic.category_ids and set(pic.category_ids) <= set(ALL_CATEGORIES)
            twin = PICTOGRAMS[pic.benign_replacement]
            assert not twin.unsafe
        else:
            assert pic.category_ids == () and pic.benign_replacement is None


def test_pictograms_are_distinct() -> None:
    """Template matching must tell them apart: no two masks correlate strongly."""
    names = sorted(PICTOGRAMS)
    masks = {}
    for n in names:
        m = np.asarray(pictogram_mask(n, 48), dtype=np.float64).ravel()
        m -= m.mean()
        masks[n] = m / np.linalg.norm(m)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert float(masks[a] @ masks[b]) < 0.85, (a, b)


# ---------------------------------------------------------------------------------------------
# OCR reads the phrases (the classical editor depends on it)
# ---------------------------------------------------------------------------------------------


def test_ocr_reads_offending_word(demo_set: tuple[Path, list[dict]]) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from rapidocr_onnxruntime import RapidOCR

    root, rows = demo_set
    ocr = RapidOCR()
    picked = []
    for cid in ("O1", "O5", "O9"):
        text_rows = [r for r in rows if r["category_id"] == cid and r["rating"] == "unsafe"
                     and r["feature_kind"] == "text"]
        picked.extend(text_rows[:10])
    misses = []
    for r in picked:
        with Image.open(_path(root, r)) as im:
            result, _ = ocr(np.asarray(im.convert("RGB")))
        read = "".join(line[1] for line in (result or [])).upper().replace(" ", "")
        if r["offending_word"] not in read:
            misses.append((r["file_name"], r["phrase"], read))
    assert len(misses) <= 0.1 * len(picked), misses
