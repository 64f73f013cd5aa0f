"""Cost of a rerun with everything cached, against the first run (instructions + edits).

Runs the `edit_instructions` and `edited_images` stages (the domain functions the assets call)
for all 9 demo categories into a fresh data root, then runs them again: the second run must
compute nothing. Prints both times, the items computed in each, and the ratio.
    python bench/pair_generation_rerun.py [--categories O1_hate,O2_violence]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml


def run_once(config, keys):
    from spairs_assets.editing.stage import build_editor, edit_rows
    from spairs_assets.instructions.base import SeedImage
    from spairs_assets.instructions.stage import build_generator, instruction_rows
    from spairs_assets.sources.seeds import collect_seeds
    from spairs_assets.storage import ImageStore, ItemCache, Storage
    from spairs_assets.versioning import code_version

    storage = Storage(config.data_url)
    images = ImageStore(storage)
    generator, editor = build_generator(config), build_editor(config)
    computed = {"instructions": 0, "edits": 0}
    for key in keys:
        category = config.safety_policy.category(key)
        seeds = collect_seeds(config, key, images=images, cache=ItemCache(storage, "ingest"),
                              code_version="bench").source_images

        def load(row, category=category, key=key):
            return SeedImage(row["image_id"], key, category.id, category.label, row["rating"],
                             images.load(row["image_id"]))

        rows, s1 = instruction_rows(seeds, load_seed=load, generator=generator,
                                    directions=config.instructions.directions,
                                    max_per_seed=config.instructions.max_per_seed,
                                    cache=ItemCache(storage, "instructions"),
                                    code_version=code_version("instructions"))
        _, s2 = edit_rows(rows, editor=editor, images=images, candidates=config.editing.candidates,
                          base_seed=config.editing.seed, null_edit=config.editing.null_edit,
                          cache=ItemCache(storage, "editing"), code_version=code_version("editing"),
                          package_versions={})
        computed["instructions"] += s1.computed
        computed["edits"] += s2.computed
    return computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--categories", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spairs-rerun-"))
    (tmp / "spairs.yaml").write_text(yaml.safe_dump({"data_root": str(tmp / "data")}))
    from spairs_assets.config import load_config

    config = load_config(tmp / "spairs.yaml")
    keys = args.categories.split(",") if args.categories else config.safety_policy.partition_keys
    # Not part of either run: demo seeds and their ingestion, the OCR engine, fonts.
    from spairs_assets.sources.seeds import collect_seeds
    from spairs_assets.storage import ImageStore, ItemCache, Storage

    storage = Storage(config.data_url)
    for key in keys:
        collect_seeds(config, key, images=ImageStore(storage), cache=ItemCache(storage, "ingest"),
                      code_version="bench")
    run_once(config, keys[:1])
    import shutil

    for sub in ("cache/instructions", "cache/editing", "cache/vision"):
        shutil.rmtree(tmp / "data" / sub, ignore_errors=True)
    t = time.perf_counter()
    first = run_once(config, keys)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    second = run_once(config, keys)
    second_s = time.perf_counter() - t
    print(f"first run:  {first_s:6.2f} s  computed {first}")
    print(f"rerun:      {second_s:6.2f} s  computed {second}")
    print(f"rerun / first run: {second_s / first_s:.3f}")


if __name__ == "__main__":
    main()
