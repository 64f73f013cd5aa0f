"""`source_images` throughput on the demo set: the platform against a bare loop.

Generates the demo seeds once into a temporary folder, then ingests all 9 categories twice from
that folder, each time into a fresh data root with an empty cache:
  bare:     `collect_seeds` + table writes in a plain Python loop (no Dagster);
  platform: the `source_images` asset materialized through Dagster per partition.
Prints images per second for both and their ratio.
    python bench/source_images_throughput.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="spairs-bench-"))
    from spairs_assets.sources.demo import generate_demo

    t = time.perf_counter()
    truth = generate_demo(tmp / "seeds")
    gen_s = time.perf_counter() - t
    print(f"demo generation: {len(truth)} images in {gen_s:.1f} s ({len(truth) / gen_s:.1f} img/s)")

    def config_for(name: str) -> Path:
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "data_root": str(tmp / name),
            "sources": {"items": [{"kind": "folder", "name": "demo", "root": str(tmp / "seeds")}]},
        }))
        return path

    # Bare loop: the same domain calls, no orchestration.
    os.environ["SPAIRS_CONFIG"] = str(config_for("bare"))
    from spairs_assets.config import load_config
    from spairs_assets.sources.seeds import collect_seeds
    from spairs_assets.storage import ImageStore, ItemCache, Storage, TableStore

    config = load_config()
    keys = config.safety_policy.partition_keys
    t = time.perf_counter()
    n_bare = 0
    for key in keys:
        storage = Storage(config.data_url)
        batch = collect_seeds(config, key, images=ImageStore(storage),
                              cache=ItemCache(storage, "ingest"), code_version="bench")
        TableStore(storage).write("source_images", key, batch.source_images, run_id="bare",
                                  code_version="bench")
        n_bare += len(batch.source_images)
    bare_s = time.perf_counter() - t

    # Platform: the asset through Dagster, one materialization per partition.
    import dagster as dg

    from spairs_assets.defs.resources import SpairsResource
    from spairs_assets.defs.sources import source_images

    resource = SpairsResource(config_path=str(config_for("platform")))
    t = time.perf_counter()
    with dg.instance_for_test() as instance:
        for key in keys:
            result = dg.materialize([source_images], partition_key=key, instance=instance,
                                    resources={"spairs": resource})
            assert result.success
    platform_s = time.perf_counter() - t
    n_platform = TableStore(Storage(tmp / "platform")).partitions("source_images")

    print(f"bare loop: {n_bare} images in {bare_s:.2f} s = {n_bare / bare_s:.1f} img/s")
    print(f"platform:  {n_bare} images in {platform_s:.2f} s = {n_bare / platform_s:.1f} img/s "
          f"({len(n_platform)} partitions)")
    print(f"platform / bare time ratio: {platform_s / bare_s:.2f}x")


if __name__ == "__main__":
    main()
