"""Cost of a refresh after ~5% new seed images, against a full run from scratch.

In a temporary project: `spairs demo` on the default demo (24 unsafe + 16 safe seeds in each of
the 9 categories: 360 seeds) from scratch, then the demo grows by `--add-unsafe` unsafe seeds per
category (the generator only adds files; existing seeds are unchanged) and `spairs demo` runs
again, as the weekly schedule would: every category re-run, only new items computed.

Both runs are timed as the user sees them (a fresh `spairs demo` process: imports, every
category run, the summaries, the catalogue file). Generating the demo images is not part of
either run (real seeds are dropped in, not drawn): it happens before each timed run and is
printed apart. Prints both times, the ratio (the design's budget: at most 0.15), how many
items each stage computed in the refresh, and a third run with nothing new (the fixed cost of
running the graph, which the refresh pays whatever it computes). No asserts on time.

    python bench/refresh_cost.py [--workers 2] [--add-unsafe 2] [--categories O1_hate,O2_violence]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

N_UNSAFE, N_SAFE = 24, 16  # the demo defaults (spairs.yaml)


def write_config(project: Path, n_unsafe: int) -> Path:
    path = project / "spairs.yaml"
    path.write_text(yaml.safe_dump({"data_root": "data", "sources": {"items": [
        {"kind": "demo", "name": "demo", "n_unsafe": n_unsafe, "n_safe": N_SAFE}]}}))
    return path


def generate_seeds(config_path: Path, keys: list[str]) -> float:
    """Draw the demo seeds where `spairs demo` will find them (outside the timed runs)."""
    from spairs_assets.config import DemoSource, load_config
    from spairs_assets.sources.demo import DEMO_GENERATOR_VERSION
    from spairs_assets.sources.seeds import demo_root, ensure_demo_category

    started = time.perf_counter()
    config = load_config(config_path)
    source = next(s for s in config.sources.items if isinstance(s, DemoSource))
    root = demo_root(config) / DEMO_GENERATOR_VERSION
    for key in keys:
        category = config.safety_policy.category(key)
        ensure_demo_category(root / category.key, category.id, source)
    return time.perf_counter() - started


def run_demo(config_path: Path, keys: list[str], workers: int) -> float:
    env = {**os.environ, "SPAIRS_CONFIG": str(config_path), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    cmd = [str(Path(sys.executable).with_name("spairs")), "demo", "--workers", str(workers),
           "--categories", ",".join(keys)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=config_path.parent, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    with (config_path.parent / "runs.log").open("a") as log:
        log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"spairs demo failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return seconds


def computed_since(project: Path, since: float) -> dict[str, dict[str, int]]:
    """Per asset: items computed and cached in the materializations recorded after `since`."""
    import dagster as dg

    from spairs_assets.cli import project_home
    from spairs_assets.config import load_config

    os.environ["DAGSTER_HOME"] = str(project_home(load_config(project / "spairs.yaml")))
    out: dict[str, dict[str, int]] = {}
    with dg.DagsterInstance.get() as instance:
        for asset in ("edit_instructions", "edited_images", "verification_scores", "benchmark_results"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_timestamp=since), limit=1000).records
            totals = {"materializations": len(records), "computed": 0, "cached": 0}
            for record in records:
                meta = record.asset_materialization.metadata
                if "work/computed" in meta:
                    totals["computed"] += meta["work/computed"].value
                    totals["cached"] += meta["work/cached"].value
                elif "model_calls" in meta:
                    totals["computed"] += sum(meta["model_calls"].value.values())
                else:
                    for key, value in meta.items():
                        if key.startswith("judge/"):  # "3 computed, 12 cached, 0 failed"
                            computed, cached = value.value.split(", ")[:2]
                            totals["computed"] += int(computed.split()[0])
                            totals["cached"] += int(cached.split()[0])
            out[asset] = totals
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--add-unsafe", type=int, default=2,
                        help="new unsafe seeds per category (2: 18 of 360 seeds, 5.0%%)")
    parser.add_argument("--categories", default=None, help="comma-separated; all by default")
    args = parser.parse_args()

    from spairs_assets.policy import load_policy

    keys = args.categories.split(",") if args.categories else load_policy().partition_keys
    project = Path(tempfile.mkdtemp(prefix="spairs-refresh-"))
    config_path = write_config(project, N_UNSAFE)
    print(f"project {project}; {len(keys)} categories, {args.workers} workers, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    gen_full = generate_seeds(config_path, keys)
    full_s = run_demo(config_path, keys, args.workers)
    seeds_before = len(keys) * (N_UNSAFE + N_SAFE)
    print(f"full run from scratch:  {full_s:7.1f}s  ({seeds_before} seeds; drawing them took {gen_full:.1f}s, not counted)")

    write_config(project, N_UNSAFE + args.add_unsafe)
    gen_new = generate_seeds(config_path, keys)
    since = time.time()
    refresh_s = run_demo(config_path, keys, args.workers)
    added = len(keys) * args.add_unsafe
    print(f"refresh (+{added} seeds, {100 * added / seeds_before:.1f}% new):  {refresh_s:7.1f}s  "
          f"(drawing the demo set again took {gen_new:.1f}s, not counted)")
    print(f"ratio refresh / full:   {refresh_s / full_s:7.3f}  (budget: <= 0.15)")
    for asset, totals in computed_since(project, since).items():
        print(f"  refresh {asset:<20} {totals['computed']:5d} items computed, {totals['cached']:5d} cached "
              f"({totals['materializations']} materializations)")

    # The floor: the same command with nothing new (every item cached). What is left is the cost
    # of running the graph at all (processes, Dagster runs and events, checks, summaries).
    rerun_s = run_demo(config_path, keys, args.workers)
    print(f"rerun, nothing new:     {rerun_s:7.1f}s  (ratio to the full run {rerun_s / full_s:.3f}: the "
          f"fixed cost of a run)")
    print(f"refresh minus that floor: {refresh_s - rerun_s:5.1f}s  ({(refresh_s - rerun_s) / full_s:.3f} of "
          f"the full run: the new items' work)")


if __name__ == "__main__":
    main()
