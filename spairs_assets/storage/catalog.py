"""The DuckDB catalogue: one view per table, named after it, over all partitions' Parquet files.

DuckDB allows one writing process per database file, while Dagster steps run in parallel
processes. So steps only write Parquet; the catalogue is a set of views that read it. `connect()`
gives a private in-memory database (always current, no locks); `build_file()` writes
`catalog.duckdb` for tools that want a file (the duckdb CLI, notebooks).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa

from spairs_assets.storage.fs import Storage
from spairs_assets.storage.schemas import SCHEMAS
from spairs_assets.storage.tables import TableStore

CATALOG_FILE = "catalog.duckdb"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Catalog:
    def __init__(self, storage: Storage):
        self.storage = storage
        self.tables = TableStore(storage)

    def _view_sql(self, table: str) -> str | None:
        if not self.tables.files(table):
            return None
        glob = self.storage.uri(f"tables/{table}/*.parquet")
        return (
            f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM '
            f"read_parquet({_quote(glob)}, union_by_name = true)"
        )

    def _create(self, con: duckdb.DuckDBPyConnection) -> None:
        for table, schema in SCHEMAS.items():
            sql = self._view_sql(table)
            if sql is not None:
                con.execute(sql)
            else:
                # No partition written yet: an empty table with the declared columns, so
                # queries are valid before the first materialization.
                con.register("_spairs_empty", pa.Table.from_pylist([], schema=schema))
                con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM _spairs_empty')
                con.unregister("_spairs_empty")

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        if not self.storage.is_local:
            con.execute("INSTALL httpfs; LOAD httpfs;")
        self._create(con)
        return con

    def build_file(self) -> Path:
        """Write `<root>/catalog.duckdb` atomically (views over absolute Parquet paths)."""
        final = self.storage.local_path(CATALOG_FILE)
        tmp = final.with_name(f".tmp-{os.getpid()}-{CATALOG_FILE}")
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            self._create(con)
        finally:
            con.close()
        os.replace(tmp, final)
        return final

    def query(self, sql: str) -> pa.Table:
        con = self.connect()
        try:
            relation = con.sql(sql)  # None for statements that return no rows
            return relation.to_arrow_table() if relation is not None else pa.table({})
        finally:
            con.close()
