"""Stage 6, benchmark: `benchmark_results` per category and the `benchmark_leaderboard`."""

from collections import Counter

import dagster as dg

from spairs_assets.defs.common import counts_markdown, data_version, progress_logger, write_partition_table
from spairs_assets.defs.curation import curated_pairs
from spairs_assets.defs.guards import guard_models
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.quality import expectations_check
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.settings import CONFIG, gpu_placement
from spairs_assets.versioning import code_version

BENCHMARK_VERSION = code_version("benchmark")


@dg.asset(
    partitions_def=category_partitions,
    deps=[curated_pairs, guard_models],  # the category's trained guard is a model under test
    group_name="benchmark",
    code_version=BENCHMARK_VERSION,
    kinds={"python", "parquet"},
    **gpu_placement(any(m.kind in ("vlm", "shieldgemma2") for m in CONFIG.benchmark.models)),
    description=(
        "Every model under test (`benchmark.models`) rates both images of every accepted pair in "
        "the chosen splits: raw output, parsed verdict, parse status, latency. Cached per "
        "(model, revision, prompt version, image): adding a model evaluates only that model."
    ),
)
def benchmark_results(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.benchmark.metrics import score_pairs
    from spairs_assets.benchmark.stage import benchmark_rows, build_models, predictions_by_model
    from spairs_assets.verification.stage import ImageLoader
    from spairs_assets.vision.cache import VISION

    partition = context.partition_key
    config = spairs.config
    VISION.use_store(spairs.cache("vision"))
    models = build_models(config, partition)
    rows, stats = benchmark_rows(
        spairs.tables.read_rows("curated_pairs", partition), models,
        {m.name: m.prompt for m in config.benchmark.models}, splits=config.benchmark.splits,
        load=ImageLoader(spairs.images), policy=config.safety_policy,
        cache=spairs.cache("verification"), progress=progress_logger(context, "benchmark"))
    arrow, metadata = write_partition_table(context, spairs, "benchmark_results", partition, rows,
                                            code_version=BENCHMARK_VERSION)
    scores = {m: score_pairs(p) for m, p in predictions_by_model(rows).items()}
    lines = ["| model | pairs | pair acc | FPR | FNR | invalid | computed | cached |",
             "|---|---|---|---|---|---|---|---|"]
    for name in models:
        s, st = scores.get(name, {}), stats[name]
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {name} | {s.get('n_pairs', 0)} | {fmt(s.get('pair_accuracy'))} | "
                     f"{fmt(s.get('fpr'))} | {fmt(s.get('fnr'))} | {fmt(s.get('invalid_rate'))} | "
                     f"{st.computed} | {st.cached} |")
    metadata.update({
        "pairs": len({r["pair_id"] for r in rows}),
        "models": len(models),
        "summary": dg.MetadataValue.md("\n".join(lines)),
        # How many model calls this run made per model: a newly added model is the only one
        # with calls when nothing else changed.
        "model_calls": dg.MetadataValue.json({n: s.computed for n, s in stats.items()}),
        "parse_status": dg.MetadataValue.md(counts_markdown(Counter(r["parse_status"] for r in rows), "status")),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))



asset_checks = [expectations_check(benchmark_results, "benchmark_results")]  # + leaderboard below


@dg.asset(
    deps=[benchmark_results],
    group_name="benchmark",
    code_version=BENCHMARK_VERSION,
    kinds={"python", "parquet"},
    description=(
        "The leaderboard over all categories: per model, overall and per category, pair "
        "accuracy, image accuracy, FPR (over-blocking), FNR, consistency failures, category "
        "accuracy and invalid outputs, with bootstrap intervals over pairs; McNemar tests "
        "against the best model; PNG plots and a Markdown/HTML report."
    ),
)
def benchmark_leaderboard(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.benchmark.metrics import compare_models, leaderboard
    from spairs_assets.benchmark.report import write_report
    from spairs_assets.benchmark.stage import predictions_by_model
    from spairs_assets.reports.previews import markdown_image

    config = spairs.config
    rows = [r for p in spairs.tables.partitions("benchmark_results")
            for r in spairs.tables.read_rows("benchmark_results", p)]
    predictions = predictions_by_model(rows)
    board = leaderboard(predictions, n_resamples=config.benchmark.bootstrap_resamples,
                        confidence=config.benchmark.confidence, seed=config.benchmark.seed)
    comparisons = compare_models(predictions) if len(predictions) > 1 else []
    arrow, metadata = write_partition_table(context, spairs, "benchmark_leaderboard", "all", board,
                                            code_version=BENCHMARK_VERSION)
    out = spairs.storage.local_path("reports/benchmark")
    paths = write_report(board, comparisons, {
        "title": "SafetyPairs benchmark", "confidence": config.benchmark.confidence,
        "splits": ", ".join(config.benchmark.splits), "pairs": len({r["pair_id"] for r in rows}),
        "bootstrap resamples": config.benchmark.bootstrap_resamples}, out)
    overall = [r for r in board if r["category"] == "all"]
    table = ["| rank | model | pairs | pair accuracy | FPR | FNR |", "|---|---|---|---|---|---|"]
    for r in overall:
        ci = lambda m: "n/a" if r[m] is None else f"{r[m]:.2f} [{r[m + '_low']:.2f}, {r[m + '_high']:.2f}]"  # noqa: E731
        table.append(f"| {r['rank']} | {r['model']} | {r['n_pairs']} | {ci('pair_accuracy')} | "
                     f"{ci('fpr')} | {ci('fnr')} |")
    pngs = {name: path.read_bytes() for name, path in paths.items() if path.suffix == ".png"}
    metadata.update({
        "leaderboard": dg.MetadataValue.md("\n".join(table)),
        **{f"plot/{name}": dg.MetadataValue.md(markdown_image(png, name)) for name, png in pngs.items()},
        "report_html": dg.MetadataValue.path(str(out / "report.html")),
        "report_md": dg.MetadataValue.path(str(out / "report.md")),
        "models": len(overall),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


assets = [benchmark_results, benchmark_leaderboard]
asset_checks.append(expectations_check(benchmark_leaderboard, "benchmark_leaderboard"))
