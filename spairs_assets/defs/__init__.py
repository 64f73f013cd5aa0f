"""Dagster wiring only: assets, checks, jobs, schedules, sensors and resources.

Each module here is one stage; its asset bodies read inputs, call the domain modules in
`spairs_assets/`, write tables, and return metadata.
"""

import warnings

import dagster as dg

# Partitioned asset checks are a Dagster preview feature we rely on deliberately.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)
