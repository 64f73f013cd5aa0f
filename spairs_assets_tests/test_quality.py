"""Great Expectations suites: they pass on good tables and catch bad ones."""

import pyarrow as pa
import pytest

from spairs_assets.quality.expectations import validate_table
from spairs_assets.storage.tables import to_table

LEDGER = {"run_id": "r", "code_version": "c"}
SHA = "ab" * 32


def _seed(i: int, **over) -> dict:
    row = {"image_id": f"{i:064x}", "image_path": f"images/00/{i:064x}.png", "category": "O1_hate",
           "category_id": "O1", "rating": "Unsafe", "width": 10, "height": 10,
           "source_kind": "folder", "source_name": "s", "source_path": f"{i}.png",
           "source_sha256": SHA, "licence": None, "provenance": "{}"}
    return {**row, **over}


@pytest.mark.slow
def test_suite_passes_on_a_good_table_and_catches_a_bad_one():
    good = to_table("source_images", [_seed(i) for i in range(5)], **LEDGER)
    assert validate_table("source_images", good).success

    rows = [_seed(i) for i in range(5)]
    rows[1]["image_id"] = rows[0]["image_id"]  # duplicate id
    rows[2]["rating"] = "Maybe"  # outside the allowed ratings
    rows[3]["width"] = 0  # out of range
    rows[4]["source_sha256"] = "not-a-hash"
    bad = to_table("source_images", rows, **LEDGER)
    result = validate_table("source_images", bad)
    assert not result.success
    failed = {(f["expectation"], f["column"]) for f in result.failures}
    assert failed == {
        ("expect_column_values_to_be_unique", "image_id"),
        ("expect_column_values_to_be_in_set", "rating"),
        ("expect_column_values_to_be_between", "width"),
        ("expect_column_values_to_match_regex", "source_sha256"),
    }
    assert "Maybe" in result.summary()


@pytest.mark.slow
def test_suite_catches_a_missing_column_and_nulls():
    good = to_table("source_images", [_seed(1)], **LEDGER)
    # A table written outside the storage layer (so not schema-checked on write).
    broken = good.drop_columns(["licence"]).set_column(
        good.schema.get_field_index("category"), "category", pa.array([None], pa.string()))
    result = validate_table("source_images", broken)
    failed = {f["expectation"] for f in result.failures}
    assert "expect_table_columns_to_match_set" in failed
    assert "expect_column_values_to_not_be_null" in failed
