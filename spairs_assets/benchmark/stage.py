"""The `benchmark_results` stage: every model under test rates both images of every pair."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from spairs_assets.config import SpairsConfig
from spairs_assets.incremental import Progress, RunStats
from spairs_assets.judges.run import judge_images
from spairs_assets.policy import SAFE, UNSAFE, SafetyPolicy
from spairs_assets.storage import ItemCache


def build_models(config: SpairsConfig, partition: str) -> dict[str, Any]:
    """The models under test for one category partition.

    A guard's `path` may name the partition (`guards/{category}/deploy`: the probe trained on
    this category); relative guard paths are under the data root, where `guard_models` writes.
    """
    from spairs_assets.judges.registry import build_judge

    models = {}
    for m in config.benchmark.models:
        if m.kind == "guard" and m.path:
            path = m.path.format(category=partition)
            if "://" not in path and not path.startswith("/"):
                path = f"{config.data_url.rstrip('/')}/{path}"
            m = m.model_copy(update={"path": path})
        models[m.name] = build_judge(m, config.safety_policy, base_dir=config.base_dir,
                                     setting=f"benchmark.models.{m.name}")
    return models


def benchmark_rows(
    pairs: Sequence[dict[str, Any]],
    models: Mapping[str, Any],
    prompts: Mapping[str, str],
    *,
    splits: Sequence[str],
    load: Callable[[str], Image.Image],
    policy: SafetyPolicy,
    cache: ItemCache,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], dict[str, RunStats]]:
    """Rows for the accepted pairs of the chosen splits; verdicts cached per (model, image).

    A model added to the config rates every image; models already rated are served from the
    cache (its `computed` count stays 0), and new pairs are the only new work for old models.
    """
    chosen = [p for p in pairs if p["decision"] == "accepted" and p["split"] in splits]
    members = [(p, "unsafe", p["unsafe_image_id"]) for p in chosen] + \
              [(p, "safe", p["safe_image_id"]) for p in chosen]
    image_ids = sorted({iid for _, _, iid in members})
    from spairs_assets.verification.stage import register_edits

    register_edits(chosen, load)
    results, stats = judge_images(image_ids, models, load, cache, progress)
    rows = []
    for name, model in models.items():
        for pair, member, iid in members:
            verdict, latency = results[iid][name]
            expected = UNSAFE if member == "unsafe" else SAFE
            rows.append({
                "model": name, "model_id": model.judge_id, "model_version": model.version,
                "prompt": prompts.get(name, "policy"), "pair_id": pair["pair_id"],
                "member": member, "image_id": iid, "category": pair["category"],
                "category_id": pair["category_id"], "split": pair["split"],
                "rating": verdict.rating, "predicted_category": verdict.category,
                "predicted_category_id": verdict.category_id(policy),
                "probability_unsafe": verdict.probability_unsafe,
                "parse_status": verdict.parse_status, "raw_output": verdict.raw_output,
                "rationale": verdict.rationale or None, "latency_s": latency,
                "correct": verdict.rating == expected,
                "error": verdict.details.get("error") if verdict.parse_status == "error" else None,
            })
    rows.sort(key=lambda r: (r["model"], r["pair_id"], r["member"]))
    return rows, stats


def predictions_by_model(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group benchmark rows into the per-pair form the metrics take."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = pairs.setdefault((r["model"], r["pair_id"]), {
            "pair_id": r["pair_id"], "category": r["category"], "category_id": r["category_id"]})
        entry[r["member"]] = {"rating": r["rating"], "category_id": r["predicted_category_id"]}
    out: dict[str, list[dict[str, Any]]] = {}
    for (model, _), entry in sorted(pairs.items()):
        if "unsafe" in entry and "safe" in entry:
            out.setdefault(model, []).append(entry)
    return out
