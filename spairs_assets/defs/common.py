"""Small helpers shared by the asset modules: writing a partition table and describing it."""


from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from spairs_assets.defs.resources import SpairsResource

# Domain imports stay inside the functions: they pull in numpy/pyarrow/Pillow, which the code
# location does not need to load (budget: 2 s), only the steps that run.
if TYPE_CHECKING:
    import pyarrow as pa

    from spairs_assets.reports.previews import PreviewItem


def column_schema(table: str) -> dg.TableSchema:
    from spairs_assets.storage.schemas import schema_for

    return dg.TableSchema(
        columns=[dg.TableColumn(f.name, str(f.type), constraints=dg.TableColumnConstraints(
            nullable=f.nullable)) for f in schema_for(table)])


def write_partition_table(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    spairs: SpairsResource,
    table: str,
    partition: str,
    rows: "Iterable[Mapping[str, Any]] | pa.Table",
    *,
    code_version: str,
) -> "tuple[pa.Table, dict[str, Any]]":
    """Write one partition of a table (with ledger columns) and return it with UI metadata."""
    from spairs_assets.storage import TableStore

    arrow = spairs.tables.write(table, partition, rows, run_id=context.run.run_id,
                                code_version=code_version)
    metadata = {
        "dagster/row_count": arrow.num_rows,
        "dagster/column_schema": column_schema(table),
        "path": dg.MetadataValue.path(spairs.storage.uri(TableStore.rel_path(table, partition))),
        "sql": dg.MetadataValue.md(f"`spairs sql \"SELECT * FROM {table} WHERE category = '{partition}'\"`"),
    }
    return arrow, metadata


def data_version(arrow: "pa.Table") -> dg.DataVersion:
    from spairs_assets.storage import content_hash

    return dg.DataVersion(content_hash(arrow))


def preview_metadata(spairs: SpairsResource, items: "list[PreviewItem]", alt: str) -> dg.MetadataValue:
    from spairs_assets.reports.previews import markdown_image, png_bytes, preview_grid

    cfg = spairs.config.previews
    grid = preview_grid(items, thumb_size=cfg.thumb_size, show_unsafe=spairs.config.show_unsafe_previews)
    return dg.MetadataValue.md(markdown_image(png_bytes(grid), alt))


def counts_markdown(counts: Mapping[str, int], key_header: str, value_header: str = "count") -> str:
    if not counts:
        return "_none_"
    lines = [f"| {key_header} | {value_header} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    return "\n".join(lines)


def progress_logger(context: dg.AssetExecutionContext, what: str):
    """A progress callback for long per-item work: logs counts and throughput."""

    def log(done: int, total: int, stats) -> None:
        context.log.info(
            f"{what}: {done}/{total} ({stats.cached} cached, {stats.computed} computed, "
            f"{stats.failed} failed, {stats.items_per_second:.2f} items/s)")

    return log


def failures_markdown(rows: "list[dict[str, Any]]") -> dg.MetadataValue:
    from collections import Counter

    errors = Counter((r.get("error") or "")[:120] for r in rows if r.get("status") == "failed")
    return dg.MetadataValue.md(counts_markdown(errors, "error"))
