"""Platform overhead: `spairs demo` against a bare script doing the same work without Dagster.

Both start from scratch in their own temporary project (demo seeds generated, nothing cached)
and run as a fresh process, so imports count on both sides:

- dagster: `spairs demo --workers N` (every per-category asset and check in one run per
  category, N categories at a time, then the summaries and the catalogue file);
- bare: this file with `--bare`: the same domain functions the assets call (collect_seeds,
  instruction_rows, edit_rows, verification_rows, curate, benchmark_rows, the leaderboard and its
  report, the guard probes and their learning curves, the export), in a plain loop per category over a process pool of N, writing the same
  tables, then the same summaries and catalogue file. `--checks` adds what the asset checks
  compute (the Great Expectations suites, edit minimality, split leakage) to the bare side.

The two runs' tables are compared (without ledger and timing columns) to show they did the same
work. Prints both times and their ratio (the design's budget: at most 1.5x). No asserts on time.

    python bench/end_to_end.py [--workers 2] [--categories O1_hate,O2_violence] [--checks]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BARE_RUN_ID = "bare-script"


# ---- the bare pipeline (no dagster imported anywhere below) -------------------------------------

def bare_category(config_path: str, key: str, checks: bool) -> tuple[str, float, dict[str, int]]:
    """One category, every stage, exactly as the assets call the domain code."""
    from spairs_assets.config import load_config
    from spairs_assets.curation.select import curate
    from spairs_assets.editing.stage import build_editor, edit_rows
    from spairs_assets.instructions.base import SeedImage
    from spairs_assets.instructions.stage import build_generator, instruction_rows
    from spairs_assets.benchmark.stage import benchmark_rows, build_models
    from spairs_assets.sources.ingest import UNKNOWN_PARTITION
    from spairs_assets.sources.seeds import collect_seeds
    from spairs_assets.storage import ImageStore, ItemCache, Storage, TableStore
    from spairs_assets.verification.stage import (
        ImageLoader,
        build_encoder,
        build_judges,
        verification_rows,
    )
    from spairs_assets.versioning import code_version
    from spairs_assets.vision.cache import VISION

    started = time.perf_counter()
    config = load_config(config_path)
    storage = Storage(config.data_url)
    tables, images = TableStore(storage), ImageStore(storage)
    written: dict[str, int] = {}

    def write(table: str, partition: str, rows, stage: str):
        arrow = tables.write(table, partition, rows, run_id=BARE_RUN_ID, code_version=code_version(stage))
        written[table] = written.get(table, 0) + arrow.num_rows
        if checks and partition != UNKNOWN_PARTITION:
            from spairs_assets.quality.expectations import validate_table

            validate_table(table, arrow)
        return arrow

    # sources
    batch = collect_seeds(config, key, images=images, cache=ItemCache(storage, "ingest"),
                          code_version=code_version("sources"))
    write("source_images", key, batch.source_images, "sources")
    write("quarantine", key, batch.quarantine, "sources")
    if batch.unknown_quarantine:
        write("quarantine", UNKNOWN_PARTITION, batch.unknown_quarantine, "sources")
    if batch.demo_ground_truth:
        write("demo_ground_truth", key, batch.demo_ground_truth, "sources")

    # instructions
    VISION.use_store(ItemCache(storage, "vision"))
    category = config.safety_policy.category(key)

    def load_seed(row):
        return SeedImage(image_id=row["image_id"], category=key, category_id=category.id,
                         category_label=category.label, rating=row["rating"],
                         image=images.load(row["image_id"]))

    instructions, _ = instruction_rows(
        batch.source_images, load_seed=load_seed, generator=build_generator(config),
        directions=config.instructions.directions, max_per_seed=config.instructions.max_per_seed,
        cache=ItemCache(storage, "instructions"), code_version=code_version("instructions"))
    write("edit_instructions", key, instructions, "instructions")

    # editing
    editor = build_editor(config)
    edits, _ = edit_rows(
        instructions, editor=editor, images=images, candidates=config.editing.candidates,
        base_seed=config.editing.seed, null_edit=config.editing.null_edit,
        cache=ItemCache(storage, "editing"), code_version=code_version("editing"),
        package_versions=editor.package_versions() if hasattr(editor, "package_versions") else {})
    write("edited_images", key, edits, "editing")

    # verification
    scores, _ = verification_rows(
        edits, instructions, images=images, judges=build_judges(config),
        encoder=build_encoder(config.verification, config.base_dir),
        policy=config.safety_policy, cfg=config.verification, curation=config.curation,
        cache=ItemCache(storage, "verification"), code_version=code_version("verification"))
    write("verification_scores", key, scores, "verification")

    # curation
    null_edits = {e["source_image_id"]: e["edited_image_id"] for e in edits
                  if e["kind"] == "null_edit" and e["status"] == "ok"}
    pairs = curate(scores, instructions, null_edits, config.curation)
    write("curated_pairs", key, pairs, "curation")
    from spairs_assets.reports.gallery import write_gallery

    write_gallery(storage, pairs, scores, images.load, show_unsafe=config.show_unsafe_previews,
                  include_rejected=True)
    if checks:
        from spairs_assets.curation.checks import minimality_violations, split_leakage

        regions = {r["edit_id"]: r["region_box"] for r in scores}
        minimality_violations(pairs, regions, images.load_array, config.curation,
                              config.verification.change_tolerance)
        split_leakage(pairs)

    # guards (the category's probes; the benchmark tests the deployable one)
    from spairs_assets.guards.experiment import (
        build_pool,
        settings_from_config,
        train_and_save,
        training_pair_rows,
    )

    settings, encoder_name, encoder_options = settings_from_config(config)
    pool = build_pool(pairs, batch.source_images, key, settings)
    run = train_and_save(pool, settings, encoder_name, encoder_options, storage=storage,
                         load=ImageLoader(images), cache=ItemCache(storage, "verification"),
                         folder=f"guards/{key}", progress=lambda _msg: None)
    write("guard_models", key, run.rows, "guards")
    write("guard_training_pairs", key, training_pair_rows(run.rows), "guards")

    # benchmark
    results, _ = benchmark_rows(
        pairs, build_models(config, key), {m.name: m.prompt for m in config.benchmark.models},
        splits=config.benchmark.splits, load=ImageLoader(images), policy=config.safety_policy,
        cache=ItemCache(storage, "verification"))
    write("benchmark_results", key, results, "benchmark")
    return key, time.perf_counter() - started, written


def bare_summaries(config_path: str, checks: bool) -> None:
    import shutil

    from spairs_assets.benchmark.metrics import compare_models, leaderboard
    from spairs_assets.benchmark.report import write_report
    from spairs_assets.benchmark.stage import predictions_by_model
    from spairs_assets.config import load_config
    from spairs_assets.curation.export import export_from_tables, pipeline_provenance
    from spairs_assets.storage import Catalog, ImageStore, ItemCache, Storage, TableStore
    from spairs_assets.versioning import code_version

    config = load_config(config_path)
    storage = Storage(config.data_url)
    tables, images = TableStore(storage), ImageStore(storage)

    # leaderboard
    rows = [r for p in tables.partitions("benchmark_results") for r in tables.read_rows("benchmark_results", p)]
    predictions = predictions_by_model(rows)
    board = leaderboard(predictions, n_resamples=config.benchmark.bootstrap_resamples,
                        confidence=config.benchmark.confidence, seed=config.benchmark.seed)
    comparisons = compare_models(predictions) if len(predictions) > 1 else []
    arrow = tables.write("benchmark_leaderboard", "all", board, run_id=BARE_RUN_ID,
                         code_version=code_version("benchmark"))
    write_report(board, comparisons, {
        "title": "SafetyPairs benchmark", "confidence": config.benchmark.confidence,
        "splits": ", ".join(config.benchmark.splits), "pairs": len({r["pair_id"] for r in rows}),
        "bootstrap resamples": config.benchmark.bootstrap_resamples}, storage.local_path("reports/benchmark"))

    # guard learning curves and the multi-category guard
    from spairs_assets.guards.experiment import (
        MULTI,
        build_pool,
        curve_rows,
        settings_from_config,
        train_and_save,
        training_pair_rows,
    )
    from spairs_assets.guards.report import plot_learning_curves, summary_facts, summary_markdown
    from spairs_assets.verification.stage import ImageLoader
    from spairs_assets.vision.cache import VISION

    def all_rows(table: str, exclude: tuple[str, ...] = ()) -> list[dict]:
        return [r for p in tables.partitions(table) if p not in exclude for r in tables.read_rows(table, p)]

    VISION.use_store(ItemCache(storage, "vision"))
    settings, encoder_name, encoder_options = settings_from_config(config)
    pool = build_pool(all_rows("curated_pairs"), all_rows("source_images"), MULTI, settings)
    run = train_and_save(pool, settings, encoder_name, encoder_options, storage=storage,
                         load=ImageLoader(images), cache=ItemCache(storage, "verification"),
                         folder=f"guards/{MULTI}", progress=lambda _msg: None)
    tables.write("guard_models", MULTI, run.rows, run_id=BARE_RUN_ID, code_version=code_version("guards"))
    tables.write("guard_training_pairs", MULTI, training_pair_rows(run.rows), run_id=BARE_RUN_ID,
                 code_version=code_version("guards"))
    curves = curve_rows(all_rows("guard_models", exclude=(MULTI,)) + run.rows, settings)
    tables.write("guard_curves", "all", curves, run_id=BARE_RUN_ID, code_version=code_version("guards"))
    storage.write_bytes("reports/guards/learning_curves.png", plot_learning_curves(curves))
    storage.write_bytes("reports/guards/summary.md",
                        summary_markdown(curves, summary_facts(run, settings)).encode())

    # export
    staging = Path(tempfile.mkdtemp(prefix="spairs-export-"))
    result = export_from_tables(tables, images, config.safety_policy, staging / "export",
                                pipeline_provenance(config))
    final = storage.local_path(f"exports/{result.dataset_version}")
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    result.folder.rename(final)
    if checks:
        from spairs_assets.curation.checks import cross_category_leakage
        from spairs_assets.quality.expectations import validate_table

        validate_table("benchmark_leaderboard", arrow)
        pairs = [r for p in tables.partitions("curated_pairs") for r in tables.read_rows("curated_pairs", p)]
        cross_category_leakage(pairs, config.curation.near_duplicate_distance)
    Catalog(storage).build_file()


def bare_main(config_path: str, keys: list[str], workers: int, checks: bool) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    started = time.perf_counter()
    if workers <= 1:
        done = [bare_category(config_path, k, checks) for k in keys]
    else:
        from spairs_assets.parallel import limit_threads, threads_per_worker

        # The same thread budget per worker as `spairs demo --workers N`.
        with ProcessPoolExecutor(max_workers=workers, initializer=limit_threads,
                                 initargs=(threads_per_worker(workers),)) as pool:
            futures = [pool.submit(bare_category, config_path, k, checks) for k in keys]
            done = [f.result() for f in as_completed(futures)]
    for key, seconds, _ in sorted(done):
        print(f"  bare {key:<24} {seconds:6.1f}s")
    t = time.perf_counter()
    bare_summaries(config_path, checks)
    print(f"  bare summaries {time.perf_counter() - t:.1f}s; total {time.perf_counter() - started:.1f}s")


# ---- the comparison ---------------------------------------------------------------------------

def make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "spairs.yaml"
    path.write_text(yaml.safe_dump({"data_root": "data"}))  # the default demo: 24 unsafe + 16 safe seeds per category
    return path


def timed(cmd: list[str], config: Path) -> float:
    env = {**os.environ, "SPAIRS_CONFIG": str(config), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=config.parent, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (config.parent / "run.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return seconds


def table_contents(project: Path) -> dict[str, list[str]]:
    import pyarrow.parquet as pq

    volatile = {"run_id", "code_version", "seconds", "latency_s"}
    out = {}
    for folder in sorted((project / "data" / "tables").iterdir()):
        rows = []
        for f in sorted(folder.glob("*.parquet")):
            rows += [json.dumps({k: v for k, v in r.items() if k not in volatile}, sort_keys=True, default=str)
                     for r in pq.read_table(f).to_pylist()]
        out[folder.name] = sorted(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--categories", default=None, help="comma-separated; all by default")
    parser.add_argument("--checks", action="store_true", help="also time a bare run that computes the checks")
    parser.add_argument("--bare", metavar="CONFIG", help=argparse.SUPPRESS)  # internal: run the bare pipeline
    parser.add_argument("--with-checks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.bare:
        from spairs_assets.config import load_config

        keys = args.categories.split(",") if args.categories else load_config(args.bare).safety_policy.partition_keys
        bare_main(args.bare, keys, args.workers, args.with_checks)
        return

    tmp = Path(tempfile.mkdtemp(prefix="spairs-e2e-"))
    spairs = str(Path(sys.executable).with_name("spairs"))
    cats = ["--categories", args.categories] if args.categories else []
    print(f"temporary projects under {tmp}; {args.workers} workers, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    dagster_cfg = make_project(tmp / "dagster")
    dagster_s = timed([spairs, "demo", "--workers", str(args.workers), *cats], dagster_cfg)
    print(f"spairs demo (Dagster):        {dagster_s:7.1f}s")

    bare_cfg = make_project(tmp / "bare")
    bare_s = timed([sys.executable, __file__, "--bare", str(bare_cfg), "--workers", str(args.workers), *cats],
                   bare_cfg)
    print(f"bare script (same work):      {bare_s:7.1f}s")
    print((bare_cfg.parent / "run.log").read_text().rstrip())

    runs = {"bare": bare_cfg}
    if args.checks:
        checked_cfg = make_project(tmp / "bare_checks")
        checked_s = timed([sys.executable, __file__, "--bare", str(checked_cfg), "--with-checks",
                           "--workers", str(args.workers), *cats], checked_cfg)
        runs["bare+checks"] = checked_cfg
        print(f"bare script + checks:         {checked_s:7.1f}s")

    expected = table_contents(dagster_cfg.parent)
    for name, cfg in runs.items():
        got = table_contents(cfg.parent)
        differing = [t for t in expected if got.get(t) != expected[t]]
        rows = sum(len(v) for v in expected.values())
        print(f"tables of {name} vs Dagster: {'identical' if not differing else 'DIFFER in ' + ', '.join(differing)} "
              f"({rows} rows in {len(expected)} tables)")

    print(f"ratio Dagster / bare:         {dagster_s / bare_s:7.2f}x  (budget: <= 1.5x)")
    if args.checks:
        print(f"ratio Dagster / bare+checks:  {dagster_s / checked_s:7.2f}x")


if __name__ == "__main__":
    main()
