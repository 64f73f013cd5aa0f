"""The pyarrow schema of every table, declared once.

Writes are checked against these (see `tables.TableStore.write`); the DuckDB catalogue makes one
view per table named after it. Every table ends with the ledger columns: the Dagster run that
wrote the row and the code version of the stage that computed it.
"""

from __future__ import annotations

import pyarrow as pa

LEDGER_FIELDS = (
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("code_version", pa.string(), nullable=False),
)
LEDGER_COLUMNS = tuple(f.name for f in LEDGER_FIELDS)


def _schema(*fields: pa.Field, doc: str) -> pa.Schema:
    return pa.schema([*fields, *LEDGER_FIELDS], metadata={"doc": doc})


def _req(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


def _opt(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=True)


SOURCE_IMAGES = _schema(
    _req("image_id", pa.string()),  # sha256 of the canonical RGB pixels
    _req("image_path", pa.string()),  # path in the image store, relative to data root
    _req("category", pa.string()),  # partition key
    _req("category_id", pa.string()),  # policy id, e.g. O1
    _req("rating", pa.string()),  # "Unsafe" | "Safe"
    _req("width", pa.int32()),
    _req("height", pa.int32()),
    _req("source_kind", pa.string()),  # demo | folder | manifest
    _req("source_name", pa.string()),
    _req("source_path", pa.string()),  # the file as the source named it
    _req("source_sha256", pa.string()),  # hash of the original file bytes
    _opt("licence", pa.string()),
    _req("provenance", pa.string()),  # JSON: original format/mode/size, EXIF, resizing, source row
    doc="One row per seed image that passed ingestion.",
)

QUARANTINE = _schema(
    _req("category", pa.string()),  # partition key, or "_unknown" when the category is unknown
    _req("source_kind", pa.string()),
    _req("source_name", pa.string()),
    _req("source_path", pa.string()),
    _req("reason", pa.string()),  # one of sources.ingest.QUARANTINE_REASONS
    _req("detail", pa.string()),
    _opt("source_sha256", pa.string()),
    doc="Seed inputs that were rejected, with the reason; never silently dropped.",
)

DEMO_GROUND_TRUTH = _schema(
    _req("image_id", pa.string()),
    _req("category", pa.string()),
    _req("category_id", pa.string()),
    _req("rating", pa.string()),
    _req("file_name", pa.string()),
    _req("feature_kind", pa.string()),  # text | symbol | none
    _opt("phrase", pa.string()),
    _opt("benign_phrase", pa.string()),
    _opt("offending_word", pa.string()),
    _opt("benign_word", pa.string()),
    _opt("symbol", pa.string()),
    _opt("benign_symbol", pa.string()),
    _opt("feature_box", pa.list_(pa.int32(), 4)),  # x0, y0, x1, y1 (exclusive)
    _opt("text_box", pa.list_(pa.int32(), 4)),
    _req("details", pa.string()),  # JSON: font, colours, rotation, background, seed
    doc="Evaluation-only ground truth of the demo seeds; never handed to editors or judges.",
)

SCHEMAS: dict[str, pa.Schema] = {
    "source_images": SOURCE_IMAGES,
    "quarantine": QUARANTINE,
    "demo_ground_truth": DEMO_GROUND_TRUTH,
}


def schema_for(table: str) -> pa.Schema:
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"no schema declared for table {table!r}; known: {sorted(SCHEMAS)}") from None
