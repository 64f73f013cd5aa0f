"""`spairs lineage` latency over a synthetic catalogue of one million pairs (DESIGN.md section 7).

Builds (once, cached in ``--root``) every table the lineage audit reads, for ``--pairs`` curated
pairs spread over the 9 category partitions, through `TableStore.write` so the layout is the
real one (one Parquet file per table per partition, rows sorted by id, `tables.ROW_GROUP_SIZE`-row groups, zstd):

* source_images (one per instruction plus 10% seeds without a feature), edit_instructions,
* edited_images: 2 candidates per instruction plus one null edit per source, with edit ids and
  seeds derived exactly as the editing stage derives them (so the audit's derived-id path is
  exercised), verification_scores (one per edit, with ~1.4 KB verdict JSON per image),
* curated_pairs (80% accepted, 60/20/20 splits), benchmark_results (4 models x 2 members for
  every accepted test pair), guard_training_pairs (every accepted train pair in its category's
  deploy probe, 2% of them in 20 experiment probes as well).

Ids are random sha256-like hex, so the sort order and row-group statistics are realistic; the
long JSON columns carry random digits so they do not compress unrealistically well.

Then it times `pair_lineage` for ``--lookups`` random pair ids: the first call on a fresh
connection (cold: Parquet footers not yet cached) separately, then warm calls on one connection;
then the same for 8-hex-digit prefixes, and the fallback path (edit ids not derivable). Prints
p50/p95/max in ms and whether the budget (100 ms) is met.

    python bench/lineage_lookup.py [--pairs 1000000] [--root /tmp/spairs-lineage-bench] [--lookups 200]

`TableStore.write` validates rows through `to_table`, which converts Arrow input to Python dicts
(~10 s per 100k wide rows); the bench swaps in a vectorised equivalent with the same checks
(declared columns only, non-null fields non-null, cast to the declared schema) for the build, so
sorting, row groups, compression and the atomic write are the real code.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spairs_assets.ids import hash_parts
from spairs_assets.lineage.audit import LineageIndex, pair_lineage
from spairs_assets.storage import Storage, TableStore
from spairs_assets.storage import schemas as schemas_mod
from spairs_assets.storage import tables as tables_mod

CATEGORIES = ("O1_hate", "O2_violence", "O3_sexual", "O4_nudity", "O5_criminal",
              "O6_weapons_substances", "O7_self_harm", "O8_animal_cruelty", "O9_disasters")
BUDGET_MS = 100.0
BASE_SEED = 0
EDITOR_ID = "classical"
PARAMS = {"inpaint_radius": 5, "margin": 2}
PARAMS_JSON = json.dumps(PARAMS, sort_keys=True, separators=(",", ":"))
MODELS = ("ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram")
RUN_IDS = [f"{i:08x}-f5a5-46e4-9af9-fdd4219f6228" for i in range(3)]
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


# ---- vectorised column builders -------------------------------------------------------------
def strings_from_matrix(chars: np.ndarray) -> pa.Array:
    """A string array from an (n, width) uint8 matrix of ASCII bytes (fixed width)."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(
        np.ascontiguousarray(chars).tobytes())).cast(pa.string())


def random_hex(rng: np.random.Generator, n: int, width: int = 64) -> pa.Array:
    return strings_from_matrix(HEX[rng.integers(0, 16, (n, width), dtype=np.uint8)])


def templated(rng: np.random.Generator, n: int, template: str, noise: float = 0.15) -> pa.Array:
    """n copies of `template` (ASCII) with every '#' replaced by a random digit, plus `noise`
    of the other digit positions randomised, so zstd does not see n identical strings."""
    raw = np.frombuffer(template.encode(), dtype=np.uint8)
    chars = np.tile(raw, (n, 1))
    holes = np.flatnonzero(raw == ord("#"))
    if holes.size:
        chars[:, holes] = DIGITS[rng.integers(0, 10, (n, holes.size), dtype=np.uint8)]
    digit_pos = np.flatnonzero((raw >= ord("0")) & (raw <= ord("9")))
    if digit_pos.size and noise:
        pick = digit_pos[rng.random(digit_pos.size) < noise * 4]
        if pick.size:
            chars[:, pick] = DIGITS[rng.integers(0, 10, (n, pick.size), dtype=np.uint8)]
    return strings_from_matrix(chars)


