"""Stage 4, verification: `verification_scores` per category, with flip and parse checks."""

import json
from collections import Counter

import dagster as dg

from spairs_assets.defs.common import counts_markdown, data_version, progress_logger, write_partition_table
from spairs_assets.defs.editing import edited_images
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.quality import expectations_check
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.settings import CONFIG, gpu_placement
from spairs_assets.versioning import code_version

VERIFICATION_VERSION = code_version("verification")
MIN_FLIP_RATE = 0.5  # below this a category's editor or instructions need a look


@dg.asset(
    partitions_def=category_partitions,
    deps=[edited_images],
    group_name="verification",
    code_version=VERIFICATION_VERSION,
    kinds={"python", "parquet"},
    **gpu_placement(any(j.kind in ("vlm", "shieldgemma2") for j in CONFIG.verification.judges)),
    description=(
        "Every edit candidate scored: edit minimality (SSIM, PSNR, L1/L2, changed fraction and "
        "region, change outside the edited region, perceptual hashes, encoder cosine), each "
        "judge's verdict on both images, the ensemble's label-flip decision, instruction "
        "adherence, and pass/fail with reasons."
    ),
)
def verification_scores(context: dg.AssetExecutionContext, spairs: SpairsResource) -> dg.MaterializeResult:
    from spairs_assets.verification.stage import build_encoder, build_judges, verification_rows
    from spairs_assets.vision.cache import VISION

    partition = context.partition_key
    config = spairs.config
    VISION.use_store(spairs.cache("vision"))
    rows, stats = verification_rows(
        spairs.tables.read_rows("edited_images", partition),
        spairs.tables.read_rows("edit_instructions", partition),
        images=spairs.images, judges=build_judges(config),
        encoder=build_encoder(config.verification, config.base_dir),
        policy=config.safety_policy, cfg=config.verification, curation=config.curation,
        cache=spairs.cache("verification"), code_version=VERIFICATION_VERSION,
        progress=progress_logger(context, "judging"))
    arrow, metadata = write_partition_table(context, spairs, "verification_scores", partition,
                                            rows, code_version=VERIFICATION_VERSION)
    edits = [r for r in rows if r["kind"] == "edit"]
    flips = sum(1 for r in edits if r["flip_verified"])
    reasons = Counter(reason for r in edits for reason in json.loads(r["reasons"]))
    metadata.update({
        **stats.as_metadata(),
        "candidates": len(edits),
        "passed": sum(1 for r in edits if r["passed"]),
        "flip_rate": round(flips / len(edits), 4) if edits else 0.0,
        "adherence_rate": round(sum(1 for r in edits if r["adherence"]) / len(edits), 4) if edits else 0.0,
        "judge_parse_failures": sum(r["judge_parse_failures"] for r in rows),
        "mean_ssim": round(sum(r["ssim"] for r in edits) / len(edits), 4) if edits else None,
        "failure_reasons": dg.MetadataValue.md(counts_markdown(reasons, "reason")),
    })
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(arrow))


@dg.asset_check(asset=verification_scores, partitions_def=category_partitions,
                description=f"Warns when fewer than {MIN_FLIP_RATE:.0%} of candidates have a "
                "verified label flip.")
def label_flip_rate(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
    rows = [r for r in spairs.tables.read_rows("verification_scores", context.partition_key)
            if r["kind"] == "edit"]
    rate = sum(1 for r in rows if r["flip_verified"]) / len(rows) if rows else 0.0
    return dg.AssetCheckResult(passed=rate >= MIN_FLIP_RATE, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"flip_rate": round(rate, 4), "candidates": len(rows)})


@dg.asset_check(asset=verification_scores, partitions_def=category_partitions,
                description="Warns when any judge answer could not be parsed into a verdict.")
def judge_parse_failures(context: dg.AssetCheckExecutionContext, spairs: SpairsResource) -> dg.AssetCheckResult:
    rows = spairs.tables.read_rows("verification_scores", context.partition_key)
    by_judge: Counter = Counter()
    for r in rows:
        for side in ("source_verdicts", "edited_verdicts"):
            for name, v in json.loads(r[side]).items():
                if v["parse_status"] in ("no_json", "invalid_json", "invalid_value", "error"):
                    by_judge[f"{name}: {v['parse_status']}"] += 1
    return dg.AssetCheckResult(passed=not by_judge, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"failures": sum(by_judge.values()),
                                         "by_judge": dg.MetadataValue.md(counts_markdown(by_judge, "judge"))})


assets = [verification_scores]
asset_checks = [label_flip_rate, judge_parse_failures,
                expectations_check(verification_scores, "verification_scores")]
