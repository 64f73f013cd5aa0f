"""Scale-out: the deploy/ configs are valid Dagster config, the per-category job gives the same
curated pairs on a Dask cluster as in process, and an instance from deploy/postgres/dagster.yaml
records runs and materializations in a real PostgreSQL server.

The Postgres test starts a throw-away server from Debian's `postgresql` binaries (as the
`postgres` user, or `nobody`, when run as root). Without the binaries it skips, unless CI is
set: then it fails.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from spairs_assets_tests.dask_job import JOB, category_pipeline_on_dask, category_pipeline_on_k8s
from spairs_assets_tests.pipeline_fixtures import catalog, write_project

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DASK_JOB_FILE = Path(__file__).resolve().parent / "dask_job.py"
PG_ENV = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
          "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_DB": "dagster"}
INSTANCE_FILES = ["postgres/dagster.yaml", "k8s/dagster.yaml"]
GPU_RUN_LIMIT = {"key": "spairs/gpu", "value": "true", "limit": 1}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _partition_keys() -> list[str]:
    from spairs_assets.definitions import defs

    node = defs.resolve_asset_graph().get(dg.AssetKey("source_images"))
    return list(node.partitions_def.get_partition_keys())


def _resources(config_path: Path) -> dict:
    return {"resources": {"spairs": {"config": {"config_path": str(config_path)}}}}


# ---------------------------------------------------------------------------------------------
# The deploy/ configs, validated with Dagster's own schemas


def _load_instance_config(rel: str, tmp_path: Path) -> dict:
    """Dagster's instance loader on a copy of the file: the instance schema and env vars."""
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path / rel.replace("/", "_")
    home.mkdir()
    shutil.copy(REPO / rel if rel == "dagster.yaml" else DEPLOY / rel, home / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    return dict(config)


def _process(config_type, value, what: str):
    from dagster._config import process_config

    result = process_config(config_type, value)
    assert result.success, f"{what}: {[e.message for e in result.errors]}"
    return result.value


def _check_configurable_classes(config: dict, rel: str) -> list[str]:
    """Each `module`/`class`/`config` entry: the class imports and its config fits its schema."""
    from dagster._serdes import class_from_code_pointer

    checked = []
    for key, entry in config.items():
        if isinstance(entry, dict) and {"module", "class"} <= set(entry):
            klass = class_from_code_pointer(entry["module"], entry["class"])
            _process(klass.config_type(), entry.get("config") or {}, f"{rel}: {key}")
            checked.append(f"{key}={klass.__name__}")
    return checked


@pytest.mark.parametrize("rel", INSTANCE_FILES)
def test_instance_configs_are_valid(rel, tmp_path, monkeypatch):
    from dagster._config import process_config
    from dagster_postgres.storage import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    config = _load_instance_config(rel, tmp_path)
    checked = _check_configurable_classes(config, rel)
    assert "run_coordinator=QueuedRunCoordinator" in checked
    if rel.startswith("k8s/"):
        assert "run_launcher=K8sRunLauncher" in checked

    # Storage: dagster-postgres's own schema, the credentials read from the environment.
    storage_type = DagsterPostgresStorage.config_type()
    pg = _process(storage_type, config["storage"]["postgres"], f"{rel}: storage")
    assert pg_url_from_config(pg) == "postgresql+psycopg2://dagster:secret@127.0.0.1:5432/dagster"
    # The `gpu` pool: one step at a time by default, as on one machine.
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert GPU_RUN_LIMIT in config["concurrency"]["runs"]["tag_concurrency_limits"]

    # Without the password the storage config does not resolve: it really comes from the env.
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    assert not process_config(storage_type, config["storage"]["postgres"]).success


def test_repository_instance_config_is_valid(tmp_path):
    config = _load_instance_config("dagster.yaml", tmp_path)
    _check_configurable_classes(config, "dagster.yaml")
    assert config["nux"] == {"enabled": False} and config["telemetry"] == {"enabled": False}


def _snake(value):
    """Helm values are camelCase; Dagster's config is snake_case (k8s names like a/b stay)."""
    if isinstance(value, dict):
        return {k if "/" in k or "." in k else re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", k).lower():
                _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def test_helm_values_agree_with_the_k8s_instance(tmp_path, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    instance = _load_instance_config("k8s/dagster.yaml", tmp_path)
    launcher = instance["run_launcher"]["config"]

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    helm = values["runLauncher"]["config"]["k8sRunLauncher"]
    # The chart maps these onto the launcher's config: the result must fit K8sRunLauncher.
    as_launcher = {
        "dagster_home": "/opt/dagster/dagster_home", "instance_config_map": "dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "env_config_maps": [c["name"] for c in helm["envConfigMaps"]],
        "env_secrets": [s["name"] for s in helm["envSecrets"]],
        "run_k8s_config": _snake(helm["runK8sConfig"]),
    }
    _process(K8sRunLauncher.config_type(), as_launcher, "values.yaml: k8sRunLauncher")
    for key in ("run_k8s_config", "env_config_maps", "env_secrets", "postgres_password_secret"):
        assert as_launcher[key] == launcher[key], key

    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == "QueuedRunCoordinator"
    queued = _snake(queue["config"]["queuedRunCoordinator"])
    runs = instance["concurrency"]["runs"]
    assert queued["max_concurrent_runs"] == runs["max_concurrent_runs"]
    assert queued["tag_concurrency_limits"] == runs["tag_concurrency_limits"]

    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "spairs_assets.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["SPAIRS_EXECUTOR"] == "k8s"
    assert f"SPAIRS_CONFIG={env['SPAIRS_CONFIG']}" in launcher["env_vars"]


@pytest.mark.parametrize("executor, job_fn",
                         [("dask", category_pipeline_on_dask), ("k8s", category_pipeline_on_k8s)])
def test_run_configs_are_valid_for_the_job(executor, job_fn):
    run_config = yaml.safe_load((DEPLOY / executor / "run_config.yaml").read_text())
    job = job_fn()
    assert job.executor_def.name == executor
    dg.validate_run_config(job, run_config)
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"execution": {"config": {"no_such_field": 1}}})


def _gpu_op_tags() -> dict:
    return yaml.safe_load((DEPLOY / "k8s" / "gpu_op_tags.yaml").read_text())


def test_gpu_op_tags_ask_kubernetes_and_dask_for_a_gpu():
    import kubernetes
    from dagster_dask.executor import get_dask_resource_requirements
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    @dg.asset(op_tags=_gpu_op_tags(), pool="gpu")
    def a_gpu_asset() -> None: ...

    op_tags = a_gpu_asset.op.tags  # as the executors see them: JSON strings
    assert op_tags["spairs/gpu"] == "true"
    assert get_dask_resource_requirements(op_tags) == {"GPU": 1}
    user_config = get_user_defined_k8s_config(op_tags)  # dagster-k8s validates the tag here
    job_config = DagsterK8sJobConfig(job_image="registry.example.com/spairs:0.1.0",
                                     dagster_home="/opt/dagster/dagster_home",
                                     instance_config_map="dagster-instance")
    job = construct_dagster_k8s_job(job_config, ["dagster", "api", "execute_step"],
                                    "dagster-step-x", user_defined_k8s_config=user_config)
    pod = kubernetes.client.ApiClient().sanitize_for_serialization(job)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert toleration in pod["tolerations"]


GPU_MODEL = {"model": "/models/Qwen2.5-VL-7B-Instruct"}
GPU_CONFIG = {  # model paths are only opened when a step runs
    "data_root": "data",
    "instructions": {"generator": "vlm", "vlm": GPU_MODEL},
    "editing": {"editor": "flux-kontext", "diffusers": {"model": "/models/FLUX.1-Kontext-dev"}},
    "verification": {"judges": [{"kind": "vlm", "name": "judge", "model": GPU_MODEL}]},
    "benchmark": {"models": [{"kind": "vlm", "name": "qwen", "model": GPU_MODEL}]},
}
GPU_ASSETS = {"edit_instructions", "edited_images", "verification_scores", "benchmark_results"}

_DUMP_GPU_ASSETS = """
import json
from spairs_assets.defs import settings
from spairs_assets.definitions import defs
assets = {}
for a in defs.resolve_asset_graph().assets_defs:
    if a.is_executable and a.keys and a.op.pool == "gpu":
        for key in a.keys:
            assets[key.to_user_string()] = dict(a.op.tags)
print(json.dumps({"wired": getattr(settings, "GPU_OP_TAGS", None), "assets": assets}))
"""


def test_gpu_assets_carry_the_gpu_op_tags(tmp_path):
    """With GPU backends configured, every asset in the `gpu` pool carries gpu_op_tags.yaml.

    Pools are fixed when the code location loads, so a fresh interpreter loads it with a GPU
    config.
    """
    config = tmp_path / "spairs.yaml"
    config.write_text(yaml.safe_dump(GPU_CONFIG))
    proc = subprocess.run([sys.executable, "-c", _DUMP_GPU_ASSETS], cwd=tmp_path, timeout=300,
                          env={**os.environ, "SPAIRS_CONFIG": str(config)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dump = json.loads(proc.stdout.strip().splitlines()[-1])
    assert GPU_ASSETS <= set(dump["assets"])
    expected = _gpu_op_tags()
    assert dump["wired"] == expected
    for asset, tags in dump["assets"].items():
        got = {k: json.loads(tags[k]) if isinstance(v, dict) else tags[k]
               for k, v in expected.items() if k in tags}
        assert got == expected, f"{asset} is in the gpu pool without the GPU op tags: {tags}"


_EXECUTOR_OF_JOB = """
from spairs_assets.definitions import defs
print(defs.resolve_job_def("category_pipeline").executor_def.name)
"""


@pytest.mark.parametrize("value, executor", [("", "multi_or_in_process_executor"),
                                             ("dask", "dask"), ("k8s", "k8s"), ("spark", None)])
def test_spairs_executor_selects_the_jobs_executor(value, executor):
    proc = subprocess.run([sys.executable, "-c", _EXECUTOR_OF_JOB], cwd=REPO, timeout=300,
                          env={**os.environ, "SPAIRS_EXECUTOR": value}, capture_output=True, text=True)
    if executor is None:
        assert proc.returncode != 0 and "SPAIRS_EXECUTOR='spark': use one of" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == executor


# ---------------------------------------------------------------------------------------------
# Dask: the same curated pairs as in process


def _curated_pairs(config_path: Path) -> list[dict]:
    return catalog(config_path).query(
        "SELECT category, pair_id, instruction_id, edit_id, decision, split FROM curated_pairs "
        "ORDER BY category, pair_id, instruction_id").to_pylist()


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


@pytest.mark.slow
def test_dask_executor_gives_the_same_curated_pairs_as_in_process(tmp_path, monkeypatch):
    from dagster._core.definitions.reconstruct import ReconstructableJob
    from dask.distributed import Client, LocalCluster

    from spairs_assets.definitions import defs

    categories = _partition_keys()[:2]
    local = write_project(tmp_path / "in_process")
    remote = write_project(tmp_path / "dask")
    for home in ("home_in_process", "home_dask"):
        (tmp_path / home).mkdir()

    # In process: the code location's own job.
    with dg.instance_for_test(temp_dir=str(tmp_path / "home_in_process")) as instance:
        job = defs.resolve_job_def(JOB)
        for category in categories:
            result = job.execute_in_process(run_config=_resources(local), partition_key=category,
                                            instance=instance, raise_on_error=False)
            assert result.success, category

    # On a local Dask cluster: worker processes rebuild the job from dask_job.py and run the
    # steps. Workers inherit the environment, so the code location they load reads this config.
    monkeypatch.setenv("SPAIRS_CONFIG", str(remote))
    recon = ReconstructableJob.for_file(str(DASK_JOB_FILE), category_pipeline_on_dask.__name__)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    with cluster, Client(cluster) as client, \
            dg.instance_for_test(temp_dir=str(tmp_path / "home_dask")) as instance:
        worker_pids = set(client.run(os.getpid).values())
        address = cluster.scheduler_address
        run_config = {"execution": {"config": {"cluster": {"existing": {"address": address}}}},
                      **_resources(remote)}
        for category in categories:
            with dg.execute_job(recon, instance=instance, run_config=run_config,
                                tags={"dagster/partition": category}) as result:
                assert result.success, category
                step_pids = {e.pid for e in _events(result, "STEP_START")}
                assert step_pids and step_pids <= worker_pids, (step_pids, worker_pids)
                assert "curated_pairs" in {e.step_key for e in _events(result, "STEP_SUCCESS")}

    in_process, on_dask = _curated_pairs(local), _curated_pairs(remote)
    assert {r["category"] for r in in_process} == set(categories)
    assert any(r["decision"] == "accepted" for r in in_process)
    assert on_dask == in_process


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl in a temporary folder, on a free port on 127.0.0.1, password auth."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = _free_port()
        self.user, self.password, self.db = "spairs", "spairs-test-password", "dagster_test"
        self.dir = Path(tempfile.mkdtemp(prefix="spairs-pg-"))  # not under root's 0700 tmp dirs
        self.run_as = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            users = [u for u in ("postgres", "nobody") if u in {p.pw_name for p in pwd.getpwall()}]
            assert users, "no unprivileged user to run postgres as"
            self.run_as = pwd.getpwnam(users[0])
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)

    def _run(self, *args: str, timeout: float = 120) -> None:
        as_user = {}
        if self.run_as is not None:
            as_user = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.dir)}
        proc = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.dir, env=env,
                              capture_output=True, text=True, timeout=timeout, **as_user)
        assert proc.returncode == 0, f"{args[0]}:\n{proc.stdout}\n{proc.stderr}\n{self.log()}"

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.run_as is not None:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        data = str(self.dir / "data")
        self._run("initdb", "-D", data, "-U", self.user, "--pwfile", str(pwfile),
                  "--auth", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", data, "-l", str(self.dir / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")
        con = self.connect("postgres")
        try:
            con.autocommit = True
            con.cursor().execute(f"CREATE DATABASE {self.db}")
        finally:
            con.close()

    def connect(self, db: str | None = None):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                password=self.password, dbname=db or self.db)

    def stop(self) -> None:
        try:
            if (self.dir / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    bindir = _postgres_bin()
    if bindir is None:
        reason = "no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)"
        if _in_ci():
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_postgres_instance_stores_runs_and_materializations(postgres, tmp_path, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from spairs_assets.defs.resources import SpairsResource
    from spairs_assets.defs.sources import source_images

    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres.port))
    monkeypatch.setenv("DAGSTER_PG_USER", postgres.user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    monkeypatch.setenv("DAGSTER_PG_DB", postgres.db)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", home / "dagster.yaml")
    config_path = write_project(tmp_path / "project")
    partition = _partition_keys()[3]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        result = dg.materialize([source_images], partition_key=partition, instance=instance,
                                resources={"spairs": SpairsResource(config_path=str(config_path))})
        assert result.success
        # The `gpu` pool's slots live in the same database.
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        latest = instance.get_latest_materialization_event(dg.AssetKey("source_images"))
        assert latest is not None and latest.run_id == result.run_id
        assert latest.asset_materialization.partition == partition
        assert latest.asset_materialization.metadata["seeds"].value == 6  # 4 unsafe + 2 safe

    # Read back straight from PostgreSQL, without Dagster.
    con = postgres.connect()
    try:
        cur = con.cursor()
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchall() == [("SUCCESS",)]
        cur.execute("SELECT asset_key, partition FROM event_logs WHERE run_id = %s "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (result.run_id,))
        assert cur.fetchall() == [('["source_images"]', partition)]
        cur.execute("SELECT concurrency_key, count(*) FROM concurrency_slots GROUP BY 1")
        assert ("gpu", 1) in cur.fetchall()
    finally:
        con.close()
