"""Dagster's side of the lineage audit: run records and the latest materialization of each step,
read from the instance. Optional: the audit itself (`spairs_assets.lineage`) reads only tables
and stays within its 100 ms budget; this adds what only the instance knows."""

from typing import Any

import dagster as dg


def enrich_with_dagster(lineage: dict[str, Any], instance: Any) -> dict[str, Any]:
    """Add run status and times (`lineage["run_records"]`) and, per step, the latest
    materialization of its (asset, partition): its run, data version and code version
    (`step["materialization"]`). Optional: not part of the 100 ms lookup."""
    records = {}
    run_ids = list(lineage.get("runs", []))
    if run_ids:
        for rec in instance.get_run_records(dg.RunsFilter(run_ids=run_ids)):
            run = rec.dagster_run
            records[run.run_id] = {
                "status": run.status.value, "job": run.job_name,
                "start_time": rec.start_time, "end_time": rec.end_time,
                "tags": {k: v for k, v in run.tags.items() if k.startswith("dagster/partition")}}
    lineage["run_records"] = records
    seen: dict[tuple[str, str], dict[str, Any] | None] = {}
    for step in lineage.get("steps", []):
        key = (step["table"], step.get("partition") or "")
        if key not in seen:
            seen[key] = _latest_materialization(instance, *key)
        step["materialization"] = seen[key]
    return lineage


def _latest_materialization(instance: Any, asset: str, partition: str) -> dict[str, Any] | None:
    try:
        result = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1)
    except Exception:  # noqa: BLE001 - enrichment is optional: any instance error means "unknown"
        return None
    if not result.records:
        return None
    entry = result.records[0].event_log_entry
    tags = entry.asset_materialization.tags or {}
    return {"run_id": entry.run_id, "timestamp": entry.timestamp,
            "data_version": tags.get("dagster/data_version"),
            "code_version": tags.get("dagster/code_version")}
