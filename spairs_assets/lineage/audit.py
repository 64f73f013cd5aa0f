"""The lineage audit of one pair: everything that went into it, step by step (DESIGN.md section 6).

`pair_lineage(source, pair_id)` follows the ids from the curated pair back to its source file and
forward to the benchmark runs and guard models that used it:

    curated_pairs (pair_id) -> edit_instructions (instruction_id) -> source_images (image_id)
                            -> edited_images / verification_scores (edit_id: the chosen candidate,
                               the other candidates of the instruction, the source's null edit)
                            -> benchmark_results (pair_id) -> guard_training_pairs (pair_id)

and records, per step, the Dagster run id and code version from the rows' ledger columns.

How it stays fast (budget: 100 ms over one million pairs; `bench/lineage_lookup.py`):

* Every table file is sorted by its id, so the row-group statistics in the Parquet footer say
  which row group can hold an id. The audit reads the footers itself (pyarrow, cached per
  `LineageIndex`), picks the row group by its min/max, reads that row group's id column, and
  only on a hit reads the rest of the row group's columns and takes the matching rows. No SQL
  engine in the loop: through DuckDB the same lookup costs 10-20 ms of planning and decoding per
  query however small the row group (measured; see the bench's docstring).
* The pair's category is known after the first step, so every later table is read in that one
  partition. Resolving the pair itself reads the curated_pairs footers until a hit (a full id)
  or all of them (a prefix, to prove it unique).
* The other candidates' and the null edit's edit ids are recomputed from the chosen edit's row
  (editor, params and the editing stage's per-candidate seed recipe) and verified against the
  chosen edit id, so they are looked up by id too. When they cannot be recomputed (another id
  recipe, an unknown base seed) the audit scans the partition's `instruction_id` column instead
  (correct, not budgeted; `lookup.edits_by` says which happened).
* Only the chosen candidate's verification row is read whole; the others' without their verdict
  JSON.

A lookup decodes one row group per table it touches, so its cost follows the row-group size:
see `bench/lineage_lookup.py` for the measured effect of `tables.ROW_GROUP_SIZE`.

Guard models are read from `guard_training_pairs` (one row per probe and training pair, written
by the guard assets beside guard_models, sorted by pair id; `storage/schemas.py`); in a
catalogue written before that table existed, from `guard_models.train_pair_ids` (a scan, not
budgeted); otherwise the list is empty.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spairs_assets.ids import edit_id as compute_edit_id
from spairs_assets.ids import hash_parts
from spairs_assets.storage.fs import Storage

MIN_PREFIX = 8
HEX_DIGITS = frozenset("0123456789abcdef")


# Per-probe lists in guard_models (large); the audit never reads them except in the fallback.
_GUARD_MODEL_LIST_COLUMNS = ("train_pair_ids", "train_image_ids", "pair_correct")
# Verification columns read for the candidates that were not chosen and for the null edit.
_VERIFICATION_WIDE = ("source_verdicts", "edited_verdicts", "adherence_detail")

_JSON_COLUMNS = {
    "source_images": ("provenance",),
    "edit_instructions": ("details",),
    "edited_images": ("params", "package_versions", "details"),
    "verification_scores": ("source_verdicts", "edited_verdicts", "source_decision",
                            "edited_decision", "reasons"),
    "curated_pairs": ("judges",),
}
_BENCHMARK_COLUMNS = ("model", "model_id", "model_version", "prompt", "pair_id", "member", "image_id",
                      "split", "rating", "predicted_category", "predicted_category_id",
                      "probability_unsafe", "parse_status", "correct", "error", "rationale",
                      "run_id", "code_version")


class LineageError(ValueError):
    """The pair id cannot be resolved to exactly one pair."""


class PairNotFound(LineageError):
    pass


class AmbiguousPairId(LineageError):
    def __init__(self, message: str, matches: list[str]):
        super().__init__(message)
        self.matches = matches


def _parse_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _storage_of(source: Any) -> Storage:
    if isinstance(source, Storage):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Storage(source)
    storage = getattr(source, "storage", None)  # Catalog, TableStore, SpairsResource
    if isinstance(storage, Storage):
        return storage
    raise TypeError(f"expected a Catalog, TableStore, Storage or data folder, got {type(source).__name__}")


# ---- one Parquet file: footer, statistics, row lookups -------------------------------------
class TableFile:
    """One partition file: its footer (parsed once) and lookups by column value."""

    def __init__(self, storage: Storage, rel: str, partition: str):
        self.partition = partition
        self._handle = None if storage.is_local else storage.open(rel)
        self.pf = pq.ParquetFile(str(storage.local_path(rel)) if storage.is_local else self._handle)
        self.meta = self.pf.metadata
        self.names = self.pf.schema_arrow.names
        self._leaf = {self.meta.schema.column(i).path: i for i in range(self.meta.num_columns)}
        self._ranges: dict[str, list[tuple[Any, Any] | None]] = {}

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def ranges(self, column: str) -> list[tuple[Any, Any] | None]:
        """(min, max) of `column` per row group, None where the footer has no statistics."""
        if column not in self._ranges:
            out: list[tuple[Any, Any] | None] = []
            leaf = self._leaf.get(column)
            for rg in range(self.meta.num_row_groups):
                stats = self.meta.row_group(rg).column(leaf).statistics if leaf is not None else None
                out.append((stats.min, stats.max) if stats is not None and stats.has_min_max else None)
            self._ranges[column] = out
        return self._ranges[column]

    def constant(self, column: str) -> Any:
        """The value of a column that has one value in the whole file (from statistics), or the
        first row's value."""
        ranges = self.ranges(column)
        if ranges and all(r is not None and r[0] == r[1] == ranges[0][0] for r in ranges):
            return ranges[0][0]
        if not self.meta.num_rows or column not in self.names:
            return None
        return self.pf.read_row_group(0, columns=[column]).column(0)[0].as_py()

    def _columns(self, columns: Sequence[str] | None, exclude: Sequence[str] = ()) -> list[str]:
        names = self.names if columns is None else [c for c in columns if c in self.names]
        return [c for c in names if c not in exclude]

    def _take(self, rg: int, positions: pa.Array, columns: list[str]) -> list[dict[str, Any]]:
        rows = self.pf.read_row_group(rg, columns=columns).take(positions).to_pylist()
        for r in rows:
            r["_partition"] = self.partition
        return rows

    def find(self, column: str, values: Iterable[str], *, columns: Sequence[str] | None = None,
             exclude: Sequence[str] = (), expect_hit: bool = False) -> list[dict[str, Any]]:
        """Rows whose `column` equals one of `values`, reading only the row groups whose
        statistics can hold a value. By default a row group's id column is read first and the
        rest only on a hit (cheap misses); `expect_hit` (the id is known to exist) reads the
        row group's columns at once and filters them."""
        if column not in self.names:
            return []
        wanted = sorted({v for v in values if v is not None})
        by_rg: dict[int, list[str]] = {}
        for rg, rng in enumerate(self.ranges(column)):
            for v in wanted:
                if rng is None or rng[0] <= v <= rng[1]:
                    by_rg.setdefault(rg, []).append(v)
        rows: list[dict[str, Any]] = []
        cols = self._columns(columns, exclude)
        for rg, vals in sorted(by_rg.items()):
            value_set = pa.array(vals, pa.string())
            if expect_hit:
                table = self.pf.read_row_group(rg, columns=list(dict.fromkeys([column, *cols])))
                hits = pc.indices_nonzero(pc.is_in(table.column(column), value_set=value_set))
                found = table.select(cols).take(hits).to_pylist()
                for r in found:
                    r["_partition"] = self.partition
                rows.extend(found)
                continue
            key = self.pf.read_row_group(rg, columns=[column]).column(0)
            hits = pc.indices_nonzero(pc.is_in(key, value_set=value_set.cast(key.type)))
            if len(hits):
                rows.extend(self._take(rg, hits, cols))
        return rows

    def find_range(self, column: str, lo: str, hi: str | None, *, limit: int) -> list[dict[str, Any]]:
        """Rows with lo <= column < hi (hi None: no upper bound), at most `limit`."""
        if column not in self.names:
            return []
        rows: list[dict[str, Any]] = []
        for rg, rng in enumerate(self.ranges(column)):
            if rng is not None and (rng[1] < lo or (hi is not None and rng[0] >= hi)):
                continue
            key = self.pf.read_row_group(rg, columns=[column]).column(0)
            mask = pc.greater_equal(key, lo)
            if hi is not None:
                mask = pc.and_(mask, pc.less(key, hi))
            hits = pc.indices_nonzero(mask)
            if len(hits):
                rows.extend(self._take(rg, hits[:limit - len(rows)], self.names))
            if len(rows) >= limit:
                break
        return rows

    def scan(self, test_columns: Sequence[str], predicate, *, columns: Sequence[str] | None = None,
             exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Rows where `predicate(row_group_table)` (a boolean array over `test_columns`) holds;
        reads `test_columns` of every row group (a full scan of those columns)."""
        if any(c not in self.names for c in test_columns):
            return []
        rows: list[dict[str, Any]] = []
        cols = self._columns(columns, exclude)
        for rg in range(self.meta.num_row_groups):
            hits = pc.indices_nonzero(predicate(self.pf.read_row_group(rg, columns=list(test_columns))))
            if len(hits):
                rows.extend(self._take(rg, hits, cols))
        return rows


class LineageIndex:
    """The table files of a data root, their footers parsed once; reuse across lookups."""

    def __init__(self, source: Any):
        self.storage = _storage_of(source)
        self._partitions: dict[str, dict[str, str]] = {}
        self._files: dict[tuple[str, str], TableFile] = {}

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partitions(self, table: str) -> dict[str, str]:
        """partition -> root-relative path of a table's files (listed once per index)."""
        if table not in self._partitions:
            rel_dir = f"tables/{table}"
            if self.storage.is_local:
                folder = self.storage.local_path(rel_dir)
                names = sorted(n for n in os.listdir(folder) if n.endswith(".parquet")
                               and not n.startswith(".")) if folder.is_dir() else []
                rels = [f"{rel_dir}/{n}" for n in names]
            else:
                rels = self.storage.list(rel_dir, suffix=".parquet")
            self._partitions[table] = {r.rsplit("/", 1)[1][: -len(".parquet")]: r for r in rels}
        return self._partitions[table]

    def file(self, table: str, partition: str) -> TableFile | None:
        rel = self.partitions(table).get(partition)
        if rel is None:
            return None
        key = (table, partition)
        if key not in self._files:
            self._files[key] = TableFile(self.storage, rel, partition)
        return self._files[key]

    def files(self, table: str, partitions: Iterable[str] | None = None) -> list[TableFile]:
        names = sorted(self.partitions(table)) if partitions is None else dict.fromkeys(partitions)
        return [f for f in (self.file(table, p) for p in names) if f is not None]

    def find(self, table: str, column: str, values: Iterable[str], *,
             partitions: Iterable[str] | None = None, columns: Sequence[str] | None = None,
             exclude: Sequence[str] = (), first: bool = False,
             expect_hit: bool = False) -> list[dict[str, Any]]:
        """Rows of `table` whose `column` is in `values`, over the given partitions (all when
        None); `first`: stop at the first partition with a hit; `expect_hit`: see TableFile."""
        values = list(values)
        rows: list[dict[str, Any]] = []
        for f in self.files(table, partitions):
            rows.extend(f.find(column, values, columns=columns, exclude=exclude,
                               expect_hit=expect_hit))
            if first and rows:
                break
        return rows


# ---- resolution ---------------------------------------------------------------------------
def normalise_pair_id(text: str) -> str:
    key = text.strip().lower()
    if not key or set(key) - HEX_DIGITS:
        raise LineageError(f"a pair id is hexadecimal (sha256); got {text!r}")
    if len(key) > 64:
        raise LineageError(f"a pair id has 64 hex digits; got {len(key)}")
    if len(key) < MIN_PREFIX:
        raise LineageError(f"give at least {MIN_PREFIX} hex digits of the pair id; got {len(key)}")
    return key


def _prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """[lo, hi) holding exactly the 64-digit ids that start with `prefix`."""
    nxt = int(prefix, 16) + 1
    if nxt >= 16 ** len(prefix):
        return prefix, None
    return prefix, format(nxt, f"0{len(prefix)}x")


def resolve_pair(index: LineageIndex, pair_id: str) -> dict[str, Any]:
    """The curated_pairs row of a full pair id or of a unique prefix of at least 8 hex digits."""
    key = normalise_pair_id(pair_id)
    if not index.partitions("curated_pairs"):
        raise PairNotFound("no curated_pairs table yet: materialize curated_pairs first")
    if len(key) == 64:
        # A content hash names one pair: stop at the first partition that has it.
        rows = index.find("curated_pairs", "pair_id", [key], first=True)
    else:
        lo, hi = _prefix_bounds(key)
        rows = []
        for f in index.files("curated_pairs"):
            rows.extend(f.find_range("pair_id", lo, hi, limit=6))
    ids = sorted({r["pair_id"] for r in rows})
    if not rows:
        what = f"id prefix {key!r}" if len(key) < 64 else f"id {key!r}"
        raise PairNotFound(f"no pair with {what} in curated_pairs")
    if len(ids) > 1:
        shown = ", ".join(i[:16] for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise AmbiguousPairId(f"pair id prefix {key!r} matches {len(ids) if len(ids) <= 5 else 'several'} "
                              f"pairs ({shown}); give more digits", ids)
    if len(rows) > 1:
        rows[0]["_also_in"] = [r["_partition"] for r in rows[1:]]
    return rows[0]


# ---- the edits of an instruction ----------------------------------------------------------
def candidate_seed(base_seed: int, instruction_id: str, candidate: int) -> int:
    """The editing stage's per-candidate seed (`editing.stage.candidate_seed`; a test keeps them
    equal). Repeated here because importing the editing stage costs ~0.6 s (config, models)."""
    return int(hash_parts("seed", base_seed, instruction_id, candidate)[:8], 16) & 0x7FFFFFFF


def null_edit_id(source_image_id: str, editor_id: str, params: dict[str, Any], seed: int) -> str:
    """The editing stage's null-edit id (a test keeps them equal)."""
    return hash_parts("null-edit", source_image_id, editor_id, params, seed)


def combined_version(category_versions: dict[str, str]) -> str:
    """`curation.export.combined_version` (a test keeps them equal), without its imports."""
    return "ds-" + hash_parts("dataset-all", sorted(category_versions.items()))[:12]


def derived_edit_ids(chosen: dict[str, Any], n_candidates: int,
                     base_seeds: Sequence[int]) -> list[str] | None:
    """Edit ids of candidates 0..n-1 of the chosen edit's instruction and of its source's null
    edit, recomputed the way the editing stage does; None unless the recomputed id of the chosen
    edit itself equals its stored id (so a changed recipe can never return wrong rows)."""
    iid, editor = chosen.get("instruction_id"), chosen.get("editor_id")
    params = _parse_json(chosen.get("params"))
    k, seed = chosen.get("candidate"), chosen.get("seed")
    if not iid or editor is None or not isinstance(params, dict) or k is None or seed is None:
        return None
    for base in base_seeds:
        if candidate_seed(base, iid, k) != seed or compute_edit_id(iid, editor, params, seed) != chosen["edit_id"]:
            continue
        n = max(int(n_candidates or 0), int(k) + 1)
        ids = [compute_edit_id(iid, editor, params, candidate_seed(base, iid, j)) for j in range(n)]
        source = chosen["source_image_id"]
        ids.append(null_edit_id(source, editor, params, candidate_seed(base, source, 0)))
        return ids
    return None


def _decode(table: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    for col in _JSON_COLUMNS.get(table, ()):
        if col in out:
            out[col] = _parse_json(out[col])
    return out


def _step(step: str, table: str, row: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"step": step, "table": table, "partition": row.get("_partition"), "key": row.get(key),
            "run_id": row.get("run_id"), "code_version": row.get("code_version")}


# ---- guard models -------------------------------------------------------------------------
def _guard_models(index: LineageIndex, pair_id: str, partition: str,
                  notes: list[str]) -> tuple[list[dict[str, Any]], str]:
    how = "none"
    rows: list[dict[str, Any]] = []
    try:
        if index.partitions("guard_training_pairs"):
            how = "guard_training_pairs"
            # Partitioned like guard_models: a pair can only be in its category's probes or in
            # the multi-category guard's.
            rows = index.find("guard_training_pairs", "pair_id", [pair_id], partitions=[partition, "multi"])
            if rows and index.partitions("guard_models"):
                _add_guard_model_details(index, rows)
        elif index.partitions("guard_models"):
            how = "guard_models.train_pair_ids (scan)"
            rows = _guard_models_by_scan(index, pair_id, [partition, "multi"])
    except (pa.ArrowException, OSError, KeyError, TypeError, ValueError) as exc:
        # A table written under another schema: the rest of the lineage still answers.
        notes.append(f"guard models not read from {how}: {exc}".splitlines()[0])
        return [], how
    rows.sort(key=lambda r: (str(r.get("category")), str(r.get("arm")), str(r.get("probe_id"))))
    return rows, how


def _guard_models_by_scan(index: LineageIndex, pair_id: str, partitions: list[str]) -> list[dict[str, Any]]:
    def contains(t: pa.Table) -> pa.Array:
        lists = t.column("train_pair_ids").combine_chunks()
        parents = pc.list_parent_indices(lists)
        hit = pc.equal(pc.list_flatten(lists), pair_id)
        hit_rows = pc.unique(pc.filter(parents, hit))
        return pc.is_in(pa.array(range(t.num_rows), pa.int64()), value_set=hit_rows.cast(pa.int64()))

    rows = []
    for f in index.files("guard_models", partitions):
        for r in f.scan(["train_pair_ids"], contains, exclude=_GUARD_MODEL_LIST_COLUMNS):
            r["role"] = "train"
            r["model"] = {k: v for k, v in r.items() if not k.startswith("_")}
            rows.append(r)
    return rows


def _add_guard_model_details(index: LineageIndex, rows: list[dict[str, Any]]) -> None:
    probe_ids = sorted({r["probe_id"] for r in rows})
    partitions = sorted({str(r.get("_partition")) for r in rows} | {str(r.get("category")) for r in rows})
    details = index.find("guard_models", "probe_id", probe_ids, partitions=partitions,
                         exclude=_GUARD_MODEL_LIST_COLUMNS)
    by_id = {d["probe_id"]: d for d in details}
    for r in rows:
        d = by_id.get(r["probe_id"])
        if d:
            r["model"] = {k: v for k, v in d.items() if not k.startswith("_")}


# ---- the whole chain ----------------------------------------------------------------------
def pair_lineage(catalog_or_tables: Any, pair_id: str, *, base_seeds: Sequence[int] = (0,),
                 exports: bool = True) -> dict[str, Any]:
    """The whole chain of one pair (full id or a unique prefix of >= 8 hex digits) as a dict of
    plain JSON values. Raises `PairNotFound` / `AmbiguousPairId` (both `LineageError`).

    `catalog_or_tables`: a `LineageIndex` (reused: footers stay parsed, fastest), or a Catalog,
    TableStore, Storage or data folder (a one-off index). `base_seeds`: editing base seeds to try
    when recomputing the other candidates' edit ids (pass `(config.editing.seed,)`).
    """
    own = not isinstance(catalog_or_tables, LineageIndex)
    index = LineageIndex(catalog_or_tables) if own else catalog_or_tables
    try:
        return _pair_lineage(index, pair_id, base_seeds, exports)
    finally:
        if own:
            index.close()


def _pair_lineage(index: LineageIndex, query: str, base_seeds: Sequence[int],
                  exports: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    notes: list[str] = []
    curated = resolve_pair(index, query)
    pid, part = curated["pair_id"], curated["_partition"]
    if curated.get("_also_in"):
        notes.append(f"pair also found in partitions {curated['_also_in']}")

    def one(table: str, column: str, value: str | None) -> dict[str, Any] | None:
        # The pair names these ids, so their rows exist: read each row group once.
        if not value:
            return None
        return next(iter(index.find(table, column, [value], partitions=[part], expect_hit=True)), None)

    source = one("source_images", "image_id", curated["source_image_id"])
    instruction = one("edit_instructions", "instruction_id", curated["instruction_id"])
    chosen = one("edited_images", "edit_id", curated["edit_id"])

    # The other candidates of the instruction and the source's null edit.
    edits_by = "derived"
    ids = derived_edit_ids(chosen, curated.get("candidates") or 0, base_seeds) if chosen else None
    edits = index.find("edited_images", "edit_id", [i for i in ids if i != chosen["edit_id"]],
                       partitions=[part], expect_hit=True) if ids else []
    if ids is None or (curated.get("null_edit_image_id") and not any(e["kind"] == "null_edit" for e in edits)):
        edits_by = "scan"
        iid, sid = curated["instruction_id"], curated["source_image_id"]
        f = index.file("edited_images", part)
        edits = [] if f is None else f.scan(
            ["instruction_id", "kind", "source_image_id"],
            lambda t: pc.or_kleene(pc.equal(t.column("instruction_id"), iid),
                                   pc.and_(pc.equal(t.column("kind"), "null_edit"),
                                           pc.equal(t.column("source_image_id"), sid))))
    edits_by_id = {e["edit_id"]: e for e in edits}
    if chosen is not None:
        edits_by_id[chosen["edit_id"]] = chosen

    chosen_scores = one("verification_scores", "edit_id", curated["edit_id"])
    others = [i for i in sorted(edits_by_id) if i != curated["edit_id"]]
    scores = {v["edit_id"]: v for v in index.find("verification_scores", "edit_id", others,
                                                  partitions=[part], exclude=_VERIFICATION_WIDE,
                                                  expect_hit=True)}
    if chosen_scores is not None:
        scores[chosen_scores["edit_id"]] = chosen_scores
    null_edits = sorted((e for e in edits_by_id.values() if e["kind"] == "null_edit"),
                        key=lambda e: e["edit_id"])
    null_edit = next((e for e in null_edits if e.get("edited_image_id") == curated.get("null_edit_image_id")),
                     null_edits[0] if null_edits else None)
    null_scores = scores.get(null_edit["edit_id"]) if null_edit else None

    benchmark = [{k: v for k, v in r.items() if k != "pair_id"} for r in index.find(
        "benchmark_results", "pair_id", [pid], partitions=[part], columns=_BENCHMARK_COLUMNS,
        expect_hit=curated["decision"] == "accepted")]
    benchmark.sort(key=lambda r: (r["model"], r["member"]))
    guards, guards_by = _guard_models(index, pid, part, notes)

    candidates = []
    for e in sorted((e for e in edits_by_id.values() if e["kind"] == "edit"),
                    key=lambda e: (e.get("candidate") or 0, e["edit_id"])):
        v = scores.get(e["edit_id"], {})
        candidates.append({
            "edit_id": e["edit_id"], "candidate": e.get("candidate"), "seed": e.get("seed"),
            "status": e.get("status"), "edited_image_id": e.get("edited_image_id"),
            "chosen": e["edit_id"] == curated["edit_id"], "passed": v.get("passed"),
            "reasons": _parse_json(v.get("reasons")), "ssim": v.get("ssim"),
            "changed_fraction": v.get("changed_fraction"), "flip_verified": v.get("flip_verified"),
            "adherence": v.get("adherence"), "error": e.get("error"),
            "run_id": e.get("run_id"), "verification_run_id": v.get("run_id")})

    steps = [s for s in (
        _step("source", "source_images", source, "image_id"),
        _step("instruction", "edit_instructions", instruction, "instruction_id"),
        _step("edit", "edited_images", chosen, "edit_id"),
        _step("verification", "verification_scores", chosen_scores, "edit_id"),
        _step("null_edit", "edited_images", null_edit, "edit_id"),
        _step("null_edit_verification", "verification_scores", null_scores, "edit_id"),
        _step("curation", "curated_pairs", curated, "pair_id"),
    ) if s is not None]
    for run_id in sorted({r["run_id"] for r in benchmark}):
        rows = [r for r in benchmark if r["run_id"] == run_id]
        steps.append({"step": "benchmark", "table": "benchmark_results", "partition": part,
                      "key": ", ".join(sorted({r["model"] for r in rows})), "run_id": run_id,
                      "code_version": rows[0]["code_version"]})
    for run_id in sorted({g.get("run_id") for g in guards if g.get("run_id")}):
        rows = [g for g in guards if g.get("run_id") == run_id]
        steps.append({"step": "guard_training", "table": guards_by.split(".")[0].split(" ")[0],
                      "partition": ", ".join(sorted({str(g.get("_partition")) for g in rows})),
                      "key": f"{len(rows)} probe(s)", "run_id": run_id,
                      "code_version": rows[0].get("code_version")})
    missing = [name for name, row in (("source_images", source), ("edit_instructions", instruction),
                                      ("edited_images", chosen),
                                      ("verification_scores", chosen_scores)) if row is None]
    if missing:
        notes.append(f"rows not found (partial materialization?): {', '.join(missing)}")

    return {
        "pair_id": pid,
        "query": query,
        "category": curated["category"],
        "partition": part,
        "images": {
            "source": curated["source_image_id"], "edited": curated["edited_image_id"],
            "unsafe": curated["unsafe_image_id"], "safe": curated["safe_image_id"],
            "null_edit": curated.get("null_edit_image_id"),
            "source_path": source.get("image_path") if source else None,
            "edited_path": chosen.get("edited_image_path") if chosen else None,
        },
        "source": _decode("source_images", source),
        "instruction": _decode("edit_instructions", instruction),
        "edit": _decode("edited_images", chosen),
        "verification": _decode("verification_scores", chosen_scores),
        "candidates": candidates,
        "null_edit": None if null_edit is None else {
            "edit": _decode("edited_images", null_edit),
            "verification": _decode("verification_scores", null_scores)},
        "curation": _decode("curated_pairs", curated),
        "dataset": _dataset(index, curated, exports),
        "benchmark": benchmark,
        "guard_models": [{k: v for k, v in g.items() if not k.startswith("_")} | {"partition": g.get("_partition")}
                         for g in guards],
        "steps": steps,
        "runs": sorted({s["run_id"] for s in steps if s.get("run_id")}),
        "lookup": {"ms": round((time.perf_counter() - t0) * 1000, 2), "edits_by": edits_by,
                   "guard_models_by": guards_by, "notes": notes},
    }


def _dataset(index: LineageIndex, curated: dict[str, Any], exports: bool) -> dict[str, Any]:
    accepted = curated["decision"] == "accepted"
    out: dict[str, Any] = {"dataset_version": curated["dataset_version"], "split": curated["split"],
                           "included": accepted, "export": None}
    if not (exports and accepted):
        return out
    # The all-category export is versioned by every category's current dataset version
    # (`curation.export.combined_version`); each curated_pairs file has one version.
    versions = {}
    for f in index.files("curated_pairs"):
        category, version = f.constant("category"), f.constant("dataset_version")
        if category is not None and version is not None:
            versions[category] = version
    if versions.get(curated["category"]) != curated["dataset_version"]:
        return out
    version = combined_version(versions)
    rel = f"exports/{version}"
    exists = index.storage.local_path(rel).is_dir() if index.storage.is_local else index.storage.exists(rel)
    out["export"] = {"dataset_version": version, "path": index.storage.uri(rel), "exists": exists}
    return out


# ---- output -------------------------------------------------------------------------------
def to_json(lineage: dict[str, Any], *, indent: int | None = 2) -> str:
    return json.dumps(lineage, indent=indent, sort_keys=False, default=str)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def verdict_summary(verdicts: Any) -> list[tuple[str, str, str]]:
    """[(judge, rating, category)] of a parsed verdicts JSON."""
    if not isinstance(verdicts, dict):
        return []
    out = []
    for judge, v in sorted(verdicts.items()):
        if isinstance(v, dict):
            out.append((judge, str(v.get("rating") or v.get("parse_status") or "?"),
                        str(v.get("category") or "")))
    return out


def render_text(lineage: dict[str, Any]) -> str:
    L = lineage
    c = L["curation"] or {}
    lines = [f"pair {L['pair_id']}  ({L['category']}, {c.get('direction')})",
             f"  decision: {c.get('decision')}: {c.get('reason')}",
             f"  split {c.get('split')}, dataset version {c.get('dataset_version')}"]
    export = (L.get("dataset") or {}).get("export")
    if export:
        lines.append(f"  export {export['dataset_version']} ({'at ' + export['path'] if export['exists'] else 'not written yet'})")
    im = L["images"]
    lines += ["", "images", f"  unsafe {im['unsafe']}", f"  safe   {im['safe']}",
              f"  source {im['source']}  edited {im['edited']}  null edit {im['null_edit'] or '-'}"]

    s = L.get("source")
    lines += ["", "1. source"]
    if s:
        lines += [f"  {s['source_kind']}:{s['source_name']}  {s['source_path']}",
                  f"  rating {s['rating']}, {s['width']}x{s['height']}, licence {s.get('licence') or '-'}",
                  f"  file sha256 {s['source_sha256']}",
                  f"  provenance {json.dumps(s.get('provenance'), sort_keys=True, default=str)}"]
    else:
        lines.append("  (source_images row not found)")

    i = L.get("instruction")
    lines += ["", "2. instruction"]
    if i:
        lines += [f"  {i.get('instruction') or '(' + i['status'] + ')'}",
                  (f"  by {i['generator_id']} {i['generator_version']}  ({i['direction']}, "
                  f"{i.get('edit_kind')} {i.get('feature_kind')}: {i.get('feature')!r} -> {i.get('replacement')!r})")]
    else:
        lines.append("  (edit_instructions row not found)")

    e = L.get("edit")
    lines += ["", "3. edit"]
    if e:
        lines += [(f"  editor {e['editor_id']} revision {e['model_revision']}, seed {e['seed']}, "
                  f"candidate {e['candidate']}"),
                  f"  params {json.dumps(e.get('params'), sort_keys=True, default=str)}",
                  f"  packages {json.dumps(e.get('package_versions'), sort_keys=True, default=str)}"]
    else:
        lines.append("  (edited_images row not found)")
    if L["candidates"]:
        lines.append("  candidates:")
        for k in L["candidates"]:
            mark = "*" if k["chosen"] else " "
            lines.append(f"   {mark} #{k['candidate']} {k['edit_id'][:16]} seed {k['seed']} "
                         f"ssim {_fmt(k['ssim'])} passed {k['passed']} reasons {k['reasons']}")

    v = L.get("verification")
    lines += ["", "4. verification"]
    if v:
        lines += [(f"  ssim {_fmt(v['ssim'])}  psnr {_fmt(v.get('psnr'), 2)}  l1 {_fmt(v['l1'])}  "
                  f"l2 {_fmt(v['l2'])}  changed {_fmt(v['changed_fraction'])}  outside "
                  f"{_fmt(v.get('outside_changed_fraction'))}  encoder cosine {_fmt(v.get('encoder_cosine'))}"),
                  f"  phash/dhash/ahash distance {v['phash_distance']}/{v['dhash_distance']}/{v['ahash_distance']}",
                  (f"  flip verified {v.get('flip_verified')}, adherence {v.get('adherence')} "
                  f"({v.get('adherence_detail') or '-'}), passed {v['passed']}, reasons {v.get('reasons')}")]
        src = {j: (r, cat) for j, r, cat in verdict_summary(v.get("source_verdicts"))}
        edt = {j: (r, cat) for j, r, cat in verdict_summary(v.get("edited_verdicts"))}
        lines.append("  verdicts (source | edited):")
        for judge in sorted(set(src) | set(edt)):
            a, b = src.get(judge, ("-", "")), edt.get(judge, ("-", ""))
            lines.append(f"    {judge:<16} {a[0]:<8} {a[1][:28]:<28} | {b[0]:<8} {b[1][:28]}")
        lines.append(f"  ensemble: source {json.dumps(v.get('source_decision'), sort_keys=True)}")
        lines.append(f"            edited {json.dumps(v.get('edited_decision'), sort_keys=True)}")
    else:
        lines.append("  (verification_scores row not found)")

    n = L.get("null_edit")
    lines += ["", "5. null edit"]
    if n:
        ne, nv = n["edit"], n.get("verification") or {}
        lines.append(f"  {ne['edit_id'][:16]} -> image {ne.get('edited_image_id')}, ssim "
                     f"{_fmt(nv.get('ssim'))}, changed {_fmt(nv.get('changed_fraction'))}")
    else:
        lines.append("  (none)")

    lines += ["", "6. benchmark"]
    if L["benchmark"]:
        for r in L["benchmark"]:
            lines.append(f"  {r['model']:<16} {r['member']:<6} rated {r['rating'] or '-':<7} "
                         f"{'correct' if r['correct'] else 'WRONG':<7} run {r['run_id']}")
    else:
        lines.append("  (not benchmarked)")

    lines += ["", "7. guard models trained on it"]
    if L["guard_models"]:
        for g in L["guard_models"]:
            desc = " ".join(f"{k}={g[k]}" for k in ("category", "arm", "budget", "seed", "encoder", "role")
                            if g.get(k) is not None)
            lines.append(f"  {g['probe_id'][:16]} {desc} run {g.get('run_id')}")
    else:
        lines.append(f"  (none; read from {L['lookup']['guard_models_by']})")

    lines += ["", "provenance chain (Dagster run ids and code versions)"]
    for st in L["steps"]:
        mat = st.get("materialization")
        extra = f"  [latest materialization: run {mat['run_id']}, data {mat['data_version']}]" if mat else ""
        lines.append(f"  {st['step']:<24} {st['table']}/{st['partition']}  run {st['run_id']}  "
                     f"code {st['code_version']}{extra}")
    for run_id, rec in (L.get("run_records") or {}).items():
        lines.append(f"  run {run_id}: {rec['status']} {rec['job']} started {rec['start_time']}")
    lk = L["lookup"]
    lines += ["", f"looked up in {lk['ms']} ms (edits {lk['edits_by']})"]
    lines += [f"note: {x}" for x in lk["notes"]]
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------------------
def lineage_command(config: Any, pair_id: str, *, as_json: bool = False,
                    html_path: str | os.PathLike[str] | None = None, show_unsafe: bool | None = None,
                    enrich: Callable[[dict[str, Any]], Any] | None = None) -> str:
    """What `spairs lineage PAIR_ID [--json] [--html FILE]` prints: the text (or JSON) lineage of
    a pair; with `html_path`, also writes the HTML card there (unsafe image blurred unless
    `show_unsafe`, which defaults to the config's `show_unsafe_previews`). `enrich` adds to the
    lineage before it is rendered (the CLI passes `defs.lineage.enrich_with_dagster`: run status
    and the latest materialization per step, from the Dagster instance; slower, optional).
    Raises `LineageError` (not found, ambiguous prefix, malformed id) with a message for the user.
    """
    from pathlib import Path

    storage = Storage(config.data_url)
    seeds = tuple(dict.fromkeys((config.editing.seed, 0)))
    lineage = pair_lineage(storage, pair_id, base_seeds=seeds)
    if enrich is not None:
        enrich(lineage)
    if html_path is not None:
        from spairs_assets.lineage.card import render_html_card
        from spairs_assets.storage.images import ImageStore

        show = config.show_unsafe_previews if show_unsafe is None else show_unsafe
        out = Path(html_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html_card(lineage, ImageStore(storage).load, show_unsafe=show),
                       encoding="utf-8")
    return to_json(lineage) if as_json else render_text(lineage)
