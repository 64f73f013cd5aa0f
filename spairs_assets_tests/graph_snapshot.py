"""A plain-data description of the asset graph, snapshotted so graph changes show in review."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitions": (
                partitions.get_partition_keys() if partitions is not None else None
            ),
            "pools": sorted(node.pools or []),
            "checks": {
                check.name: {
                    "blocking": graph.get_check_spec(check).blocking,
                    "partitioned": graph.get_check_spec(check).partitions_def is not None,
                }
                for check in sorted(node.check_keys, key=lambda c: c.name)
            },
        }
    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    return {
        "assets": json.loads(json.dumps(assets)),
        "jobs": jobs,
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }
