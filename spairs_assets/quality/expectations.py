"""Great Expectations suites for every table, built from the declared schemas plus rules.

`dagster-ge` only supports GX < 1 (and breaks numpy 2), so the suites are run with GX 1.x
directly; the Dagster asset checks call `validate_table`. GX is imported lazily: it takes
seconds to import and only check steps need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from spairs_assets.storage.schemas import schema_for


@dataclass(frozen=True)
class TableRules:
    """What a valid table looks like beyond its schema (columns and non-null come from it)."""

    unique: tuple[tuple[str, ...], ...] = ()  # column sets that identify a row
    value_sets: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    # Columns that must be non-null only on rows where `status == "ok"` are not expressible as
    # plain GX expectations; they are covered by the row-level checks of each stage.


SHA256 = r"^[0-9a-f]{64}$"
RATINGS = ("Safe", "Unsafe")
DIRECTIONS = ("unsafe_to_safe", "safe_to_unsafe")

RULES: dict[str, TableRules] = {
    "source_images": TableRules(
        unique=(("image_id",),),
        value_sets={"rating": RATINGS, "source_kind": ("demo", "folder", "manifest")},
        ranges={"width": (1, None), "height": (1, None)},
    ),
    "quarantine": TableRules(
        unique=(("source_name", "source_path", "reason"),),
    ),
    "demo_ground_truth": TableRules(
        unique=(("image_id",),),
        value_sets={"rating": RATINGS, "feature_kind": ("text", "symbol", "none")},
    ),
    "edit_instructions": TableRules(
        unique=(("instruction_id",),),
        value_sets={
            "direction": DIRECTIONS,
            "source_rating": RATINGS,
            "target_rating": RATINGS,
            "status": ("ok", "no_feature", "failed"),
            "edit_kind": ("replace", "remove", "add", None),
            "feature_kind": ("text", "symbol", "object", "other", None),
        },
    ),
    "edited_images": TableRules(
        unique=(("edit_id",),),
        value_sets={"kind": ("edit", "null_edit"), "status": ("ok", "failed")},
        ranges={"candidate": (0, None), "seconds": (0, None)},
    ),
    "verification_scores": TableRules(
        unique=(("edit_id",),),
        value_sets={"kind": ("edit", "null_edit"), "direction": (*DIRECTIONS, None)},
        ranges={"ssim": (-1, 1), "l1": (0, 1), "l2": (0, 1), "changed_fraction": (0, 1),
                "outside_changed_fraction": (0, 1), "encoder_cosine": (-1.0001, 1.0001),
                "phash_distance": (0, 64), "dhash_distance": (0, 64), "ahash_distance": (0, 64),
                "changed_area": (0, None), "judge_parse_failures": (0, None)},
    ),
    "curated_pairs": TableRules(
        unique=(("pair_id",),),
        value_sets={"decision": ("accepted", "rejected"), "direction": DIRECTIONS},
        ranges={"ssim": (-1, 1), "changed_fraction": (0, 1), "candidates": (1, None),
                "candidates_passing": (0, None)},
    ),
    "benchmark_results": TableRules(
        unique=(("model", "pair_id", "member"),),
        value_sets={"member": ("unsafe", "safe"), "rating": (*RATINGS, None),
                    "prompt": ("policy", "plain")},
        ranges={"probability_unsafe": (0, 1), "latency_s": (0, None)},
    ),
    "benchmark_leaderboard": TableRules(
        unique=(("model", "category"),),
        ranges={"pair_accuracy": (0, 1), "fpr": (0, 1), "fnr": (0, 1), "rank": (1, None),
                "n_pairs": (0, None)},
    ),
}

ID_PATTERNS: dict[str, tuple[str, ...]] = {
    "source_images": ("image_id", "source_sha256"),
    "edit_instructions": ("instruction_id", "source_image_id"),
    "edited_images": ("edit_id", "source_image_id"),
    "verification_scores": ("edit_id", "source_image_id", "edited_image_id"),
    "curated_pairs": ("pair_id", "instruction_id", "unsafe_image_id", "safe_image_id"),
    "benchmark_results": ("pair_id", "image_id"),
}


@dataclass
class SuiteResult:
    table: str
    success: bool
    evaluated: int
    failures: list[dict[str, Any]]

    def summary(self) -> str:
        if self.success:
            return f"{self.table}: all {self.evaluated} expectations met"
        lines = [f"{self.table}: {len(self.failures)} of {self.evaluated} expectations failed"]
        for f in self.failures:
            lines.append(f"- {f['expectation']} {f.get('column') or ''}: "
                         f"{f.get('unexpected_count')} unexpected, e.g. {f.get('examples')}")
        return "\n".join(lines)


def _expectations(table: str) -> list:
    import great_expectations.expectations as gxe

    schema = schema_for(table)
    rules = RULES.get(table, TableRules())
    out: list = [gxe.ExpectTableColumnsToMatchSet(column_set=list(schema.names), exact_match=True)]
    for f in schema:
        if not f.nullable:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=f.name))
    for columns in rules.unique:
        if len(columns) == 1:
            out.append(gxe.ExpectColumnValuesToBeUnique(column=columns[0]))
        else:
            out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns)))
    for column, values in rules.value_sets.items():
        allowed = [v for v in values if v is not None]
        out.append(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=allowed))
    for column, (lo, hi) in rules.ranges.items():
        out.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=lo, max_value=hi))
    for column in ID_PATTERNS.get(table, ()):
        out.append(gxe.ExpectColumnValuesToMatchRegex(column=column, regex=SHA256))
    return out


def validate_table(table: str, data: pa.Table) -> SuiteResult:
    """Run the table's suite on `data` with an ephemeral GX context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("spairs")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("partition")
    )
    suite = gx.ExpectationSuite(name=f"{table}_suite", expectations=_expectations(table))
    frame = data.to_pandas()
    # Lists (boxes) are not hashable for GX's set/unique metrics; they are covered by the schema.
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures = []
    for r in result.results:
        if r.success:
            continue
        kwargs = r.expectation_config.kwargs
        failures.append({
            "expectation": r.expectation_config.type,
            "column": kwargs.get("column") or kwargs.get("column_list"),
            "unexpected_count": r.result.get("unexpected_count"),
            "examples": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]],
            "error": (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None,
        })
    return SuiteResult(table, bool(result.success), len(result.results), failures)
