"""The code location's jobs on the Dask executor, for reconstruction in Dask worker processes.

`ReconstructableJob.for_file(__file__, "category_pipeline_on_dask")` names this module by path,
so workers rebuild the same job without spairs_assets_tests being importable there. The job is
the code location's own `category_pipeline` (same assets, checks and resources); only the
executor differs.
"""

from __future__ import annotations

import dagster as dg

JOB = "category_pipeline"


def definitions_on(executor: dg.ExecutorDefinition) -> dg.Definitions:
    from spairs_assets.definitions import defs

    return dg.Definitions.merge(defs, dg.Definitions(executor=executor))


def category_pipeline_on_dask() -> dg.JobDefinition:
    from dagster_dask import dask_executor

    return definitions_on(dask_executor).resolve_job_def(JOB)


def category_pipeline_on_k8s() -> dg.JobDefinition:
    """Only built to validate run config (deploy/k8s/run_config.yaml); never executed here."""
    from dagster_k8s import k8s_job_executor

    return definitions_on(k8s_job_executor).resolve_job_def(JOB)
