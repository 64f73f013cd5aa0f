"""Run the real per-category pipeline on a small demo in a temporary project (for tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from spairs_assets.defs.jobs import ALL_CHECKS, PARTITIONED, SUMMARIES
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.storage import Catalog, Storage, TableStore

SMALL_DEMO = {"kind": "demo", "n_unsafe": 4, "n_safe": 2}


def write_project(root: Path, **settings: Any) -> Path:
    settings.setdefault("data_root", "data")
    settings.setdefault("sources", {"items": [SMALL_DEMO]})
    root.mkdir(parents=True, exist_ok=True)
    path = root / "spairs.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def materialize_categories(config_path: Path, categories: list[str], instance: dg.DagsterInstance,
                           *, assets=None, summaries: bool = False) -> list[dg.ExecuteInProcessResult]:
    resources = {"spairs": SpairsResource(config_path=str(config_path))}
    results = []
    for category in categories:
        results.append(dg.materialize([*(assets or PARTITIONED), *ALL_CHECKS], partition_key=category,
                                      instance=instance, resources=resources, raise_on_error=False,
                                      selection=None))
    if summaries:
        results.append(dg.materialize([*PARTITIONED, *SUMMARIES, *ALL_CHECKS], instance=instance,
                                      resources=resources, selection=dg.AssetSelection.assets(*SUMMARIES)))
    return results


def tables(config_path: Path) -> TableStore:
    return TableStore(Storage(config_path.parent / "data"))


def catalog(config_path: Path) -> Catalog:
    return Catalog(Storage(config_path.parent / "data"))
