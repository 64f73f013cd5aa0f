"""Curation rule: best passing candidate per instruction, reasons, near duplicates, splits."""

import json

import pytest

from spairs_assets.config import CurationConfig
from spairs_assets.curation.select import (
    ACCEPTED,
    REJECTED,
    assign_split,
    candidate_failures,
    curate,
    source_groups,
)

CFG = CurationConfig()


def _score(edit_id, instruction_id="i1", source="s1", edited=None, **over):
    row = {
        "edit_id": edit_id, "kind": "edit", "instruction_id": instruction_id,
        "source_image_id": source, "edited_image_id": edited or f"e-{edit_id}",
        "category": "O2_violence", "category_id": "O2", "direction": "unsafe_to_safe",
        "ssim": 0.95, "psnr": 30.0, "l1": 0.01, "l2": 0.02, "changed_fraction": 0.05,
        "outside_changed_fraction": 0.0, "encoder_cosine": 0.97, "phash_distance": 2,
        "flip_verified": True, "adherence": True, "source_decision": "{}", "edited_decision": "{}",
        "source_phash": "0" * 16, "edited_phash": "f" * 16,
    }
    row.update(over)
    row["reasons"] = json.dumps(candidate_failures(row, CFG))
    row["passed"] = row["reasons"] == "[]"
    return row


def _instruction(iid="i1", source="s1"):
    return {"instruction_id": iid, "source_image_id": source, "source_rating": "Unsafe",
            "direction": "unsafe_to_safe", "instruction": "Replace X with Y", "edit_kind": "replace",
            "feature_kind": "text", "feature": "X", "replacement": "Y"}


@pytest.mark.parametrize("over, reason", [
    ({"flip_verified": False}, "flip_not_verified"),
    ({"flip_verified": None}, "flip_not_verified"),
    ({"adherence": False}, "instruction_not_followed"),
    ({"ssim": 0.5}, "ssim_below_0.75"),
    ({"changed_fraction": 0.5}, "changed_fraction_above_0.35"),
    ({"changed_fraction": 0.0}, "no_change"),
    ({"outside_changed_fraction": 0.2}, "change_outside_region_above_0.01"),
    ({"encoder_cosine": 0.3}, "encoder_cosine_below_0.8"),
])
def test_each_criterion_gives_its_reason(over, reason):
    assert candidate_failures(_score("a", **over), CFG) == [reason]


def test_passing_candidate_has_no_reasons_and_adherence_unknown_is_not_a_failure():
    assert candidate_failures(_score("a"), CFG) == []
    assert candidate_failures(_score("a", adherence=None, outside_changed_fraction=None), CFG) == []


def test_best_passing_candidate_by_ssim_is_chosen():
    scores = [_score("a", ssim=0.90), _score("b", ssim=0.97), _score("c", ssim=0.99, flip_verified=False)]
    [row] = curate(scores, [_instruction()], {"s1": "null-s1"}, CFG)
    assert row["decision"] == ACCEPTED and row["edit_id"] == "b"
    assert row["candidates"] == 3 and row["candidates_passing"] == 2
    assert (row["unsafe_image_id"], row["safe_image_id"]) == ("s1", "e-b")
    assert row["null_edit_image_id"] == "null-s1"
    assert row["dataset_version"].startswith("ds-")


def test_rejected_instruction_keeps_the_reasons_of_its_candidates():
    scores = [_score("a", flip_verified=False), _score("b", flip_verified=False, ssim=0.1)]
    [row] = curate(scores, [_instruction()], {}, CFG)
    assert row["decision"] == REJECTED
    assert row["reason"].startswith("no candidate passed: flip_not_verified (2)")
    assert "ssim_below_0.75 (1)" in row["reason"]


def test_safe_to_unsafe_pairs_put_the_edit_on_the_unsafe_side():
    instruction = {**_instruction(), "source_rating": "Safe", "direction": "safe_to_unsafe"}
    [row] = curate([_score("a", direction="safe_to_unsafe")], [instruction], {}, CFG)
    assert (row["unsafe_image_id"], row["safe_image_id"]) == ("e-a", "s1")


def test_near_duplicate_pairs_are_rejected_and_share_a_split():
    scores = [_score("a", instruction_id="i1", source="s1"),
              _score("b", instruction_id="i2", source="s2", source_phash="0" * 15 + "1")]
    rows = curate(scores, [_instruction("i1", "s1"), _instruction("i2", "s2")], {}, CFG)
    decisions = sorted(r["decision"] for r in rows)
    assert decisions == [ACCEPTED, REJECTED]
    rejected = next(r for r in rows if r["decision"] == REJECTED)
    assert rejected["reason"].startswith("near_duplicate_of")
    assert len({r["split"] for r in rows}) == 1 and len({r["split_group"] for r in rows}) == 1


def test_splits_are_stable_and_follow_the_proportions():
    splits = {"train": 0.6, "validation": 0.2, "test": 0.2}
    names = [assign_split(f"source-{i}", splits) for i in range(3000)]
    assert names == [assign_split(f"source-{i}", splits) for i in range(3000)]
    for name, share in splits.items():
        assert abs(names.count(name) / len(names) - share) < 0.03


def test_source_groups_join_near_duplicates_only():
    groups = source_groups([("b", "00ff"), ("a", "00fe"), ("c", "ff00"), ("d", None)], distance=2)
    assert groups == {"a": "a", "b": "a", "c": "c", "d": "d"}


def test_dataset_version_changes_with_accepted_pairs_and_settings():
    base = curate([_score("a")], [_instruction()], {}, CFG)[0]["dataset_version"]
    assert curate([_score("a")], [_instruction()], {}, CFG)[0]["dataset_version"] == base
    other_cfg = CurationConfig(min_ssim=0.8)
    assert curate([_score("a")], [_instruction()], {}, other_cfg)[0]["dataset_version"] != base
    assert curate([_score("b")], [_instruction()], {}, CFG)[0]["dataset_version"] != base


def test_cross_category_leakage_finds_near_duplicates_in_other_splits():
    from spairs_assets.curation.checks import cross_category_leakage

    base = {"decision": ACCEPTED, "source_phash": "00ff00ff00ff00ff"}
    pairs = [
        {**base, "pair_id": "p1", "source_image_id": "a", "category": "O1_hate", "split": "train"},
        {**base, "pair_id": "p2", "source_image_id": "b", "category": "O2_violence", "split": "test",
         "source_phash": "00ff00ff00ff00fe"},  # one bit from a: the same picture
        {**base, "pair_id": "p3", "source_image_id": "c", "category": "O2_violence", "split": "test",
         "source_phash": "ff00ff00ff00ff00"},
    ]
    found = cross_category_leakage(pairs, distance=4)
    assert [leak["pairs"] for leak in found["split_leaks"]] == [["p1", "p2"]]
    assert found["shared_images"][0]["categories"] == ["O1_hate", "O2_violence"]
    pairs[1]["split"] = "train"
    assert cross_category_leakage(pairs, distance=4)["split_leaks"] == []
