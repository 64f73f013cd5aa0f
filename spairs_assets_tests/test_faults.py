"""Faults: a run killed with SIGKILL mid-partition, all partitions materialized at once, and
backends that fail on some items. Each ends with exactly the rows an undisturbed run has."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from spairs_assets.config import load_config
from spairs_assets.policy import load_policy
from spairs_assets.storage.schemas import LEDGER_COLUMNS, SCHEMAS, SORT_KEYS
from spairs_assets_tests import faults
from spairs_assets_tests.pipeline_fixtures import catalog, materialize_categories, write_project

pytestmark = pytest.mark.slow

CATEGORY = "O2_violence"
KEYS = load_policy().partition_keys
# Columns that legitimately differ between two runs of the same work: the ledger (which run
# wrote a row, at which code version) and wall-clock timings.
VOLATILE = {*LEDGER_COLUMNS, "seconds", "latency_s"}
# The columns that identify a row, per table (unique within a partition file): the sort keys.
ROW_KEYS = SORT_KEYS
UNPARTITIONED = ("benchmark_leaderboard", "guard_curves")  # summaries: one file, not per category
# Ids that hash what they are made of, so no two partitions can share one.
GLOBAL_KEYS = ("edit_instructions", "edited_images", "verification_scores", "curated_pairs",
               "benchmark_results")
SPAIRS = str(Path(sys.executable).with_name("spairs"))


# ---- helpers ------------------------------------------------------------------------------------

def start_demo(project: Path, categories: list[str], workers: int) -> subprocess.Popen:
    """`spairs demo` for a temporary project, in its own process group (so it can be killed
    whole); Dagster's instance lives under the project's data root."""
    env = {**os.environ, "SPAIRS_CONFIG": str(project / "spairs.yaml"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    log = (project / "demo.log").open("ab")
    return subprocess.Popen([SPAIRS, "demo", "--categories", ",".join(categories),
                             "--workers", str(workers)], cwd=project, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, project: Path, timeout: float = 900) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert rc == 0, (project / "demo.log").read_text()[-4000:]


def cache_items(project: Path, stage: str) -> int:
    folder = project / "data" / "cache" / stage
    return sum(1 for _ in folder.rglob("*.json")) if folder.exists() else 0


def kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL the run's whole process group as soon as `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def table_files(project: Path) -> dict[str, list[str]]:
    root = project / "data" / "tables"
    return {t.name: sorted(f.name for f in t.iterdir()) for t in sorted(root.iterdir()) if t.is_dir()}


def read_tables(project: Path, partitions: set[str] | None = None) -> dict[str, list[str]]:
    """table -> its rows (without volatile columns) as sorted canonical JSON, over the
    partition files (all, or those named)."""
    out: dict[str, list[str]] = {}
    root = project / "data" / "tables"
    for table in SCHEMAS:
        rows = []
        for f in sorted((root / table).glob("*.parquet")) if (root / table).exists() else []:
            if partitions is not None and f.stem not in partitions:
                continue
            for row in pq.read_table(f).to_pylist():
                rows.append(json.dumps({k: v for k, v in row.items() if k not in VOLATILE},
                                       sort_keys=True, default=str))
        out[table] = sorted(rows)
    return out


def assert_same_rows(got: dict[str, list[str]], expected: dict[str, list[str]]) -> None:
    assert set(got) == set(expected)
    for table in expected:
        missing = Counter(expected[table]) - Counter(got[table])
        extra = Counter(got[table]) - Counter(expected[table])
        assert not missing and not extra, (
            f"{table}: {sum(missing.values())} rows missing, {sum(extra.values())} unexpected; "
            f"e.g. missing {next(iter(missing), None)!s:.600} / extra {next(iter(extra), None)!s:.600}")


def assert_no_duplicates(project: Path) -> None:
    root = project / "data" / "tables"
    across: dict[str, Counter] = {t: Counter() for t in GLOBAL_KEYS}
    for table, key in ROW_KEYS.items():
        for f in sorted((root / table).glob("*.parquet")) if (root / table).exists() else []:
            ids = [tuple(r[k] for k in key) for r in pq.read_table(f, columns=list(key)).to_pylist()]
            dupes = [k for k, n in Counter(ids).items() if n > 1]
            assert not dupes, f"{table}/{f.name}: duplicate {key} {dupes[:3]}"
            if table in across:
                across[table].update(ids)
    for table, counts in across.items():
        dupes = [k for k, n in counts.items() if n > 1]
        assert not dupes, f"{table}: ids in several partitions {dupes[:3]}"


def temp_files(project: Path) -> list[str]:
    data = project / "data"
    return sorted(str(p.relative_to(data)) for p in data.rglob(".tmp*"))


class Reference:
    """An undisturbed `spairs demo` of CATEGORY in its own project, started in the background
    so the runs under test overlap with it."""

    def __init__(self, project: Path):
        self.project = project
        write_project(project)
        self.proc = start_demo(project, [CATEGORY], workers=1)
        self._done = False

    def tables(self, partitions: set[str] | None = None) -> dict[str, list[str]]:
        if not self._done:
            finish(self.proc, self.project)
            self._done = True
        return read_tables(self.project, partitions)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ref = Reference(tmp_path_factory.mktemp("reference"))
    yield ref
    if ref.proc.poll() is None:
        os.killpg(ref.proc.pid, signal.SIGKILL)
        ref.proc.wait()


# ---- a run killed mid-partition -----------------------------------------------------------------

def test_a_run_killed_mid_partition_and_rerun_ends_with_the_same_rows(tmp_path, reference):
    project = tmp_path / "killed"
    write_project(project)

    # Killed while editing: some edits are cached, no edited_images table is written yet.
    proc = start_demo(project, [CATEGORY], workers=1)
    kill_when(proc, lambda: cache_items(project, "editing") >= 3)
    assert not (project / "data/tables/edited_images").exists()

    # Killed again while judging: verification has cached verdicts, nothing curated yet.
    proc = start_demo(project, [CATEGORY], workers=1)
    kill_when(proc, lambda: cache_items(project, "verification") >= 12)
    assert not (project / "data/tables/curated_pairs").exists()

    # The third run completes.
    finish(start_demo(project, [CATEGORY], workers=1), project)

    assert_same_rows(read_tables(project), reference.tables())
    assert_no_duplicates(project)
    # One file per partition table: the category's, plus the multi-category guard's.
    for table, files in table_files(project).items():
        if table not in UNPARTITIONED:
            assert f"{CATEGORY}.parquet" in files and set(files) <= {f"{CATEGORY}.parquet", "multi.parquet"}, table
    # A kill can leave a temporary file beside what it was writing: never read as data.
    leftovers = [p for p in temp_files(project) if p.startswith("tables/")]
    assert all(Path(p).name.startswith(".tmp-") for p in leftovers)


# ---- every partition at once --------------------------------------------------------------------

def test_all_partitions_materialized_at_once_leave_a_consistent_catalogue(tmp_path):
    project = tmp_path / "all_at_once"
    write_project(project, sources={"items": [{"kind": "demo", "n_unsafe": 3, "n_safe": 1}]})
    # Nine category runs in nine processes at once, then the summaries.
    finish(start_demo(project, KEYS, workers=len(KEYS)), project, timeout=1800)

    files = table_files(project)
    per_category = sorted(f"{k}.parquet" for k in KEYS)
    for table in SCHEMAS:
        names = files.get(table, [])
        assert all(n.endswith(".parquet") and not n.startswith(".") for n in names), (table, names)
        mine = sorted(n for n in names if n[: -len(".parquet")] in KEYS)
        if table not in UNPARTITIONED:
            assert mine == per_category, table  # exactly one file per partition
        else:  # summaries (one file, or none per category)
            assert mine in ([], per_category), table
    assert files["benchmark_leaderboard"] == ["all.parquet"]
    assert temp_files(project) == []
    assert_no_duplicates(project)

    cat = catalog(project / "spairs.yaml")

    def one(sql: str):
        return cat.query(sql).to_pylist()[0]

    def count_by_category(table: str, where: str = "TRUE") -> dict[str, int]:
        rows = cat.query(f"SELECT category, count(*) AS n FROM {table} WHERE {where} GROUP BY 1")
        return {r["category"]: r["n"] for r in rows.to_pylist()}

    # Views see every partition's rows, and the same rows the files hold.
    for table in SCHEMAS:
        if not files.get(table):
            continue
        in_files = sum(pq.ParquetFile(f).metadata.num_rows
                       for f in (project / "data/tables" / table).glob("*.parquet"))
        assert one(f"SELECT count(*) AS n FROM {table}")["n"] == in_files, table
    assert count_by_category("source_images") == {k: 4 for k in KEYS}
    assert count_by_category("demo_ground_truth") == {k: 4 for k in KEYS}
    assert one("SELECT count(*) AS n FROM quarantine")["n"] == 0
    ok_instructions = count_by_category("edit_instructions", "status = 'ok'")
    assert sum(ok_instructions.values()) > 0
    assert count_by_category("curated_pairs") == count_by_category("edit_instructions", "status = 'ok'")
    # Two candidates per ok instruction plus one null edit per source that has instructions.
    expected_edits = cat.query(
        "SELECT category, 2 * count(*) + count(DISTINCT source_image_id) AS n FROM "
        "edit_instructions WHERE status = 'ok' GROUP BY 1").to_pylist()
    assert count_by_category("edited_images") == {r["category"]: r["n"] for r in expected_edits}
    assert count_by_category("verification_scores") == count_by_category("edited_images", "status = 'ok'")
    # Every row refers to rows of its own partition.
    assert one("SELECT count(*) AS n FROM curated_pairs c LEFT JOIN verification_scores v "
               "USING (edit_id) WHERE v.edit_id IS NULL OR v.category <> c.category")["n"] == 0
    assert one("SELECT count(*) AS n FROM verification_scores v LEFT JOIN edited_images e "
               "USING (edit_id) WHERE e.edit_id IS NULL OR e.category <> v.category")["n"] == 0
    accepted_test = one("SELECT count(*) AS n FROM curated_pairs WHERE decision = 'accepted' "
                        "AND split = 'test'")["n"]
    models = len(load_config(project / "spairs.yaml").benchmark.models)
    assert one("SELECT count(*) AS n FROM benchmark_results")["n"] == 2 * accepted_test * models
    assert (project / "data" / "catalog.duckdb").exists()


# ---- backends failing on some items -------------------------------------------------------------

def _materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        if m.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in m.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def _computed(text: str) -> int:
    return int(text.split(" computed")[0])  # "3 computed, 12 cached, 0 failed"


def _verdicts(rows: list[dict], judge: str) -> dict[str, str]:
    """image id -> the judge's parse status, over both images of every scored candidate."""
    out = {}
    for r in rows:
        for side, image in (("source_verdicts", "source_image_id"), ("edited_verdicts", "edited_image_id")):
            out[r[image]] = json.loads(r[side])[judge]["parse_status"]
    return out


