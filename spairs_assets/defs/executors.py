"""Which Dagster executor the jobs use, chosen by `SPAIRS_EXECUTOR` so one image serves every
deployment (deploy/README.md):

- unset or `multiprocess`: Dagster's default (each step in a process on this machine);
- `dask`: `dagster_dask.dask_executor` (steps as tasks on a Dask cluster; deploy/dask/);
- `k8s`: `dagster_k8s.k8s_job_executor` (a pod per step; deploy/k8s/).

The executor packages are the `scale` extra and are imported only when chosen.
"""

import os

import dagster as dg

from spairs_assets.config import ConfigError

EXECUTORS = ("multiprocess", "dask", "k8s")


def executor_from_env() -> dg.ExecutorDefinition | None:
    kind = os.environ.get("SPAIRS_EXECUTOR", "multiprocess").strip() or "multiprocess"
    if kind not in EXECUTORS:
        raise ConfigError(f"SPAIRS_EXECUTOR={kind!r}: use one of {', '.join(EXECUTORS)}")
    try:
        if kind == "dask":
            from dagster_dask import dask_executor

            return dask_executor
        if kind == "k8s":
            from dagster_k8s import k8s_job_executor

            return k8s_job_executor
    except ImportError as exc:
        raise ConfigError(f"SPAIRS_EXECUTOR={kind} needs the scale extra "
                          f"(pip install -e '.[scale]'): {exc}") from None
    return None  # Dagster's default: multi_or_in_process_executor
