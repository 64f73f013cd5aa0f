"""The spairs Dagster code location (`workspace.yaml` and `dg` load `defs` from here)."""

from __future__ import annotations

import dagster as dg

from spairs_assets.defs import jobs, sources
from spairs_assets.defs.resources import SpairsResource

defs = dg.Definitions(
    assets=[*sources.assets],
    asset_checks=[*sources.asset_checks],
    jobs=[*jobs.jobs],
    resources={"spairs": SpairsResource()},
)
