"""The refresh schedule and the incoming-folder sensor, evaluated the way the daemon does."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from spairs_assets.config import load_config
from spairs_assets.defs import automation, jobs
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.policy import load_policy
from spairs_assets.sources.incoming import changes_since, scan_incoming
from spairs_assets_tests.pipeline_fixtures import write_project
from spairs_assets_tests.seedfiles import photo, png_bytes, write

POLICY = load_policy()
KEYS = POLICY.partition_keys
MANIFEST_COLUMNS = ["path", "category", "rating", "source", "licence"]


def _definitions() -> dg.Definitions:
    # The same assets, jobs and resource as the code location, with the automation under test.
    return dg.Definitions(assets=jobs.ALL_ASSETS, asset_checks=jobs.ALL_CHECKS, jobs=jobs.jobs,
                          schedules=automation.schedules, sensors=automation.sensors,
                          resources={"spairs": SpairsResource()})


@pytest.fixture(scope="module")
def repository():
    return _definitions().get_repository_def()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def settled(path: Path, age_s: float = 60.0) -> Path:
    """Backdate a file, as if its copy into the incoming folder finished a minute ago."""
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def add_image(root: Path, rel: str, seed: int) -> Path:
    return settled(write(root / rel, png_bytes(photo(40, 32, seed))))


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in MANIFEST_COLUMNS})
    return settled(path)


class Sensor:
    """Ticks of `incoming_seeds` against a temporary project, carrying the cursor along."""

    def __init__(self, config_path: Path, instance: dg.DagsterInstance, repository):
        self.resources = {"spairs": SpairsResource(config_path=str(config_path))}
        self.instance = instance
        self.repository = repository
        self.cursor: str | None = None
        self.run_keys: list[str] = []

    def tick(self) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(cursor=self.cursor, instance=self.instance,
                                          resources=self.resources, repository_def=self.repository)
        data = automation.incoming_seeds.evaluate_tick(context)
        if data.cursor is not None:
            self.cursor = data.cursor
        self.run_keys += [r.run_key for r in data.run_requests]
        return data

    def requested(self) -> list[str]:
        data = self.tick()
        assert all(r.job_name in (None, jobs.PIPELINE_JOB) for r in data.run_requests)
        keys = [r.partition_key for r in data.run_requests]
        assert len(keys) == len(set(keys))
        if not keys:
            assert data.skip_message
        return sorted(keys)


@pytest.fixture
def project(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    config_path = write_project(tmp_path, sources={"items": [], "incoming": "incoming"})
    return config_path, incoming


@pytest.fixture
def sensor(project, instance, repository):
    return Sensor(project[0], instance, repository)


# ---- schedule -------------------------------------------------------------------------------

def test_schedule_requests_one_run_per_category_partition(repository, instance):
    schedule = automation.category_refresh
    assert schedule.cron_schedule == "0 3 * * 1"  # automation.refresh_cron default: weekly
    assert schedule.job_name == jobs.PIPELINE_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # refresh_enabled: false
    context = dg.build_schedule_context(instance=instance, repository_def=repository)
    data = schedule.evaluate_tick(context)
    keys = [r.partition_key for r in data.run_requests]
    assert keys == KEYS
    assert len({r.run_key for r in data.run_requests}) == len(KEYS)
    assert all(r.tags["spairs/trigger"] == "schedule" for r in data.run_requests)
    # Each request is a valid partitioned run of the job (partition tag resolved by Dagster).
    assert [r.tags["dagster/partition"] for r in data.run_requests] == KEYS


def test_automation_reads_its_settings_from_config():
    sensor = automation.incoming_seeds
    assert sensor.minimum_interval_seconds == 30  # automation.sensor_interval_s default
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == jobs.PIPELINE_JOB


def test_code_location_registers_the_schedule_and_the_sensor():
    from spairs_assets.definitions import defs

    assert defs.resolve_schedule_def("category_refresh") is not None
    assert defs.resolve_sensor_def("incoming_seeds") is not None


# ---- sensor ---------------------------------------------------------------------------------

def test_first_tick_requests_exactly_the_categories_with_files(project, sensor):
    _, incoming = project
    add_image(incoming, "O1_hate/unsafe/a.png", 1)
    add_image(incoming, "O1_hate/safe/b.png", 2)
    add_image(incoming, "O6/unsafe/c.png", 3)  # a category named by its policy id
    assert sensor.requested() == ["O1_hate", "O6_weapons_substances"]


def test_a_tick_with_no_change_skips_and_keeps_the_cursor(project, sensor):
    _, incoming = project
    add_image(incoming, "O2_violence/unsafe/a.png", 1)
    assert sensor.requested() == ["O2_violence"]
    cursor = sensor.cursor
    data = sensor.tick()
    assert data.run_requests == [] and "no new or changed seeds" in data.skip_message
    assert json.loads(sensor.cursor)["categories"] == json.loads(cursor)["categories"]


def test_a_manifest_row_for_a_third_category_requests_only_that_one(project, sensor):
    _, incoming = project
    add_image(incoming, "O1_hate/unsafe/a.png", 1)
    add_image(incoming, "O6_weapons_substances/unsafe/b.png", 2)
    assert sensor.requested() == ["O1_hate", "O6_weapons_substances"]
    # A manifest listing a new image (kept in a folder that names no category) for O3.
    add_image(incoming, "batch_7/img.png", 3)
    write_manifest(incoming / "more.csv", [
        {"path": "batch_7/img.png", "category": "O3: Sexual Content", "rating": "unsafe"}])
    assert sensor.requested() == ["O3_sexual"]
    assert sensor.requested() == []
    # Appending a row for O1 to that manifest requests O1 alone.
    add_image(incoming, "batch_7/img2.png", 4)
    write_manifest(incoming / "more.csv", [
        {"path": "batch_7/img.png", "category": "O3: Sexual Content", "rating": "unsafe"},
        {"path": "batch_7/img2.png", "category": "O1", "rating": "safe"}])
    assert sensor.requested() == ["O1_hate"]


def test_run_keys_are_unique_per_change(project, sensor):
    _, incoming = project
    image = add_image(incoming, "O2_violence/unsafe/a.png", 1)
    assert sensor.requested() == ["O2_violence"]
    add_image(incoming, "O2_violence/unsafe/b.png", 2)
    assert sensor.requested() == ["O2_violence"]
    (incoming / "O2_violence/unsafe/b.png").unlink()  # back to the first state
    assert sensor.requested() == ["O2_violence"]
    write(image, png_bytes(photo(40, 32, 9)))  # the same file rewritten with new pixels
    settled(image, 30)
    assert sensor.requested() == ["O2_violence"]
    assert len(sensor.run_keys) == 4 and len(set(sensor.run_keys)) == 4
    assert all(k.startswith("incoming:") and "O2_violence" in k for k in sensor.run_keys)


def test_unknown_categories_and_hidden_files_are_ignored(project, sensor):
    _, incoming = project
    add_image(incoming, "O42_unknown/unsafe/a.png", 1)
    add_image(incoming, "O5_criminal/unsafe/.partial.png", 2)
    add_image(incoming, ".staging/O5_criminal/unsafe/x.png", 3)
    write_manifest(incoming / "m.csv", [{"path": "O42_unknown/unsafe/a.png", "category": "nope",
                                         "rating": "unsafe"}])
    data = sensor.tick()
    assert data.run_requests == [] and data.skip_message
    scan = scan_incoming(incoming, POLICY)
    assert scan.categories == {} and scan.unknown == {"nope": 1}


def test_a_removed_seed_requests_its_category(project, sensor):
    _, incoming = project
    add_image(incoming, "O7_self_harm/unsafe/a.png", 1)
    gone = add_image(incoming, "O7_self_harm/unsafe/b.png", 2)
    add_image(incoming, "O8_animal_cruelty/unsafe/c.png", 3)
    assert sensor.requested() == ["O7_self_harm", "O8_animal_cruelty"]
    gone.unlink()
    assert sensor.requested() == ["O7_self_harm"]
    for f in (incoming / "O8_animal_cruelty/unsafe").iterdir():
        f.unlink()
    assert sensor.requested() == ["O8_animal_cruelty"]  # its last seed gone: refresh to drop it
    assert "O8_animal_cruelty" not in json.loads(sensor.cursor)["categories"]


def test_a_file_still_being_copied_is_held_back_until_it_settles(project, sensor):
    _, incoming = project
    add_image(incoming, "O9_disasters/unsafe/a.png", 1)
    assert sensor.requested() == ["O9_disasters"]
    fresh = write(incoming / "O9_disasters/unsafe/b.png", png_bytes(photo(40, 32, 2)))  # mtime: now
    data = sensor.tick()
    assert data.run_requests == [] and "still being copied: O9_disasters" in data.skip_message
    settled(fresh)
    assert sensor.requested() == ["O9_disasters"]


def test_an_unreadable_manifest_is_skipped_and_the_rest_goes_on(project, sensor):
    _, incoming = project
    settled(write(incoming / "broken.csv", b"no,header,here\n1,2,3\n"))
    add_image(incoming, "O4_nudity/unsafe/a.png", 1)
    assert sensor.requested() == ["O4_nudity"]
    assert "broken.csv" in scan_incoming(incoming, POLICY).manifest_errors


def test_no_incoming_folder_configured_skips(tmp_path, instance, repository):
    config_path = write_project(tmp_path, sources={"items": []})
    data = Sensor(config_path, instance, repository).tick()
    assert data.run_requests == [] and "sources.incoming" in data.skip_message


def test_sensor_and_ingestion_agree_on_categories(project, sensor):
    """Every image the sensor attributes to a partition is ingested in that partition."""
    from spairs_assets.sources.seeds import collect_seeds
    from spairs_assets.storage import ImageStore, Storage

    config_path, incoming = project
    add_image(incoming, "O1_hate/unsafe/a.png", 1)
    add_image(incoming, "Hate, Humiliation, Harassment/safe/b.png", 2)  # by category name
    add_image(incoming, "hate/safe/d.png", 4)  # not a category: quarantined, no run
    add_image(incoming, "batch/c.png", 3)
    write_manifest(incoming / "rows.csv", [{"path": "batch/c.png", "category": "O2", "rating": "unsafe"}])
    requested = sensor.requested()
    assert requested == ["O1_hate", "O2_violence"]
    config = load_config(config_path)
    images = ImageStore(Storage(config.data_url))
    counts = {key: len(collect_seeds(config, key, images=images, cache=None,
                                     code_version="test").source_images) for key in KEYS}
    assert {k for k, n in counts.items() if n} == set(requested)
    assert counts["O1_hate"] == 2 and counts["O2_violence"] == 1


# ---- the domain module on its own -------------------------------------------------------------

def test_cursor_stays_small_with_many_files(tmp_path):
    root = tmp_path / "incoming"
    for i in range(3000):
        key = KEYS[i % len(KEYS)]
        path = root / key / ("unsafe" if i % 3 else "safe") / f"img_{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (i % 50 + 1))
    changes = changes_since(root, POLICY, None)
    assert changes.affected == KEYS
    assert len(changes.cursor) < 1500  # a digest and a count per category, not per file
    assert changes_since(root, POLICY, changes.cursor).affected == []
    assert changes.scan.items == 3000


def test_fingerprint_is_stable_and_reordering_a_manifest_changes_nothing(tmp_path):
    root = tmp_path / "incoming"
    add_image(root, "O1_hate/unsafe/a.png", 1)
    rows = [{"path": "O1_hate/unsafe/a.png", "category": "O5", "rating": "unsafe"},
            {"path": "x/b.png", "category": "O6", "rating": "safe"}]
    add_image(root, "x/b.png", 2)
    write_manifest(root / "m.csv", rows)
    first = changes_since(root, POLICY, None)
    # The image a manifest lists counts under the manifest's category, not its folder's.
    assert first.affected == ["O5_criminal", "O6_weapons_substances"]
    assert scan_incoming(root, POLICY).fingerprint == first.scan.fingerprint
    write_manifest(root / "m.csv", rows[::-1])
    assert changes_since(root, POLICY, first.cursor).affected == []


def test_a_corrupt_or_foreign_cursor_starts_over(tmp_path):
    root = tmp_path / "incoming"
    add_image(root, "O3_sexual/unsafe/a.png", 1)
    for cursor in ("not json", json.dumps({"v": 999}), json.dumps([1, 2])):
        assert changes_since(root, POLICY, cursor).affected == ["O3_sexual"]
