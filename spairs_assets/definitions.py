"""The spairs Dagster code location (`workspace.yaml` and `dg` load `defs` from here)."""

import dagster as dg

from spairs_assets.defs import automation, jobs
from spairs_assets.defs.executors import executor_from_env
from spairs_assets.defs.resources import SpairsResource

defs = dg.Definitions(
    assets=jobs.ALL_ASSETS,
    asset_checks=jobs.ALL_CHECKS,
    jobs=jobs.jobs,
    schedules=automation.schedules,
    sensors=automation.sensors,
    resources={"spairs": SpairsResource()},
    executor=executor_from_env(),
)
