"""The spairs Dagster code location (`workspace.yaml` and `dg` load `defs` from here)."""

from __future__ import annotations

import warnings

import dagster as dg

# Partitioned asset checks are a Dagster preview feature we rely on deliberately.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from spairs_assets.defs import jobs, sources  # noqa: E402
from spairs_assets.defs.resources import SpairsResource  # noqa: E402

defs = dg.Definitions(
    assets=[*sources.assets],
    asset_checks=[*sources.asset_checks],
    jobs=[*jobs.jobs],
    resources={"spairs": SpairsResource()},
)