def concat(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def const(value, n: int, type_: pa.DataType | None = None) -> pa.Array:
    return pa.array([value], type_ or pa.string()).take(np.zeros(n, dtype=np.int64))


def choice(rng: np.random.Generator, values: list, n: int, p=None) -> pa.Array:
    idx = rng.choice(len(values), size=n, p=p)
    return pa.array(values).take(idx)


def boxes(rng: np.random.Generator, n: int) -> pa.Array:
    x0 = rng.integers(0, 300, n)
    y0 = rng.integers(0, 300, n)
    flat = np.stack([x0, y0, x0 + rng.integers(10, 200, n), y0 + rng.integers(10, 80, n)], 1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.int32).ravel()), 4).cast(
        pa.list_(pa.int32(), 4))


# ---- derived ids, exactly as the editing stage computes them --------------------------------
def candidate_seed(base_seed: int, instruction_id: str, candidate: int) -> int:
    digest = hashlib.sha256(f'["seed",{base_seed},"{instruction_id}",{candidate}]'.encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def edit_ids_for(instruction_ids: list[str], candidate: int) -> tuple[list[str], list[int]]:
    ids, seeds = [], []
    for iid in instruction_ids:
        seed = candidate_seed(BASE_SEED, iid, candidate)
        seeds.append(seed)
        ids.append(hashlib.sha256(
            f'["edit","{iid}","{EDITOR_ID}",{PARAMS_JSON},{seed}]'.encode()).hexdigest())
    return ids, seeds


def null_edit_ids_for(source_ids: list[str]) -> tuple[list[str], list[int]]:
    ids, seeds = [], []
    for sid in source_ids:
        seed = candidate_seed(BASE_SEED, sid, 0)
        seeds.append(seed)
        ids.append(hashlib.sha256(
            f'["null-edit","{sid}","{EDITOR_ID}",{PARAMS_JSON},{seed}]'.encode()).hexdigest())
    return ids, seeds


def _check_id_recipes() -> None:
    from spairs_assets.editing.stage import candidate_seed as real_seed
    from spairs_assets.ids import edit_id

    iid = "ab" * 32
    assert candidate_seed(BASE_SEED, iid, 1) == real_seed(BASE_SEED, iid, 1)
    [eid], [seed] = edit_ids_for([iid], 1)
    assert eid == edit_id(iid, EDITOR_ID, PARAMS, seed)
    [nid], [nseed] = null_edit_ids_for([iid])
    assert nid == hash_parts("null-edit", iid, EDITOR_ID, PARAMS, nseed)


# ---- fast schema-checked conversion (same checks as tables.to_table, vectorised) -------------
def fast_to_table(table: str, rows, **ledger: str) -> pa.Table:
    if not isinstance(rows, pa.Table):
        return _real_to_table(table, rows, **ledger)
    schema = schemas_mod.schema_for(table)
    extra = set(rows.column_names) - set(schema.names)
    if extra:
        raise tables_mod.SchemaError(f"{table}: undeclared columns {sorted(extra)}")
    n = rows.num_rows
    columns = []
    for field in schema:
        if field.name in ledger:
            col = pa.array([ledger[field.name]], pa.string()).take(np.zeros(n, dtype=np.int64))
        elif field.name in rows.column_names:
            col = rows.column(field.name).cast(field.type)
        else:
            col = pa.nulls(n, field.type)
        if not field.nullable and col.null_count:
            raise tables_mod.SchemaError(f"{table}: column {field.name!r} must not be null")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


_real_to_table = tables_mod.to_table


@contextlib.contextmanager
def fast_writes():
    tables_mod.to_table = fast_to_table
    try:
        yield
    finally:
        tables_mod.to_table = _real_to_table


# ---- the synthetic catalogue ----------------------------------------------------------------
VERDICT = (
    '{"ocr-embedding": {"category": "NA: None applying", "details": {"scores": {"O1": 0.####, '
    '"O2": 0.####, "O3": 0.####, "O4": 0.####, "O5": -0.####, "O6": 0.####, "O7": 0.####, '
    '"O8": 0.####, "O9": -0.####}, "text": "YOU ARE #### ####", "threshold": 0.2476}, '
    '"parse_status": "ok", "probability_unsafe": null, "rating": "Safe", "rationale": "Text '
    '\\"YOU ARE #### ####\\" is not close to any category (max cosine 0.## < 0.25).", '
    '"raw_output": null}, "ocr-lexicon": {"category": "O1: Hate, Humiliation, Harassment", '
    '"details": {"also_categories": [], "box": [###, ###, ###, ###], "matches": ["####"], "text": '
    '"YOU ARE ####", "word": "####"}, "parse_status": "ok", "probability_unsafe": null, "rating": '
    '"Unsafe", "rationale": "Text \\"YOU ARE ####\\" contains \\"####\\", listed for O1: Hate, '
    'Humiliation, Harassment.", "raw_output": null}, "open-nsfw": {"category": "NA: None applying", '
    '"details": {}, "parse_status": "ok", "probability_unsafe": 0.0###############, "rating": '
    '"Safe", "rationale": "open_nsfw P(nsfw) = 0.0# < 0.8.", "raw_output": null}, "pictogram": '
    '{"category": "NA: None applying", "details": {"symbols": [{"name": "sym-##", "score": 0.####, '
    '"box": [###, ###, ###, ###]}]}, "parse_status": "ok", "probability_unsafe": null, "rating": '
    '"Safe", "rationale": "No unsafe pictogram (found: sym-##).", "raw_output": null}}'
)
DECISION = ('{"covering": #, "safe": false, "unsafe_in_category": true, "usable": #, '
            '"votes_unsafe_any": #, "votes_unsafe_in_category": #}')
INSTRUCTION_DETAILS = (
    '{"confidence": 0.####, "fallback": false, "lexicon_category": "O#", "lexicon_word": "####", '
    '"match": {"box": [###, ###, ###, ###], "edits": 0, "end": ##, "left_boundary": true, '
    '"line_index": 0, "right_boundary": true, "start": #, "text": "####", "word": "####"}, '
    '"ocr_line": {"confidence": 0.####, "quad": [[##.0, ###.0], [###.0, ###.0], [###.0, ###.0], '
    '[##.0, ###.0]], "text": "YOU ARE ####"}, "word_ink": {"angle_deg": -0.0, "background": '
    '[###, #, ###], "box": [###, ###, ###, ###], "fill": [###, ###, ###], "letter_gap": #.#, '
    '"stem_width": #.##, "threshold": ###.##}}'
)
PROVENANCE = ('{"format": "JPEG", "mode": "RGB", "original_size": [####, ####], "exif_orientation": '
              '#, "resized_to": [###, ###], "relative_path": "seeds/batch-##/img_#######.jpg"}')
JUDGES = ('{"edited": {"covering": #, "safe": true, "unsafe_in_category": false, "usable": #, '
          '"votes_unsafe_any": #, "votes_unsafe_in_category": #}, "source": {"covering": #, '
          '"safe": false, "unsafe_in_category": true, "usable": #, "votes_unsafe_any": #, '
          '"votes_unsafe_in_category": #}}')


def build_partition(store: TableStore, category: str, n_pairs: int, rng: np.random.Generator) -> dict:
    cat_id = category.split("_")[0]
    ledger = {"run_id": RUN_IDS[0], "code_version": "0.1.0+bench"}
    n_src = int(n_pairs * 1.1)
    # sources: the first n_pairs have an instruction (status ok), the rest no feature
    src_ids = random_hex(rng, n_src)
    unsafe = rng.random(n_src) < 0.8
    rating = pa.array(np.where(unsafe, "Unsafe", "Safe"))
    store.write("source_images", category, pa.table({
        "image_id": src_ids,
        "image_path": concat("images/", pc.utf8_slice_codeunits(src_ids, 0, 2), "/", src_ids, ".png"),
        "category": const(category, n_src), "category_id": const(cat_id, n_src), "rating": rating,
        "width": rng.integers(256, 1024, n_src).astype(np.int32),
        "height": rng.integers(256, 1024, n_src).astype(np.int32),
        "source_kind": const("folder", n_src), "source_name": const("seeds", n_src),
        "source_path": templated(rng, n_src, f"/data/seeds/{category}/batch-##/img_#######.jpg"),
        "source_sha256": random_hex(rng, n_src),
        "licence": choice(rng, ["CC-BY-4.0", "CC0-1.0", None], n_src),
        "provenance": templated(rng, n_src, PROVENANCE),
    }), **ledger)

    # instructions: one per source (max_per_seed = 1)
    inst_ids = random_hex(rng, n_src)
    ok = np.arange(n_src) < n_pairs
    direction = pa.array(np.where(unsafe, "unsafe_to_safe", "safe_to_unsafe"))
    store.write("edit_instructions", category, pa.table({
        "instruction_id": inst_ids, "source_image_id": src_ids,
        "category": const(category, n_src), "category_id": const(cat_id, n_src),
        "direction": direction, "source_rating": rating,
        "target_rating": pa.array(np.where(unsafe, "Safe", "Unsafe")),
        "status": pa.array(np.where(ok, "ok", "no_feature")),
        "instruction": pc.if_else(pa.array(ok), templated(rng, n_src, 'Replace the word "####" on '
                                  'the sign with "####"; keep the font, colour, size and everything '
                                  'else unchanged.'), pa.nulls(n_src, pa.string())),
        "edit_kind": const("replace", n_src), "feature_kind": const("text", n_src),
        "feature": templated(rng, n_src, "W####"), "replacement": templated(rng, n_src, "B####"),
        "region": boxes(rng, n_src),
        "generator_id": const("grounded", n_src),
        "generator_version": const("grounded-v1+lex=4b263a8c24f2301d+ocr=6b1f9a8773e8", n_src),
        "details": templated(rng, n_src, INSTRUCTION_DETAILS),
    }), **ledger)

    # edits: 2 candidates per ok instruction + 1 null edit per source with an ok instruction
    iid_ok = inst_ids.slice(0, n_pairs).to_pylist()
    sid_ok = src_ids.slice(0, n_pairs)
    e0, s0 = edit_ids_for(iid_ok, 0)
    e1, s1 = edit_ids_for(iid_ok, 1)
    en, sn = null_edit_ids_for(sid_ok.to_pylist())
    edited0, edited1 = random_hex(rng, n_pairs), random_hex(rng, n_pairs)
    null_images = sid_ok  # the classical editor's round trip is the identity
    n_edit = 3 * n_pairs
    edit_ids = pa.array(e0 + e1 + en)
    kinds = pa.array(["edit"] * (2 * n_pairs) + ["null_edit"] * n_pairs)
    inst_col = pa.concat_arrays([inst_ids.slice(0, n_pairs)] * 2 + [pa.nulls(n_pairs, pa.string())])
    src_col = pa.concat_arrays([sid_ok] * 3)
    edited_col = pa.concat_arrays([edited0, edited1, null_images])
    store.write("edited_images", category, pa.table({
        "edit_id": edit_ids, "kind": kinds, "instruction_id": inst_col, "source_image_id": src_col,
        "category": const(category, n_edit),
        "candidate": np.repeat(np.array([0, 1, 0], dtype=np.int32), n_pairs),
        "seed": np.array(s0 + s1 + sn, dtype=np.int64), "status": const("ok", n_edit),
        "edited_image_id": edited_col,
        "edited_image_path": concat("images/", pc.utf8_slice_codeunits(edited_col, 0, 2), "/",
                                    edited_col, ".png"),
        "editor_id": const(EDITOR_ID, n_edit), "model_revision": const("classical-v1", n_edit),
        "params": const(PARAMS_JSON, n_edit),
        "package_versions": const('{"numpy":"2.4.6","opencv-python-headless":"4.14.0.94",'
                                  '"pillow":"13.0.0","rapidocr-onnxruntime":"1.4.4"}', n_edit),
        "seconds": rng.random(n_edit) * 0.05,
        "details": templated(rng, n_edit, '{"region": [###, ###, ###, ###], "working_size": [###, ###]}'),
    }), **ledger)

    ssim = 0.9 + rng.random(n_edit) * 0.1
    passed = rng.random(n_edit) < 0.85
    store.write("verification_scores", category, pa.table({
        "edit_id": edit_ids, "kind": kinds, "instruction_id": inst_col, "source_image_id": src_col,
        "edited_image_id": edited_col, "category": const(category, n_edit),
        "category_id": const(cat_id, n_edit),
        "direction": pa.concat_arrays([direction.slice(0, n_pairs)] * 2 + [pa.nulls(n_pairs, pa.string())]),
        "ssim": ssim, "psnr": 20 + rng.random(n_edit) * 10, "l1": rng.random(n_edit) * 0.01,
        "l2": rng.random(n_edit) * 0.1, "changed_fraction": rng.random(n_edit) * 0.05,
        "changed_box": boxes(rng, n_edit), "changed_area": rng.integers(0, 5000, n_edit),
        "region_box": boxes(rng, n_edit), "outside_changed_fraction": np.zeros(n_edit),
        "outside_max_abs_diff": np.zeros(n_edit, dtype=np.int32),
        "phash_distance": rng.integers(0, 8, n_edit).astype(np.int32),
        "dhash_distance": rng.integers(0, 8, n_edit).astype(np.int32),
        "ahash_distance": rng.integers(0, 8, n_edit).astype(np.int32),
        "source_phash": random_hex(rng, n_edit, 16), "edited_phash": random_hex(rng, n_edit, 16),
        "encoder_cosine": 0.95 + rng.random(n_edit) * 0.05, "encoder_id": const("open-nsfw", n_edit),
        "source_verdicts": templated(rng, n_edit, VERDICT),
        "edited_verdicts": templated(rng, n_edit, VERDICT),
        "source_decision": templated(rng, n_edit, DECISION),
        "edited_decision": templated(rng, n_edit, DECISION),
        "flip_verified": passed, "judge_parse_failures": np.zeros(n_edit, dtype=np.int32),
        "adherence": passed, "adherence_detail": templated(rng, n_edit, 'replacement "####" found, '
                                                          'feature "####" gone; edit reads "YOU ARE ####"'),
        "passed": passed,
        "reasons": pa.array(np.where(passed, "[]", '["flip_not_verified"]')),
    }), **ledger)
    del edit_ids, kinds, inst_col, src_col, edited_col
    gc.collect()

    # curated pairs: one per ok instruction
    chosen = rng.integers(0, 2, n_pairs)
    accepted = rng.random(n_pairs) < 0.8
    pair_ids = random_hex(rng, n_pairs)
    chosen_edit = pa.array(np.where(chosen == 0, np.array(e0, dtype=object), np.array(e1, dtype=object)),
                           pa.string())
    chosen_image = pc.if_else(pa.array(chosen == 0), edited0, edited1)
    unsafe_ok = pa.array(unsafe[:n_pairs])
    split = rng.choice(3, n_pairs, p=[0.6, 0.2, 0.2])
    version = "ds-" + hash_parts("bench", category)[:12]
    store.write("curated_pairs", category, pa.table({
        "pair_id": pair_ids, "instruction_id": inst_ids.slice(0, n_pairs), "edit_id": chosen_edit,
        "category": const(category, n_pairs), "category_id": const(cat_id, n_pairs),
        "direction": direction.slice(0, n_pairs),
        "decision": pa.array(np.where(accepted, "accepted", "rejected")),
        "reason": pa.array(np.where(accepted, "best passing candidate by SSIM",
                                    "no candidate passed: flip_not_verified (2)")),
        "candidates": np.full(n_pairs, 2, dtype=np.int32),
        "candidates_passing": np.where(accepted, 1, 0).astype(np.int32),
        "source_image_id": sid_ok, "edited_image_id": chosen_image,
        "unsafe_image_id": pc.if_else(unsafe_ok, sid_ok, chosen_image),
        "safe_image_id": pc.if_else(unsafe_ok, chosen_image, sid_ok),
        "null_edit_image_id": sid_ok,
        "instruction": templated(rng, n_pairs, 'Replace the word "####" on the sign with "####"; '
                                 'keep the font, colour, size and everything else unchanged.'),
        "edit_kind": const("replace", n_pairs), "feature_kind": const("text", n_pairs),
        "feature": templated(rng, n_pairs, "W####"), "replacement": templated(rng, n_pairs, "B####"),
        "ssim": 0.9 + rng.random(n_pairs) * 0.1, "psnr": 20 + rng.random(n_pairs) * 10,
        "l1": rng.random(n_pairs) * 0.01, "l2": rng.random(n_pairs) * 0.1,
        "changed_fraction": rng.random(n_pairs) * 0.05, "outside_changed_fraction": np.zeros(n_pairs),
        "encoder_cosine": 0.95 + rng.random(n_pairs) * 0.05,
        "phash_distance": rng.integers(0, 8, n_pairs).astype(np.int32),
        "flip_verified": accepted, "adherence": accepted, "judges": templated(rng, n_pairs, JUDGES),
        "source_phash": random_hex(rng, n_pairs, 16), "edited_phash": random_hex(rng, n_pairs, 16),
        "split_group": sid_ok, "split": pa.array(["train", "validation", "test"]).take(split),
        "dataset_version": const(version, n_pairs),
    }), **ledger)

    # benchmark: 4 models x 2 members of every accepted test pair
    test = np.flatnonzero(accepted & (split == 2))
    m = len(MODELS)
    k = len(test) * m * 2
    pid = pair_ids.take(np.repeat(test, 2 * m))
    member_unsafe = np.tile(np.repeat([True, False], m), len(test))
    img = pc.if_else(pa.array(member_unsafe), pc.if_else(unsafe_ok, sid_ok, chosen_image).take(
        np.repeat(test, 2 * m)), pc.if_else(unsafe_ok, chosen_image, sid_ok).take(np.repeat(test, 2 * m)))
    correct = rng.random(k) < 0.8
    store.write("benchmark_results", category, pa.table({
        "model": pa.array(list(MODELS) * (2 * len(test))),
        "model_id": pa.array([f"{x}:v1" for x in MODELS] * (2 * len(test))),
        "model_version": const("7952e5926e820b56", k), "prompt": const("policy", k),
        "pair_id": pid, "member": pa.array(np.where(member_unsafe, "unsafe", "safe")),
        "image_id": img, "category": const(category, k), "category_id": const(cat_id, k),
        "split": const("test", k),
        "rating": pa.array(np.where(member_unsafe == correct, "Unsafe", "Safe")),
        "predicted_category": const("NA: None applying", k), "parse_status": const("ok", k),
        "raw_output": templated(rng, k, '{"rating": "Safe", "category": "NA", "rationale": '
                                '"The image shows a sign reading #### ####; no policy applies."}'),
        "rationale": templated(rng, k, "No legible text #### ####."),
        "latency_s": rng.random(k) * 0.01, "correct": correct,
    }), run_id=RUN_IDS[1], code_version="0.1.0+bench")

    # guard training pairs: accepted train pairs in the deploy probe, 2% in 20 more probes
    train = np.flatnonzero(accepted & (split == 0))
    extra = rng.choice(train, size=max(1, len(train) // 50), replace=False)
    n_probes = 20
    deploy_id = hash_parts("guard-probe", category, "deploy")
    probe_ids = [deploy_id] + [hash_parts("guard-probe", category, i) for i in range(n_probes)]
    rows_pair = np.concatenate([train, np.repeat(extra, n_probes)])
    rows_probe = np.concatenate([np.zeros(len(train), dtype=np.int64),
                                 np.tile(np.arange(1, n_probes + 1), len(extra))])
    g = len(rows_pair)
    store.write("guard_training_pairs", category, pa.table({
        "probe_id": pa.array(probe_ids).take(rows_probe), "pair_id": pair_ids.take(rows_pair),
        "category": const(category, g),
        "arm": pa.array(["deploy"] + ["pairs"] * n_probes).take(rows_probe),
        "budget": pa.array(["all"] + [str(8 << (i % 5)) for i in range(n_probes)]).take(rows_probe),
        "seed": pa.array([0] + [i // 5 for i in range(n_probes)], pa.int32()).take(rows_probe),
        "encoder": const("open-nsfw", g), "dataset_version": const(version, g),
        "role": const("train", g),
    }), run_id=RUN_IDS[2], code_version="0.1.0+bench")
    return {"pairs": n_pairs, "edits": n_edit, "benchmark_rows": k, "guard_rows": g}


def build(root: Path, n_pairs: int, seed: int) -> None:
    _check_id_recipes()
    store = TableStore(Storage(root))
    rng = np.random.default_rng(seed)
    per = [n_pairs // len(CATEGORIES) + (1 if i < n_pairs % len(CATEGORIES) else 0)
           for i in range(len(CATEGORIES))]
    totals: dict[str, int] = {}
    with fast_writes():
        for category, n in zip(CATEGORIES, per):
            t0 = time.perf_counter()
            counts = build_partition(store, category, n, rng)
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            print(f"  {category}: {n} pairs in {time.perf_counter() - t0:.1f} s", flush=True)
            gc.collect()
    (root / "BENCH_COMPLETE").write_text(json.dumps({"pairs": n_pairs, "seed": seed, **totals}))


# ---- timing ---------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _stats(wall: list[float], cpu: list[float]) -> str:
    p95 = _pct(wall, 0.95)
    return (f"n={len(wall)} p50={statistics.median(wall):.1f} p95={p95:.1f} max={max(wall):.1f} ms "
            f"(cpu p50={statistics.median(cpu):.1f} p95={_pct(cpu, 0.95):.1f}) -> "
            f"{'UNDER' if p95 < BUDGET_MS else 'OVER'} {BUDGET_MS:.0f} ms at p95")


def sample_pair_ids(root: Path, n: int, seed: int) -> list[str]:
    import duckdb

    con = duckdb.connect()
    glob = str(root / "tables" / "curated_pairs" / "*.parquet")
    ids = [r[0] for r in con.execute(
        f"SELECT pair_id FROM read_parquet('{glob}') USING SAMPLE {n} ROWS (reservoir, {seed})").fetchall()]
    con.close()
    return ids


def timed(fn) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000, out


def time_calls(storage: Storage, ids: list[str], **kwargs) -> tuple[tuple[float, float], list[float],
                                                                     list[float], dict]:
    """Cold: the first lookup on a fresh index (footers parsed in the call). Warm: the rest."""
    index = LineageIndex(storage)
    cold_w, cold_c, first = timed(lambda: pair_lineage(index, ids[0], **kwargs))
    wall, cpu = [], []
    for pid in ids[1:]:
        w, c, _ = timed(lambda pid=pid: pair_lineage(index, pid, **kwargs))
        wall.append(w)
        cpu.append(c)
    index.close()
    return (cold_w, cold_c), wall, cpu, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--root", type=Path, default=None,
                        help="catalogue folder (default /tmp/spairs-lineage-bench[-rgN])")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row-group-size", type=int, default=None,
                        help="build with this tables.ROW_GROUP_SIZE instead of the current one "
                             f"({tables_mod.ROW_GROUP_SIZE}): what-if for the layout")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the catalogue even if cached")
    args = parser.parse_args()

    rgs = args.row_group_size or tables_mod.ROW_GROUP_SIZE
    root = args.root or Path("/tmp/spairs-lineage-bench" + (f"-rg{rgs}" if rgs != tables_mod.ROW_GROUP_SIZE else ""))
    marker = root / "BENCH_COMPLETE"
    info = json.loads(marker.read_text()) if marker.exists() else {}
    if args.rebuild or info.get("pairs") != args.pairs or info.get("row_group_size") != rgs:
        shutil.rmtree(root, ignore_errors=True)
        print(f"building a synthetic catalogue of {args.pairs:,} pairs in {root} "
              f"(row groups of {rgs:,} rows) ...", flush=True)
        t0 = time.perf_counter()
        saved = tables_mod.ROW_GROUP_SIZE
        tables_mod.ROW_GROUP_SIZE = rgs
        try:
            build(root, args.pairs, args.seed)
        finally:
            tables_mod.ROW_GROUP_SIZE = saved
        info = json.loads(marker.read_text())
        info["row_group_size"] = rgs
        marker.write_text(json.dumps(info))
        print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    size = sum(f.stat().st_size for f in (root / "tables").rglob("*.parquet"))
    print(f"catalogue: {info} ({size / 2**30:.2f} GiB of Parquet)")
    if hasattr(os, "getloadavg"):
        print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    ids = sample_pair_ids(root, args.lookups + 1, args.seed)
    storage = Storage(root)
    pair_lineage(LineageIndex(storage), ids[-1])  # page the files into the OS cache once

    (cw, cc), wall, cpu, first = time_calls(storage, ids)
    print(f"first lineage: {[s['step'] for s in first['steps']]}, {len(first['candidates'])} "
          f"candidates, {len(first['benchmark'])} benchmark rows, {len(first['guard_models'])} "
          f"guard models, edits by {first['lookup']['edits_by']}")
    print(f"full pair id, cold (fresh index: footers parsed in the call): {cw:.1f} ms (cpu {cc:.1f})")
    print(f"full pair id, warm: {_stats(wall, cpu)}")
    (cw, cc), wall, cpu, _ = time_calls(storage, [i[:8] for i in ids])
    print(f"8-hex prefix, cold: {cw:.1f} ms (cpu {cc:.1f})")
    print(f"8-hex prefix, warm: {_stats(wall, cpu)}")
    n_fallback = min(len(ids), 21)
    (cw, cc), wall, cpu, first = time_calls(storage, ids[:n_fallback], base_seeds=())
    assert first["lookup"]["edits_by"] == "scan"
    print(f"fallback (edit ids not derivable: scans the partition), warm: {_stats(wall, cpu)}")
    wall, cpu = [], []
    for pid in ids[:20]:
        w, c, _ = timed(lambda pid=pid: pair_lineage(storage, pid))
        wall.append(w)
        cpu.append(c)
    print(f"one-off (a new index per lookup, as one `spairs lineage` call): {_stats(wall, cpu)}")


if __name__ == "__main__":
    main()
