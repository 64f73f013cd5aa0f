"""Benchmark the CPU path on the whole demo: OCR, grounded instructions, classical edits.

Generates all 9 demo categories into a temporary folder, then measures (one process):

* OCR time per image with the tuned settings, and with RapidOCR's defaults on a subset
  (``--compare-default N``), and the read rate of each text seed's one-word-differs word;
* grounded instruction throughput (seeds/s, both directions, every seed of the right rating);
* classical edit throughput (edits/s);
* text flip rate (OCR of the edited image reads the replacement and no longer the offending
  word) and locality rate (no changed pixel outside the ground-truth feature box grown by
  3 px), over all unsafe text seeds;
* pictogram detection rate (the generator names the drawn pictogram), replacement rate (the
  detector then finds the benign one and not the unsafe one) and locality, over all unsafe
  pictogram seeds; detections on the 'none' seeds and on plain photos (false positives);
* total seconds.

The ground truth is read here, by the evaluation, never by the code under test.

    python bench/classical_edit.py [--compare-default 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _load(root: Path, row: dict) -> Image.Image:
    with Image.open(root / row["category_id"] / row["file_name"]) as im:
        return im.convert("RGB")


def _outside(before: Image.Image, after: Image.Image, box: list[int], pad: int = 3) -> int:
    changed = np.any(np.asarray(before) != np.asarray(after), axis=2)
    x0, y0, x1, y1 = box
    inside = np.zeros_like(changed)
    inside[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = True
    return int((changed & ~inside).sum())


def _rate(k: int, n: int) -> str:
    return f"{k}/{n} = {k / n:.1%}" if n else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-default", type=int, default=30, metavar="N",
                        help="also time RapidOCR's default settings on N text seeds (0: skip)")
    parser.add_argument("--keep", type=Path, default=None, help="write the demo here and keep it")
    parser.add_argument("--seed", type=int, default=0, help="edit candidate seed")
    args = parser.parse_args()

    from spairs_assets.config import SpairsConfig
    from spairs_assets.editing.classical import from_config as editor_from_config
    from spairs_assets.ids import image_id
    from spairs_assets.instructions.base import SAFE_TO_UNSAFE, UNSAFE_TO_SAFE, SeedImage
    from spairs_assets.instructions.grounded import from_config as generator_from_config
    from spairs_assets.sources.demo import _background, background_names, generate_demo
    from spairs_assets.vision.ocr import find_words, ocr_engine, read_text
    from spairs_assets.vision.symbols import detect_symbols

    began = time.perf_counter()
    root = args.keep or Path(tempfile.mkdtemp(prefix="spairs-bench-"))
    t = time.perf_counter()
    rows = generate_demo(root)
    print(f"demo: {len(rows)} seeds in 9 categories generated in {time.perf_counter() - t:.1f} s")

    def seed(row: dict) -> SeedImage:
        img = _load(root, row)
        return SeedImage(image_id(np.asarray(img)), row["category_id"], row["category_id"],
                         row["category_id"], "Unsafe" if row["rating"] == "unsafe" else "Safe",
                         img)

    # ---- OCR -------------------------------------------------------------------------------
    text_rows = [r for r in rows if r["feature_kind"] == "text"]
    images = {id(r): _load(root, r) for r in text_rows}
    t = time.perf_counter()
    ocr_engine()
    print(f"OCR engine load: {time.perf_counter() - t:.2f} s")
    read_text(images[id(text_rows[0])])  # warm-up
    hits = 0
    t = time.perf_counter()
    for r in text_rows:
        hits += bool(find_words(read_text(images[id(r)]),
                                [r["offending_word"] or r["benign_word"]]))
    ocr_s = (time.perf_counter() - t) / len(text_rows)
    print(f"OCR (tuned: det limit max 960, no angle classifier, 1 thread): {ocr_s:.3f} s/image, "
          f"word read rate {_rate(hits, len(text_rows))}")
    if args.compare_default:
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        subset = text_rows[:args.compare_default]
        engine(np.asarray(images[id(subset[0])])[:, :, ::-1].copy())
        hits_d = 0
        t = time.perf_counter()
        for r in subset:
            res, _ = engine(np.ascontiguousarray(np.asarray(images[id(r)])[:, :, ::-1]),
                            return_word_box=True)
            txt = "".join(x[1] for x in (res or [])).replace(" ", "").upper()
            hits_d += (r["offending_word"] or r["benign_word"]) in txt
        d_s = (time.perf_counter() - t) / len(subset)
        print(f"OCR (RapidOCR defaults: det limit min 736, angle classifier): {d_s:.3f} s/image "
              f"on {len(subset)} seeds, word read rate {_rate(hits_d, len(subset))} "
              f"-> {d_s / ocr_s:.1f}x faster")
    del images

    # ---- instructions ------------------------------------------------------------------------
    config = SpairsConfig()
    generator = generator_from_config(config)
    editor = editor_from_config(config)
    instructions: dict[tuple[str, str, str], list] = {}
    t = time.perf_counter()
    n_items = 0
    for r in rows:
        direction = UNSAFE_TO_SAFE if r["rating"] == "unsafe" else SAFE_TO_UNSAFE
        instructions[(r["category_id"], r["file_name"], direction)] = \
            generator.generate(seed(r), direction)
        n_items += 1
    gen_s = time.perf_counter() - t
    print(f"grounded instructions: {n_items} seeds in {gen_s:.1f} s = "
          f"{n_items / gen_s:.2f} seeds/s ({gen_s / n_items:.3f} s/seed)")
    kinds: dict[str, int] = {}
    for (_, _, d), found in instructions.items():
        k = f"{d}:{found[0].edit_kind}:{found[0].feature_kind}" if found else f"{d}:none"
        kinds[k] = kinds.get(k, 0) + 1
    print("  first instruction per seed:", json.dumps(dict(sorted(kinds.items()))))

    # ---- edits -------------------------------------------------------------------------------
    edit_time, n_edits, failures = 0.0, 0, 0
    flips = local = found_text = 0
    unsafe_text = [r for r in rows if r["rating"] == "unsafe" and r["feature_kind"] == "text"]
    for r in unsafe_text:
        found = instructions[(r["category_id"], r["file_name"], UNSAFE_TO_SAFE)]
        if not found:
            continue
        ins = found[0]
        found_text += ins.feature_kind == "text" and \
            ins.feature.replace(" ", "").upper() == r["offending_word"]
        image = _load(root, r)
        t = time.perf_counter()
        try:
            result = editor.edit(image, ins, args.seed)
        except Exception as exc:  # noqa: BLE001 - a failed edit is a data point
            failures += 1
            print(f"  edit failed {r['category_id']}/{r['file_name']}: {exc}")
            continue
        edit_time += time.perf_counter() - t
        n_edits += 1
        lines = read_text(result.image)
        flips += bool(find_words(lines, [ins.replacement])) and \
            not find_words(lines, [r["offending_word"]])
        local += _outside(image, result.image, r["feature_box"]) == 0
    print(f"text seeds: offending word named {_rate(found_text, len(unsafe_text))}, "
          f"flip {_rate(flips, len(unsafe_text))}, locality {_rate(local, len(unsafe_text))}")

    unsafe_sym = [r for r in rows if r["rating"] == "unsafe" and r["feature_kind"] == "symbol"]
    detected = replaced = sym_local = 0
    for r in unsafe_sym:
        s = seed(r)
        found = generator.symbol_instructions(s, UNSAFE_TO_SAFE)
        if not found or found[0].feature != r["symbol"]:
            continue
        detected += 1
        t = time.perf_counter()
        try:
            result = editor.edit(s.image, found[0], args.seed)
        except Exception as exc:  # noqa: BLE001
            failures += 1
            print(f"  edit failed {r['category_id']}/{r['file_name']}: {exc}")
            continue
        edit_time += time.perf_counter() - t
        n_edits += 1
        names = [d.name for d in detect_symbols(result.image)]
        replaced += found[0].replacement in names and r["symbol"] not in names
        sym_local += _outside(s.image, result.image, r["feature_box"]) == 0
    print(f"pictogram seeds: detected {_rate(detected, len(unsafe_sym))}, "
          f"replaced {_rate(replaced, len(unsafe_sym))}, "
          f"locality {_rate(sym_local, len(unsafe_sym))}")

    safe_ok = safe_n = 0
    for r in rows:
        if r["rating"] != "safe":
            continue
        found = instructions[(r["category_id"], r["file_name"], SAFE_TO_UNSAFE)]
        if not found:
            continue
        safe_n += 1
        image = _load(root, r)
        t = time.perf_counter()
        try:
            editor.edit(image, found[0], args.seed)
            safe_ok += 1
        except Exception as exc:  # noqa: BLE001
            failures += 1
            print(f"  edit failed {r['category_id']}/{r['file_name']}: {exc}")
        edit_time += time.perf_counter() - t
        n_edits += 1
    print(f"safe -> unsafe edits applied: {_rate(safe_ok, safe_n)}")
    print(f"classical edits: {n_edits} in {edit_time:.1f} s = {n_edits / edit_time:.1f} edits/s "
          f"({edit_time / n_edits * 1000:.0f} ms/edit), {failures} failed")

    # ---- false positives ---------------------------------------------------------------------
    none_rows = [r for r in rows if r["feature_kind"] == "none"]
    fp_none = sum(len(detect_symbols(_load(root, r))) for r in none_rows)
    plain = []
    for i, _ in enumerate(background_names()):
        for k in range(2):
            plain.append(_background(random.Random(10_000 + 17 * i + k))[0])
    t = time.perf_counter()
    fp_plain = sum(len(detect_symbols(p)) for p in plain)
    det_s = (time.perf_counter() - t) / len(plain)
    print(f"pictogram false positives: {fp_none} on {len(none_rows)} 'none' seeds, "
          f"{fp_plain} on {len(plain)} plain photos ({det_s:.3f} s/image)")

    print(f"total: {time.perf_counter() - began:.1f} s")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
