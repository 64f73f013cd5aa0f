"""Great Expectations suites as partitioned asset checks, one per table."""

import dagster as dg

from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.resources import SpairsResource


def expectations_check(asset: dg.AssetsDefinition, table: str, *, blocking: bool = True) -> dg.AssetChecksDefinition:
    """A check running `table`'s GX suite on the partition the asset just wrote (or, for an
    unpartitioned asset, on its single `all` file)."""
    partitioned = asset.partitions_def is not None

    @dg.asset_check(
        asset=asset,
        name=f"{table}_expectations",
        partitions_def=category_partitions if partitioned else None,
        blocking=blocking,
        description=f"Great Expectations suite on `{table}`: schema, non-null, uniqueness, "
        "allowed values and ranges (spairs_assets/quality/expectations.py).",
    )
    def _check(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
        from spairs_assets.quality.expectations import validate_table

        data = spairs.tables.read(table, context.partition_key if partitioned else "all")
        if data is None:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0, "note": "no table written"})
        result = validate_table(table, data)
        return dg.AssetCheckResult(
            passed=result.success,
            metadata={
                "rows": data.num_rows,
                "expectations": result.evaluated,
                "failed": len(result.failures),
                "report": dg.MetadataValue.md(result.summary().replace("\n- ", "\n\n- ")),
            },
        )

    return _check
