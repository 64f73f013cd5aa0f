"""Stage 1, sources: `source_images` per category, with its quarantine and checks."""


from collections import Counter

import dagster as dg

from spairs_assets.defs.common import (
    counts_markdown,
    data_version,
    preview_metadata,
    write_partition_table,
)
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.quality import expectations_check
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.policy import UNSAFE
from spairs_assets.versioning import code_version

SOURCES_VERSION = code_version("sources")


@dg.asset(
    partitions_def=category_partitions,
    group_name="sources",
    code_version=SOURCES_VERSION,
    kinds={"python", "parquet"},
    owners=["team:spairs"],
    description=(
        "Seed images of one safety category from every configured source (demo set, folders, "
        "manifests): decoded, verified, normalised to RGB and stored by content hash. Bad inputs "
        "go to the `quarantine` table with their reason."
    ),
)
def source_images(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.reports.previews import PreviewItem
    from spairs_assets.sources.ingest import UNKNOWN_PARTITION
    from spairs_assets.sources.seeds import collect_seeds

    partition = context.partition_key
    batch = collect_seeds(spairs.config, partition, images=spairs.images,
                          cache=spairs.cache("ingest"), code_version=SOURCES_VERSION)

    seeds, metadata = write_partition_table(context, spairs, "source_images", partition,
                                            batch.source_images, code_version=SOURCES_VERSION)
    write_partition_table(context, spairs, "quarantine", partition, batch.quarantine,
                          code_version=SOURCES_VERSION)
    if batch.unknown_quarantine:
        write_partition_table(context, spairs, "quarantine", UNKNOWN_PARTITION,
                              batch.unknown_quarantine, code_version=SOURCES_VERSION)
    if batch.demo_ground_truth:
        write_partition_table(context, spairs, "demo_ground_truth", partition,
                              batch.demo_ground_truth, code_version=SOURCES_VERSION)

    ratings = Counter(r["rating"] for r in batch.source_images)
    reasons = Counter(r["reason"] for r in batch.quarantine)
    by_source = Counter(r["source_name"] for r in batch.source_images)
    shown = batch.source_images[: spairs.config.previews.count]
    preview = [PreviewItem(spairs.images.load(r["image_id"]), r["rating"], r["rating"] == UNSAFE)
               for r in shown]
    context.log.info(
        f"{partition}: {len(batch.source_images)} seeds, {len(batch.quarantine)} quarantined, "
        f"decode cache {batch.cache_hits} hits / {batch.cache_misses} misses")
    metadata.update({
        "seeds": len(batch.source_images),
        "unsafe": ratings.get(UNSAFE, 0),
        "safe": len(batch.source_images) - ratings.get(UNSAFE, 0),
        "quarantined": len(batch.quarantine),
        "quarantine_by_reason": dg.MetadataValue.md(counts_markdown(reasons, "reason")),
        "seeds_by_source": dg.MetadataValue.md(counts_markdown(by_source, "source")),
        "unknown_category_items": len(batch.unknown_quarantine),
        "decode_cache_hits": batch.cache_hits,
        "preview": preview_metadata(spairs, preview, f"{partition} seeds"),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(seeds))


@dg.asset_check(asset=source_images, partitions_def=category_partitions, blocking=True,
                description="The category has at least one seed image.")
def source_images_not_empty(context: dg.AssetCheckExecutionContext,
                            spairs: SpairsResource) -> dg.AssetCheckResult:
    rows = spairs.tables.read("source_images", context.partition_key)
    n = 0 if rows is None else rows.num_rows
    return dg.AssetCheckResult(passed=n > 0, metadata={"seeds": n})


@dg.asset_check(asset=source_images, partitions_def=category_partitions,
                description="Warns when seeds were quarantined; the metadata lists reasons.")
def source_images_quarantine(context: dg.AssetCheckExecutionContext,
                             spairs: SpairsResource) -> dg.AssetCheckResult:
    rows = spairs.tables.read_rows("quarantine", context.partition_key)
    reasons = Counter(r["reason"] for r in rows)
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": len(rows),
                  "by_reason": dg.MetadataValue.md(counts_markdown(reasons, "reason"))},
    )


assets = [source_images]
asset_checks = [
    source_images_not_empty,
    source_images_quarantine,
    expectations_check(source_images, "source_images"),
    expectations_check(source_images, "quarantine"),
    expectations_check(source_images, "demo_ground_truth"),
]
