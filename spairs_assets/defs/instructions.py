"""Stage 2, instructions: `edit_instructions` per category."""

from collections import Counter

import dagster as dg

from spairs_assets.defs.common import (
    counts_markdown,
    data_version,
    failures_markdown,
    progress_logger,
    write_partition_table,
)
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.quality import expectations_check
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.settings import CONFIG, gpu_placement
from spairs_assets.defs.sources import source_images
from spairs_assets.versioning import code_version

INSTRUCTIONS_VERSION = code_version("instructions")


@dg.asset(
    partitions_def=category_partitions,
    deps=[source_images],
    group_name="pairs",
    code_version=INSTRUCTIONS_VERSION,
    kinds={"python", "parquet"},
    **gpu_placement(CONFIG.instructions.generator == "vlm"),
    description=(
        "For each seed, edits that would flip its safety label with a minimal change: the "
        "feature to change and its replacement (or removal). Backend: `instructions.generator` "
        "(grounded OCR + lexicon on CPU; a VLM or an OpenAI-compatible endpoint)."
    ),
)
def edit_instructions(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.instructions.base import SeedImage
    from spairs_assets.instructions.stage import build_generator, instruction_rows

    from spairs_assets.vision.cache import VISION

    partition = context.partition_key
    config = spairs.config
    VISION.use_store(spairs.cache("vision"))  # OCR/detections of seeds are reused by verification
    category = config.safety_policy.category(partition)
    seeds = spairs.tables.read_rows("source_images", partition)

    def load_seed(row: dict) -> SeedImage:
        return SeedImage(image_id=row["image_id"], category=partition, category_id=category.id,
                         category_label=category.label, rating=row["rating"],
                         image=spairs.images.load(row["image_id"]))

    generator = build_generator(config)
    rows, stats = instruction_rows(
        seeds, load_seed=load_seed, generator=generator,
        directions=config.instructions.directions, max_per_seed=config.instructions.max_per_seed,
        cache=spairs.cache("instructions"), code_version=INSTRUCTIONS_VERSION,
        progress=progress_logger(context, "instructions"))
    arrow, metadata = write_partition_table(context, spairs, "edit_instructions", partition, rows,
                                            code_version=INSTRUCTIONS_VERSION)
    statuses = Counter(r["status"] for r in rows)
    metadata.update({
        **{f"work/{k}": v for k, v in stats.as_metadata().items()},
        "instructions_ok": statuses.get("ok", 0),
        "no_feature_found": statuses.get("no_feature", 0),
        "failed": statuses.get("failed", 0),
        "by_status": dg.MetadataValue.md(counts_markdown(statuses, "status")),
        "failures_by_error": failures_markdown(rows),
        "by_edit_kind": dg.MetadataValue.md(counts_markdown(
            Counter(r["edit_kind"] for r in rows if r["status"] == "ok"), "edit kind")),
        "generator": generator.generator_id,
        "examples": dg.MetadataValue.md("\n".join(
            [f"- {r['instruction']}" for r in rows if r["status"] == "ok"][:8]) or "_none_"),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


assets = [edit_instructions]
asset_checks = [expectations_check(edit_instructions, "edit_instructions")]
