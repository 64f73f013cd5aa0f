"""Stage 7, guards: `guard_models` per category and the `guard_sample_efficiency` summary.

Linear probes on a frozen encoder, trained with and without counterfactual pairs at matched
budgets (domain code: `spairs_assets.guards`). Probes are written under the data root as
``guards/<category>/deploy.{safetensors,json}`` (the deployable probe, all TRAIN data) and
``guards/<category>/experiment/<arm>-<budget>-s<seed>.{safetensors,json}``; the multi-category
guard under ``guards/multi/``. A `kind: guard` judge with ``path: data/guards`` uses them.
"""

import dagster as dg

from spairs_assets.defs.common import data_version, write_partition_table
from spairs_assets.defs.curation import curated_pairs
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.sources import source_images
from spairs_assets.versioning import code_version


GUARDS_VERSION = code_version("guards")


def _all_rows(spairs: SpairsResource, table: str, exclude: tuple[str, ...] = ()) -> list[dict]:
    return [r for p in spairs.tables.partitions(table) if p not in exclude
            for r in spairs.tables.read_rows(table, p)]


def _curve_table(curves: list[dict], metric: str = "pair_accuracy") -> str:
    from spairs_assets.guards.report import _ci

    budgets = sorted({int(c["n_train"]) for c in curves})
    lines = ["| arm | " + " | ".join(f"{n} img" for n in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for arm in ("baseline", "pairs", "null_edit"):
        by_n = {int(c["n_train"]): c for c in curves if c["arm"] == arm}
        if by_n:
            lines.append(f"| {arm} | " + " | ".join(_ci(by_n.get(n), metric) for n in budgets) + " |")
    return "\n".join(lines)


@dg.asset(
    partitions_def=category_partitions,
    deps=[curated_pairs, source_images],
    group_name="guards",
    code_version=GUARDS_VERSION,
    kinds={"python", "parquet", "scikitlearn"},
    description=(
        "Linear guard probes for the category: the sample-efficiency experiment (arms baseline, "
        "pairs, null_edit at matched budgets 8/16/32/64/all images, 5 seeds, on the TRAIN split; "
        "evaluated on validation + test pairs and unpaired held-out images) and one deployable "
        "probe on all TRAIN data. Weights as safetensors with a JSON model card under "
        "guards/<category>/. Uses only this category's pairs and safe seeds, so a category's "
        "probes do not depend on which other categories ran first. "
        "Embeddings are cached per (encoder, image): a rerun embeds nothing."
    ),
)
def guard_models(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.guards.experiment import (
        build_pool,
        curve_rows,
        settings_from_config,
        train_and_save,
        training_pair_rows,
    )
    from spairs_assets.verification.stage import ImageLoader
    from spairs_assets.vision.cache import VISION

    partition = context.partition_key
    config = spairs.config
    VISION.use_store(spairs.cache("vision"))  # OCR of ocr-minilm reuses every stage's reads
    settings, encoder_name, encoder_options = settings_from_config(config)
    pool = build_pool(spairs.tables.read_rows("curated_pairs", partition),
                      spairs.tables.read_rows("source_images", partition), partition, settings)
    run = train_and_save(pool, settings, encoder_name, encoder_options, storage=spairs.storage,
                         load=ImageLoader(spairs.images), cache=spairs.cache("verification"),
                         folder=f"guards/{partition}", progress=context.log.info)
    arrow, metadata = write_partition_table(context, spairs, "guard_models", partition, run.rows,
                                            code_version=GUARDS_VERSION)
    write_partition_table(context, spairs, "guard_training_pairs", partition,
                          training_pair_rows(run.rows), code_version=GUARDS_VERSION)
    curves = curve_rows(run.rows, settings)
    deploy = next((r for r in run.rows if r["arm"] == "deploy"), None)
    metadata.update({
        "encoder": run.encoder["id"],
        "probes": len(run.rows),
        "train_pairs": len(run.pool.train_pairs),
        "held_out_pairs": len(run.pool.eval_pairs),
        "baseline_safe_seeds": f"{run.pool.own_safe} own + {len(run.pool.safe_pool) - run.pool.own_safe} other categories",
        "budgets": ", ".join(f"{b.label} ({b.n_train} img)" for b in run.budgets) or "none (pool too small)",
        "data_version": run.pool.data_version,
        "embeddings": dg.MetadataValue.json(run.embedding_stats),
        "pair_accuracy": dg.MetadataValue.md(_curve_table(curves) if curves else "_no experiment_"),
        "deploy_pair_accuracy": (deploy["pair_accuracy"] if deploy and deploy["pair_accuracy"] is not None
                                 else "n/a"),
        "guards_folder": dg.MetadataValue.path(spairs.storage.uri(f"guards/{partition}")),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


@dg.asset(
    deps=[guard_models, curated_pairs, source_images],
    group_name="guards",
    code_version=GUARDS_VERSION,
    kinds={"python", "parquet", "scikitlearn"},
    description=(
        "Guard learning curves over all categories: pair accuracy vs training images per arm "
        "(mean and 95% t-interval over seeds), the paired pairs - baseline comparison (two-level "
        "bootstrap), the budget each arm needs to reach the target; plus the multi-category "
        "guard (one binary probe over all categories pooled) trained here, stored as the "
        "`multi` file of guard_models and under guards/multi/. PNG + Markdown summary."
    ),
)
def guard_sample_efficiency(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.guards.experiment import (
        MULTI,
        build_pool,
        curve_rows,
        settings_from_config,
        train_and_save,
        training_pair_rows,
    )
    from spairs_assets.guards.report import plot_learning_curves, summary_facts, summary_markdown
    from spairs_assets.reports.previews import markdown_image
    from spairs_assets.verification.stage import ImageLoader
    from spairs_assets.vision.cache import VISION

    config = spairs.config
    VISION.use_store(spairs.cache("vision"))
    settings, encoder_name, encoder_options = settings_from_config(config)
    pool = build_pool(_all_rows(spairs, "curated_pairs"), _all_rows(spairs, "source_images"),
                      MULTI, settings)
    run = train_and_save(pool, settings, encoder_name, encoder_options, storage=spairs.storage,
                         load=ImageLoader(spairs.images), cache=spairs.cache("verification"),
                         folder=f"guards/{MULTI}", progress=context.log.info)
    write_partition_table(context, spairs, "guard_models", MULTI, run.rows,
                          code_version=GUARDS_VERSION)
    write_partition_table(context, spairs, "guard_training_pairs", MULTI,
                          training_pair_rows(run.rows), code_version=GUARDS_VERSION)
    rows = _all_rows(spairs, "guard_models", exclude=(MULTI,)) + run.rows
    curves = curve_rows(rows, settings)
    arrow, metadata = write_partition_table(context, spairs, "guard_curves", "all", curves,
                                            code_version=GUARDS_VERSION)
    metadata["sql"] = dg.MetadataValue.md('`spairs sql "SELECT * FROM guard_curves"`')
    png = plot_learning_curves(curves)
    summary = summary_markdown(curves, summary_facts(run, settings))
    spairs.storage.write_bytes("reports/guards/learning_curves.png", png)
    spairs.storage.write_bytes("reports/guards/summary.md", summary.encode())
    metadata.update({
        "summary": dg.MetadataValue.md(summary),
        "learning_curves": dg.MetadataValue.md(markdown_image(png, "guard learning curves")),
        "report_md": dg.MetadataValue.path(spairs.storage.uri("reports/guards/summary.md")),
        "plot_png": dg.MetadataValue.path(spairs.storage.uri("reports/guards/learning_curves.png")),
        "multi_probes": len(run.rows),
        "categories": len({c["category"] for c in curves}),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


assets = [guard_models, guard_sample_efficiency]
asset_checks: list = []
