"""Checks on curated pairs that recompute from the images instead of trusting the table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spairs_assets.config import CurationConfig
from spairs_assets.curation.select import ACCEPTED


def minimality_violations(
    pairs: Sequence[dict[str, Any]],
    regions: dict[str, list[int] | None],
    load_array: Callable[[str], np.ndarray],
    cfg: CurationConfig,
    tolerance: int,
) -> list[dict[str, Any]]:
    """Accepted pairs that are not minimal edits, recomputed from the stored images.

    `regions` maps an edit id to the edited region verification used. Each violation names the
    pair, the criterion and the recomputed value.
    """
    from spairs_assets.verification.metrics import minimality

    violations = []
    for pair in pairs:
        if pair["decision"] != ACCEPTED:
            continue
        m = minimality(load_array(pair["source_image_id"]), load_array(pair["edited_image_id"]),
                       region=regions.get(pair["edit_id"]), tolerance=tolerance, hashes=False)
        problems = []
        ssim = 1.0 if m["ssim"] is None else m["ssim"]
        if ssim < cfg.min_ssim:
            problems.append(("ssim", ssim, f">= {cfg.min_ssim}"))
        if m["changed_fraction"] > cfg.max_changed_fraction:
            problems.append(("changed_fraction", m["changed_fraction"], f"<= {cfg.max_changed_fraction}"))
        if m["changed_fraction"] == 0:
            problems.append(("changed_fraction", 0.0, "> 0 (the images are identical)"))
        outside = m["outside_changed_fraction"]
        if outside is not None and outside > cfg.max_outside_change:
            problems.append(("outside_changed_fraction", outside, f"<= {cfg.max_outside_change}"))
        for metric, value, required in problems:
            violations.append({"pair_id": pair["pair_id"], "metric": metric,
                               "value": round(float(value), 6), "required": required})
    return violations


def split_leakage(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sources (or near-duplicate source groups) whose accepted pairs sit in several splits."""
    splits_by: dict[tuple[str, str], set[str]] = defaultdict(set)
    for pair in pairs:
        if pair["decision"] != ACCEPTED:
            continue
        splits_by[("source", pair["source_image_id"])].add(pair["split"])
        splits_by[("group", pair["split_group"])].add(pair["split"])
    return [{"kind": kind, "id": key, "splits": sorted(s)}
            for (kind, key), s in sorted(splits_by.items()) if len(s) > 1]


def cross_category_leakage(pairs: Sequence[dict[str, Any]], distance: int) -> dict[str, list[dict[str, Any]]]:
    """Near-duplicate images across categories (pHash), among accepted pairs.

    `split_leaks`: near-duplicate sources in different splits (a test image seen in training
    under another category) — an error. `shared_images`: near-duplicate sources in several
    categories at all — worth a look (one seed filed under two categories), not an error.
    """
    from spairs_assets.curation.select import source_groups

    accepted = [p for p in pairs if p["decision"] == ACCEPTED]
    groups = source_groups(((p["source_image_id"], p.get("source_phash")) for p in accepted), distance)
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in accepted:
        members[groups[p["source_image_id"]]].append(p)
    split_leaks, shared = [], []
    for group, rows in sorted(members.items()):
        splits = sorted({r["split"] for r in rows})
        categories = sorted({r["category"] for r in rows})
        if len(splits) > 1:
            split_leaks.append({"group": group, "splits": splits, "categories": categories,
                                "pairs": sorted(r["pair_id"] for r in rows)})
        if len(categories) > 1:
            shared.append({"group": group, "categories": categories})
    return {"split_leaks": split_leaks, "shared_images": shared}
