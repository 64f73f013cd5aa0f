import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spairs_assets import ids
from spairs_assets.storage import Catalog, ImageStore, ItemCache, SchemaError, Storage, TableStore
from spairs_assets.storage.schemas import SCHEMAS
from spairs_assets.storage.tables import to_table

LEDGER = {"run_id": "run-1", "code_version": "test"}


def _quarantine_row(path="a.png", reason="zero_bytes"):
    return {"category": "O1_hate", "source_kind": "folder", "source_name": "s",
            "source_path": path, "reason": reason, "detail": "0 bytes", "source_sha256": None}


@pytest.fixture
def storage(tmp_path):
    return Storage(tmp_path / "data")


def test_image_ids_are_deterministic_and_content_addressed(storage):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    store = ImageStore(storage)
    a = store.put(pixels)
    b = store.put(Image.fromarray(pixels))
    assert a == b
    assert a.path == f"images/{a.image_id[:2]}/{a.image_id}.png"
    assert np.array_equal(store.load_array(a.image_id), pixels)  # lossless round trip
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert store.put(changed).image_id != a.image_id
    # Same shape of pixels in another layout is a different image.
    assert ids.image_id(np.ascontiguousarray(pixels.reshape(30, 40, 3))) != a.image_id


def test_id_functions_are_stable_across_machines():
    # Golden values: a change here changes every id in every existing catalogue.
    assert ids.instruction_id("s", "replace HURT with HELP", "grounded") == (
        "2321f9919fb1fd9106ad7e75f21002cd48c4f4be2e9ed9fd8db25d0450decd0d"
    )
    assert ids.image_id(np.zeros((2, 3, 3), np.uint8)) == (
        "a2ebfe1ab88d0fba65a932a1277c8311f6b0eaa123a8581d441c57358f2d7070"
    )
    assert ids.edit_id("i", "e", {"b": 1, "a": 2}, 3) == ids.edit_id("i", "e", {"a": 2, "b": 1}, 3)
    assert ids.pair_id("u", "s", "i") != ids.pair_id("s", "u", "i")


def test_table_write_read_roundtrip_adds_ledger(storage):
    tables = TableStore(storage)
    written = tables.write("quarantine", "O1_hate", [_quarantine_row()], **LEDGER)
    assert written.schema.equals(SCHEMAS["quarantine"], check_metadata=False)
    back = tables.read_rows("quarantine", "O1_hate")
    assert back == [{**_quarantine_row(), **LEDGER}]
    assert tables.partitions("quarantine") == ["O1_hate"]


@pytest.mark.parametrize(
    "row, message",
    [
        ({**_quarantine_row(), "surprise": 1}, "undeclared columns"),
        ({**_quarantine_row(), "reason": None}, "'reason' must not be null"),
        ({**_quarantine_row(), "detail": {"not": "a string"}}, "quarantine"),
    ],
)
def test_schema_is_enforced_on_write(storage, row, message):
    with pytest.raises(SchemaError, match=message):
        TableStore(storage).write("quarantine", "O1_hate", [row], **LEDGER)


def test_ledger_columns_are_required():
    with pytest.raises(SchemaError, match="ledger"):
        to_table("quarantine", [_quarantine_row()], run_id="r")


def test_interrupted_write_leaves_previous_file_intact(storage, monkeypatch):
    tables = TableStore(storage)
    tables.write("quarantine", "O1_hate", [_quarantine_row("old.png")], **LEDGER)
    before = storage.read_bytes(TableStore.rel_path("quarantine", "O1_hate"))

    real_write = pq.write_table

    def crash_midway(table, where, **kw):
        real_write(table.slice(0, 1), where, **kw)  # some bytes reach the temp file...
        raise KeyboardInterrupt("killed")  # ...then the process is interrupted

    monkeypatch.setattr(pq, "write_table", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        tables.write("quarantine", "O1_hate", [_quarantine_row(f"new{i}.png") for i in range(3)], **LEDGER)
    monkeypatch.undo()

    assert storage.read_bytes(TableStore.rel_path("quarantine", "O1_hate")) == before
    leftovers = [p.name for p in storage.local_path("tables/quarantine").iterdir()]
    assert leftovers == ["O1_hate.parquet"]


def test_rewrite_replaces_rows_instead_of_appending(storage):
    tables = TableStore(storage)
    for _ in range(3):
        tables.write("quarantine", "O1_hate", [_quarantine_row()], **LEDGER)
    assert len(tables.read_rows("quarantine", "O1_hate")) == 1


def test_storage_refuses_paths_outside_root(storage):
    with pytest.raises(ValueError):
        storage.path("../escape.txt")
    with pytest.raises(ValueError):
        storage.path("/etc/passwd")


def test_catalog_has_a_view_per_table_over_all_partitions(storage):
    tables = TableStore(storage)
    tables.write("quarantine", "O1_hate", [_quarantine_row("a.png")], **LEDGER)
    tables.write("quarantine", "O2_violence", [{**_quarantine_row("b.png"), "category": "O2_violence"}], **LEDGER)
    catalog = Catalog(storage)
    result = catalog.query("SELECT category, source_path FROM quarantine ORDER BY category")
    assert result.to_pylist() == [
        {"category": "O1_hate", "source_path": "a.png"},
        {"category": "O2_violence", "source_path": "b.png"},
    ]
    # Tables with no partition yet are still queryable, with their declared columns.
    empty = catalog.query("SELECT * FROM source_images")
    assert empty.num_rows == 0 and empty.column_names == SCHEMAS["source_images"].names
    # The persistent file holds the same views.
    import duckdb

    db = catalog.build_file()
    with duckdb.connect(str(db), read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(SCHEMAS) <= names
        assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 2


def test_item_cache_roundtrip_and_counts(storage):
    cache = ItemCache(storage, "stage")
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    cache.put(key, {"x": 1})
    assert cache.get(key) == {"x": 1}
    assert (cache.hits, cache.misses) == (1, 1)
    # A torn file (possible on stores without atomic rename) is a miss, not a crash.
    storage.local_path(f"cache/stage/ab/{key}.json").write_text('{"x": ')
    assert cache.get(key) is None


def test_rows_are_stored_sorted_by_key_in_small_row_groups(storage):
    tables = TableStore(storage)
    rows = [_quarantine_row(path=f"{i:03d}.png") for i in (5, 1, 3)]
    tables.write("quarantine", "O1_hate", rows, **LEDGER)
    assert [r["source_path"] for r in tables.read_rows("quarantine", "O1_hate")] == [
        "001.png", "003.png", "005.png"]
    meta = pq.ParquetFile(storage.local_path(TableStore.rel_path("quarantine", "O1_hate"))).metadata
    stats = meta.row_group(0).column(meta.schema.names.index("source_path")).statistics
    assert (stats.min, stats.max) == ("001.png", "005.png")
