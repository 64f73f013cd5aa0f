"""Jobs: the per-category pipeline (one run per category) and the cross-category summaries."""

import dagster as dg

from spairs_assets.defs import (
    benchmark,
    curation,
    editing,
    guards,
    instructions,
    sources,
    verification,
)

PIPELINE_JOB = "category_pipeline"
SUMMARIES_JOB = "summaries"

STAGES = [sources, instructions, editing, verification, curation, guards, benchmark]
ALL_ASSETS = [a for stage in STAGES for a in stage.assets]
ALL_CHECKS = [c for stage in STAGES for c in stage.asset_checks]

# Per-category assets share the category partitions; summaries read every partition and are
# unpartitioned, so they run in their own job once the categories are done.
PARTITIONED = [a for a in ALL_ASSETS if a.partitions_def is not None]
SUMMARIES = [a for a in ALL_ASSETS if a.partitions_def is None]

category_pipeline = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.assets(*PARTITIONED),
    description="Every per-category asset and check, for one category partition.",
)

summaries = dg.define_asset_job(
    SUMMARIES_JOB,
    selection=dg.AssetSelection.assets(*SUMMARIES),
    description="Cross-category summaries (dataset export, leaderboard, learning curves).",
)

jobs = [category_pipeline, summaries]