def test_failing_editor_and_judge_items_are_recorded_and_retried(tmp_path, monkeypatch, reference):
    flag = tmp_path / "faults-on"
    flag.touch()
    faults.install(monkeypatch, flag)
    config_path = write_project(tmp_path / "faulty")
    tables = catalog(config_path).tables
    judge = faults.FLAKY_JUDGE_KIND

    with dg.instance_for_test() as instance:
        # First run: ~10% of edits and of one judge's verdicts raise. The partition completes.
        [first] = materialize_categories(config_path, [CATEGORY], instance)
        assert first.success
        edits1 = tables.read_rows("edited_images", CATEGORY)
        failed = [e for e in edits1 if e["status"] == "failed"]
        # ~10% of items by hash; on a dozen items the realised share varies, hence the bounds.
        assert 0 < len(failed) < 0.5 * len(edits1)
        assert all(faults.EDITOR_ERROR in e["error"] and e["edited_image_id"] is None for e in failed)
        assert all(e["error"] is None for e in edits1 if e["status"] == "ok")
        scores1 = tables.read_rows("verification_scores", CATEGORY)
        assert {e["edit_id"] for e in scores1} == {e["edit_id"] for e in edits1 if e["status"] == "ok"}
        status1 = _verdicts(scores1, judge)
        errored = {i for i, s in status1.items() if s == "error"}
        assert 0 < len(errored) < 0.5 * len(status1)
        for r in scores1:
            v = json.loads(r["edited_verdicts"])[judge]
            if v["parse_status"] == "error":
                assert faults.JUDGE_ERROR in v["details"]["error"] and v["rating"] is None
        assert sum(r["judge_parse_failures"] for r in scores1) >= len(errored)
        checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
        assert checks["judge_parse_failures"] is False  # the warning shows them in the UI

        # Second run, faults gone: only the failed items are computed again.
        flag.unlink()
        [second] = materialize_categories(config_path, [CATEGORY], instance)
        assert second.success
        edited = _materialization(second, "edited_images")
        assert edited["work/computed"] == len(failed)
        assert edited["work/cached"] == len(edits1) - len(failed)
        assert edited["work/failed"] == 0
        scores2 = tables.read_rows("verification_scores", CATEGORY)
        images2 = set(_verdicts(scores2, judge))
        verification = _materialization(second, "verification_scores")
        # The flaky judge rates its errored images again and the images of the retried edits;
        # the other judges only those new images. Nothing else is asked twice.
        assert _computed(verification[f"judge/{judge}"]) == len(images2 - (set(status1) - errored))
        for other in ("ocr-embedding", "open-nsfw", "pictogram"):
            assert _computed(verification[f"judge/{other}"]) == len(images2 - set(status1))
        assert all(s == "ok" for s in _verdicts(scores2, judge).values())

    # The retried partition holds exactly the rows of a run that never failed.
    assert_same_rows(read_tables(config_path.parent, {CATEGORY}), reference.tables({CATEGORY}))
    assert_no_duplicates(config_path.parent)
