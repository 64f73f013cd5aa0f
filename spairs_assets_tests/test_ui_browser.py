"""The Dagster UI in a real browser: `dagster dev` on a small project, driven by Chromium.

The test starts `dagster dev` itself (its own process group, a free port on 127.0.0.1) with a
temporary DAGSTER_HOME holding a copy of the repository's dagster.yaml and the repository's
workspace.yaml, on a small demo project (pipeline_fixtures.write_project). It drives Debian's
chromium (/usr/bin/chromium) with pip's playwright: no browser download.

It checks, with a screenshot of each stage under test-artifacts/ui/:
  1. the global asset lineage graph shows every asset of the definitions (and the catalogue lists
     them), and the "Join the Dagster community" dialog stays hidden (`nux: enabled: false`);
  2. an asset shows all its partitions and all its checks;
  3. one partition of source_images is materialized from the UI (Materialize… → partition
     dialog → one partition → Launch 1 run), the run succeeds, and the latest materialization's
     metadata is shown, including the rendered `preview` image.

Without /usr/bin/chromium (or playwright) the tests skip, unless CI is set: then they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from spairs_assets_tests.pipeline_fixtures import write_project

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
# Debian's chromium package; SPAIRS_CHROMIUM points elsewhere (e.g. /usr/bin/chromium-browser).
CHROMIUM = Path(os.environ.get("SPAIRS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ASSET = "source_images"  # the root of the per-category graph: fast to materialize
SERVER_TIMEOUT_S = 180
RUN_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_browser() -> None:
    """Skip without a browser, except in CI, where a missing browser must fail the build."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium: scripts/system-deps.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install -e '.[test]')")
    if not problems:
        return
    reason = "; ".join(problems)
    if _in_ci():
        pytest.fail(f"CI is set but the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# What the definitions say the UI must show


def _asset_graph():
    from spairs_assets.definitions import defs

    return defs.resolve_asset_graph()


def expected_assets() -> list[str]:
    return sorted("/".join(key.path) for key in _asset_graph().get_all_asset_keys())


def expected_partitions(asset: str) -> list[str]:
    import dagster as dg

    node = _asset_graph().get(dg.AssetKey(asset))
    assert node.partitions_def is not None, f"{asset} is not partitioned"
    return list(node.partitions_def.get_partition_keys())


def expected_checks(asset: str) -> list[str]:
    import dagster as dg

    key = dg.AssetKey(asset)
    return sorted(ck.name for ck in _asset_graph().asset_check_keys if ck.asset_key == key)


# ---------------------------------------------------------------------------------------------
# dagster dev in its own process group


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    def __init__(self, root: Path):
        self.project = root / "project"
        self.home = root / "dagster_home"
        self.log_path = root / "dagster-dev.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        config = write_project(self.project)
        self.home.mkdir(parents=True)
        # The repository's instance config: its relative storage paths resolve against the
        # working directory, the temporary project, so nothing lands in the repository.
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")
        shutil.copy(REPO / "workspace.yaml", self.project / "workspace.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(self.home), "SPAIRS_CONFIG": str(config),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
               "DAGSTER_DISABLE_TELEMETRY": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
                 "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=self.project, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)  # setsid: its own group

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.load(resp)
        assert "errors" not in payload, payload
        return payload["data"]

    def wait_ready(self, timeout: float = SERVER_TIMEOUT_S) -> None:
        """The webserver answers and the code location is loaded (not an error)."""
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                       name loadStatus locationOrLoadError { __typename
                       ... on PythonError { message } } } } } }"""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as resp:
                    json.load(resp)
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
                last = repr(entries)
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e for e in entries
                              if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                    assert not errors, f"code location failed to load: {errors}"
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = repr(exc)
            time.sleep(1)
        raise AssertionError(f"dagster dev not ready after {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGINT to the whole process group (webserver, daemon, code servers, run workers),
        then SIGKILL whatever is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        for sig, grace in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()
                if not _group_alive(pgid):
                    break
                time.sleep(0.25)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def run_status(self, partition: str) -> list[dict]:
        query = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                     __typename ... on Runs { results { runId status tags { key value } } } } }"""
        data = self.graphql(query, {"tags": [{"key": "dagster/partition", "value": partition}]})
        return data["runsOrError"]["results"]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of the group keep it "alive" for killpg; ignore those.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory) -> Iterator[DagsterDev]:
    _require_browser()
    server = DagsterDev(tmp_path_factory.mktemp("ui"))
    try:
        server.start()
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(dagster_dev):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, dagster_dev):
    context = browser.new_context(viewport={"width": 1920, "height": 1200})
    context.set_default_timeout(30_000)
    context.set_default_navigation_timeout(90_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def failure_shot(page, name: str) -> Iterator[None]:
    """A screenshot of the page as it was when a step failed (then the failure as it was)."""
    try:
        yield
    except BaseException:
        try:
            shot(page, f"FAILED-{name}")
        except Exception:  # noqa: BLE001 - the original failure matters, not this one
            pass
        raise


def open_page(page, server: DagsterDev, path: str) -> None:
    page.goto(f"{server.url}{path}")
    page.wait_for_load_state("networkidle")


def visible_lines(page, locator: str = "body") -> set[str]:
    text = page.locator(locator).inner_text()
    return {line.strip() for line in text.splitlines() if line.strip()}


def wait_for_lines(page, expected: list[str], what: str, timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = visible_lines(page)
        missing = [e for e in expected if e not in lines]
        if not missing:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not shown: {missing}\npage text: {sorted(lines)}")
        page.wait_for_timeout(500)


def _label_matches(name: str, label: str) -> bool:
    """Zoomed-out graph nodes truncate long names in the middle: `bench…_leaderboard`."""
    if label == name:
        return True
    if "…" not in label:
        return False
    head, _, tail = label.partition("…")
    return len(head) + len(tail) < len(name) and name.startswith(head) and name.endswith(tail)


def unmatched_assets(names: list[str], labels: list[str]) -> list[str]:
    """Names that no graph label shows, each label standing for one asset (exact ones first)."""
    pool = list(labels)
    left = []
    for name in names:
        if name in pool:
            pool.remove(name)
        else:
            left.append(name)
    missing = []
    for name in left:
        match = next((label for label in pool if _label_matches(name, label)), None)
        if match is None:
            missing.append(name)
        else:
            pool.remove(match)
    return missing


# ---------------------------------------------------------------------------------------------
# The tests


def test_graph_shows_every_asset(page, dagster_dev):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with failure_shot(page, "test_graph_shows_every_asset"):
        assets = expected_assets()
        assert ASSET in assets
        open_page(page, dagster_dev, "/asset-groups")
        page.get_by_text("Global asset lineage").first.wait_for()
        materialize_all = page.get_by_role("button", name="Materialize all…")
        materialize_all.wait_for()
        # The "Join the Dagster community" dialog is off (dagster.yaml: nux: enabled: false).
        page.wait_for_timeout(1500)
        assert page.get_by_text("Join the Dagster community").count() == 0
        shot(page, "01-lineage-groups")

        # Groups start collapsed: expand them all from the graph's context menu (right-click on
        # the canvas above the collapsed groups, which sit in a row across the middle).
        box = materialize_all.bounding_box()
        expand = page.get_by_role("menuitem", name="Expand all groups")
        for dx, dy in ((-400, 150), (-700, 100), (-200, 250)):
            page.mouse.click(box["x"] + dx, box["y"] + dy, button="right")
            try:
                expand.wait_for(timeout=5_000)
                break
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
        expand.click()

        deadline = time.monotonic() + 60
        while True:
            labels = [line.strip() for text in page.locator("foreignObject > div").all_inner_texts()
                      for line in text.splitlines() if line.strip()]
            missing = unmatched_assets(assets, labels)
            if not missing:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"asset graph lacks {missing}; node labels: {labels}")
            page.wait_for_timeout(500)
        shot(page, "02-lineage-expanded")

        # The catalogue lists them by full name.
        open_page(page, dagster_dev, "/assets")
        wait_for_lines(page, assets, "asset catalogue")
        shot(page, "03-catalog")


def test_asset_shows_partitions_and_checks(page, dagster_dev):
    with failure_shot(page, "test_asset_shows_partitions_and_checks"):
        partitions = expected_partitions(ASSET)
        checks = expected_checks(ASSET)
        assert len(partitions) == 9 and checks

        open_page(page, dagster_dev, f"/assets/{ASSET}")
        page.get_by_role("button", name="Materialize…").wait_for()
        page.get_by_text("Partitions", exact=True).first.click()
        page.get_by_text(f"{len(partitions)} Partitions Selected").wait_for()
        lines = wait_for_lines(page, partitions, f"{ASSET} partitions")
        assert f"Missing ({len(partitions)})" in lines, "a fresh instance misses every partition"
        shot(page, "04-asset-partitions")

        page.get_by_text("Checks", exact=True).first.click()
        page.get_by_text(f"Checks ({len(checks)})").wait_for()
        wait_for_lines(page, checks, f"{ASSET} checks")
        shot(page, "05-asset-checks")


def test_materialize_one_partition_from_the_ui(page, dagster_dev):
    with failure_shot(page, "test_materialize_one_partition_from_the_ui"):
        partitions = expected_partitions(ASSET)
        partition = partitions[1]
        open_page(page, dagster_dev, f"/assets/{ASSET}")

        page.get_by_role("button", name="Materialize…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(f"Launch runs to materialize {ASSET}").wait_for()
        # The dialog opens on a custom selection of no partitions: pick one in the partition picker.
        dialog.get_by_text("Select a partition or create one").click()
        option = page.get_by_role("menuitem").filter(has_text=partition)
        assert option.count() == 1, [m.inner_text() for m in page.get_by_role("menuitem").all()]
        option.click()
        dialog.get_by_text(f"Launch runs to materialize {ASSET}").click()  # close the picker
        dialog.get_by_text("1 partition", exact=True).wait_for()
        shot(page, "06-materialize-dialog")

        launch = dialog.get_by_role("button", name="Launch 1 run")
        launch.click()
        toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
        toast.wait_for()
        short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
        shot(page, "07-run-launched")

        # Wait for the run (queued, then launched by the daemon) to finish.
        deadline = time.monotonic() + RUN_TIMEOUT_S
        run = None
        while time.monotonic() < deadline:
            runs = [r for r in dagster_dev.run_status(partition) if r["runId"].startswith(short_id)]
            run = runs[0] if runs else None
            if run and run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(2)
        assert run is not None, f"run {short_id} not found for partition {partition}"
        assert run["status"] == "SUCCESS", f"run {run}\n{dagster_dev.log_tail()}"
        assert {"key": "dagster/partition", "value": partition} in run["tags"]

        open_page(page, dagster_dev, f"/runs/{run['runId']}")
        page.get_by_text("Success", exact=True).first.wait_for()
        shot(page, "08-run-succeeded")

        # The latest materialization of that partition, with its metadata.
        open_page(page, dagster_dev, f"/assets/{ASSET}")
        page.get_by_text("Partitions", exact=True).first.click()
        page.get_by_text("Materialized (1)").wait_for()
        page.get_by_text(partition, exact=True).first.click()
        lines = wait_for_lines(page, ["Metadata", "preview", "dagster/row_count"],
                               f"{ASSET}/{partition} metadata")
        assert "Materialized" in lines
        shot(page, "09-partition-metadata")

        row = page.get_by_role("row").filter(has=page.get_by_text("preview", exact=True))
        row.get_by_text("[Show Markdown]").click()
        preview = page.get_by_role("dialog").filter(has_text="preview")
        image = preview.locator("img").first
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle())
        width, height, src = image.evaluate(
            "e => [e.naturalWidth, e.naturalHeight, e.src.slice(0, 22)]")
        assert width > 0 and height > 0 and src == "data:image/png;base64,"
        shot(page, "10-metadata-preview")
