"""Stage 5, curation: `curated_pairs` per category, with the blocking minimality check."""

import json
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
from spairs_assets.defs.verification import verification_scores
from spairs_assets.versioning import code_version

CURATION_VERSION = code_version("curation")
MIN_ACCEPTANCE_RATE = 0.5


@dg.asset(
    partitions_def=category_partitions,
    deps=[verification_scores],
    group_name="curation",
    code_version=CURATION_VERSION,
    kinds={"python", "parquet"},
    description=(
        "One row per instruction: the most minimal verified candidate (highest SSIM among those "
        "that pass every criterion) or the reasons none qualified; both images, labels, scores, "
        "the train/validation/test split (by source image), and the dataset version. Writes an HTML "
        "gallery of the decisions (reports/gallery/<category>/<dataset version>.html)."
    ),
)
def curated_pairs(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.curation.select import ACCEPTED, curate
    from spairs_assets.reports.gallery import write_gallery
    from spairs_assets.reports.previews import PreviewItem

    partition = context.partition_key
    config = spairs.config
    edits = spairs.tables.read_rows("edited_images", partition)
    null_edits = {e["source_image_id"]: e["edited_image_id"] for e in edits
                  if e["kind"] == "null_edit" and e["status"] == "ok"}
    scores = spairs.tables.read_rows("verification_scores", partition)
    rows = curate(scores, spairs.tables.read_rows("edit_instructions", partition), null_edits,
                  config.curation)
    arrow, metadata = write_partition_table(context, spairs, "curated_pairs", partition, rows,
                                            code_version=CURATION_VERSION)
    accepted = [r for r in rows if r["decision"] == ACCEPTED]
    shown = []
    for r in accepted[:6]:
        shown.append(PreviewItem(spairs.images.load(r["unsafe_image_id"]), "unsafe", True))
        shown.append(PreviewItem(spairs.images.load(r["safe_image_id"]), "safe", False))
    rejected = Counter(r["reason"].split(":")[0].split(" of ")[0] for r in rows
                       if r["decision"] != ACCEPTED)
    metadata.update({
        "pairs": len(accepted),
        "rejected": len(rows) - len(accepted),
        "dataset_version": rows[0]["dataset_version"] if rows else "none",
        "by_split": dg.MetadataValue.md(counts_markdown(Counter(r["split"] for r in accepted), "split")),
        "rejections": dg.MetadataValue.md(counts_markdown(rejected, "reason")),
        "preview": preview_metadata(spairs, shown, f"{partition} pairs"),
    })
    # Every decision, accepted first, with its difference mask and scores (unsafe images
    # blurred unless previews are on): the page a reviewer opens from here.
    galleries = write_gallery(spairs.storage, rows, scores, spairs.images.load,
                              show_unsafe=config.show_unsafe_previews, include_rejected=True)
    if galleries:
        metadata["gallery"] = dg.MetadataValue.path(spairs.storage.uri(galleries[0]))
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


@dg.asset_check(
    asset=curated_pairs, partitions_def=category_partitions, blocking=True,
    description="Every accepted pair is a minimal edit, recomputed from the stored images: SSIM, "
    "changed fraction and change outside the edited region within the curation thresholds. "
    "Blocking: a partition that fails does not flow downstream.")
def edit_minimality(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
    from spairs_assets.curation.checks import minimality_violations

    partition = context.partition_key
    pairs = spairs.tables.read_rows("curated_pairs", partition)
    regions = {r["edit_id"]: r["region_box"]
               for r in spairs.tables.read_rows("verification_scores", partition)}
    violations = minimality_violations(pairs, regions, spairs.images.load_array,
                                       spairs.config.curation, spairs.config.verification.change_tolerance)
    accepted = sum(1 for p in pairs if p["decision"] == "accepted")
    table = "\n".join(f"| {v['pair_id'][:16]} | {v['metric']} | {v['value']} | {v['required']} |"
                      for v in violations[:50])
    return dg.AssetCheckResult(
        passed=not violations,
        metadata={"accepted_pairs": accepted, "violations": len(violations),
                  "details": dg.MetadataValue.md(
                      "| pair | metric | value | required |\n|---|---|---|---|\n" + table
                      if violations else "_all accepted pairs are minimal_")})


@dg.asset_check(asset=curated_pairs, partitions_def=category_partitions, blocking=True,
                description="No source image (or near-duplicate group) has pairs in two splits.")
def split_leakage(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
    from spairs_assets.curation.checks import split_leakage as find_leaks

    leaks = find_leaks(spairs.tables.read_rows("curated_pairs", context.partition_key))
    return dg.AssetCheckResult(passed=not leaks, metadata={
        "leaks": len(leaks), "examples": dg.MetadataValue.json(leaks[:10])})


@dg.asset_check(asset=curated_pairs, partitions_def=category_partitions,
                description=f"Warns when fewer than {MIN_ACCEPTANCE_RATE:.0%} of instructions "
                "yield an accepted pair.")
def pair_acceptance_rate(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
    rows = spairs.tables.read_rows("curated_pairs", context.partition_key)
    rate = sum(1 for r in rows if r["decision"] == "accepted") / len(rows) if rows else 0.0
    return dg.AssetCheckResult(passed=rate >= MIN_ACCEPTANCE_RATE, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"acceptance_rate": round(rate, 4), "instructions": len(rows)})


@dg.asset(
    deps=[curated_pairs],
    group_name="curation",
    code_version=CURATION_VERSION,
    kinds={"python", "parquet"},
    description="All categories' accepted pairs exported as a Hugging Face dataset "
    "(save_to_disk and Parquet) with a dataset card and Croissant RAI metadata, under "
    "data/exports/<dataset version>/.",
)
def safetypairs_dataset(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    import tempfile
    from pathlib import Path

    from spairs_assets.curation.export import export_from_tables, pipeline_provenance

    config = spairs.config
    staging = Path(tempfile.mkdtemp(prefix="spairs-export-"))
    result = export_from_tables(spairs.tables, spairs.images, config.safety_policy,
                                staging / "export", pipeline_provenance(config))
    final = spairs.storage.local_path(f"exports/{result.dataset_version}")
    if final.exists():
        import shutil

        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    result.folder.rename(final)
    totals = {c: sum(s.values()) for c, s in result.counts.items()}
    return dg.MaterializeResult(
        metadata={
            "dataset_version": result.dataset_version,
            "pairs": sum(totals.values()),
            "path": dg.MetadataValue.path(str(final)),
            "pairs_by_category": dg.MetadataValue.md(counts_markdown(totals, "category", "pairs")),
            "card": dg.MetadataValue.md(result.card.split("---", 2)[-1]),
        },
        data_version=dg.DataVersion(result.dataset_version),
    )


@dg.asset_check(asset=safetypairs_dataset, blocking=True,
                description="Across all categories, no near-duplicate source images (pHash) sit in "
                "different splits; images shared between categories are listed.")
def cross_category_leakage(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
    from spairs_assets.curation.checks import cross_category_leakage as find

    pairs = [r for p in spairs.tables.partitions("curated_pairs")
             for r in spairs.tables.read_rows("curated_pairs", p)]
    found = find(pairs, spairs.config.curation.near_duplicate_distance)
    return dg.AssetCheckResult(passed=not found["split_leaks"], metadata={
        "split_leaks": len(found["split_leaks"]),
        "images_in_several_categories": len(found["shared_images"]),
        "examples": dg.MetadataValue.json((found["split_leaks"] + found["shared_images"])[:10])})


assets = [curated_pairs, safetypairs_dataset]
asset_checks = [edit_minimality, split_leakage, pair_acceptance_rate, cross_category_leakage,
                expectations_check(curated_pairs, "curated_pairs")]
