"""Stage 3, editing: `edited_images` per category (candidates and null edits)."""

from collections import Counter

import dagster as dg

from spairs_assets.defs.common import (
    counts_markdown,
    data_version,
    failures_markdown,
    preview_metadata,
    progress_logger,
    write_partition_table,
)
from spairs_assets.defs.instructions import edit_instructions
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.quality import expectations_check
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.settings import CONFIG, gpu_placement
from spairs_assets.policy import UNSAFE
from spairs_assets.versioning import code_version

EDITING_VERSION = code_version("editing")


@dg.asset(
    partitions_def=category_partitions,
    deps=[edit_instructions],
    group_name="pairs",
    code_version=EDITING_VERSION,
    kinds={"python", "parquet"},
    **gpu_placement(CONFIG.editing.editor != "classical"),
    description=(
        "Each instruction applied to its seed, `editing.candidates` times with distinct seeds, "
        "plus an optional null edit per seed (the editor's round trip without a change). "
        "Backend: `editing.editor` (classical OpenCV editor on CPU; Flux Kontext, Qwen-Image-Edit "
        "or InstructPix2Pix through diffusers on a GPU)."
    ),
)
def edited_images(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.editing.stage import build_editor, edit_rows
    from spairs_assets.reports.previews import PreviewItem

    partition = context.partition_key
    config = spairs.config
    instructions = spairs.tables.read_rows("edit_instructions", partition)
    editor = build_editor(config)
    rows, stats = edit_rows(
        instructions, editor=editor, images=spairs.images, candidates=config.editing.candidates,
        base_seed=config.editing.seed, null_edit=config.editing.null_edit,
        cache=spairs.cache("editing"), code_version=EDITING_VERSION,
        package_versions=editor.package_versions() if hasattr(editor, "package_versions") else {},
        progress=progress_logger(context, "edits"))
    arrow, metadata = write_partition_table(context, spairs, "edited_images", partition, rows,
                                            code_version=EDITING_VERSION)

    by_id = {r["instruction_id"]: r for r in instructions}
    shown = []
    for row in [r for r in rows if r["status"] == "ok" and r["kind"] == "edit"][:6]:
        instruction = by_id[row["instruction_id"]]
        shown.append(PreviewItem(spairs.images.load(row["source_image_id"]), "before",
                                 instruction["source_rating"] == UNSAFE))
        shown.append(PreviewItem(spairs.images.load(row["edited_image_id"]), "after",
                                 instruction["target_rating"] == UNSAFE))
    statuses = Counter((r["kind"], r["status"]) for r in rows)
    metadata.update({
        **{f"work/{k}": v for k, v in stats.as_metadata().items()},
        "candidates_ok": statuses.get(("edit", "ok"), 0),
        "candidates_failed": statuses.get(("edit", "failed"), 0),
        "null_edits": statuses.get(("null_edit", "ok"), 0),
        "by_status": dg.MetadataValue.md(counts_markdown(
            {f"{k} {s}": n for (k, s), n in statuses.items()}, "kind and status")),
        "failures_by_error": failures_markdown(rows),
        "editor": editor.editor_id,
        "model_revision": editor.revision,
        "preview": preview_metadata(spairs, shown, f"{partition} before/after"),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


assets = [edited_images]
asset_checks = [expectations_check(edited_images, "edited_images")]
