"""Jobs: the per-category pipeline (every partitioned asset, one run per category)."""


import dagster as dg

PIPELINE_JOB = "category_pipeline"

category_pipeline = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.all(),
    description="Every per-category asset and check, for one category partition.",
)

jobs = [category_pipeline]
