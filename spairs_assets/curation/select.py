"""Turn verified candidates into curated pairs: one decision per instruction, with the reason.

The rule (documented in the README):
1. A candidate *passes* when the label flip is verified by the judge ensemble, the edit did what
   the instruction said (adherence), and it is minimal: SSIM >= `min_ssim`, changed fraction <=
   `max_changed_fraction`, change outside the edited region <= `max_outside_change`, and image
   encoder cosine >= `min_encoder_cosine`. Each failed criterion is a reason on its row.
2. Per instruction, the passing candidate with the highest SSIM is chosen (ties: smaller changed
   fraction, then edit id), so the most minimal verified edit wins.
3. Accepted pairs whose two images are both near-duplicates (pHash distance <=
   `near_duplicate_distance`) of an earlier accepted pair are rejected as near duplicates.
4. Splits are assigned per *source image group* (a source and its near-duplicates), by a hash of
   the group's first source id, so no source crosses splits and adding seeds never moves an
   existing pair to another split.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from spairs_assets.config import CurationConfig
from spairs_assets.ids import hash_parts, pair_id
from spairs_assets.policy import UNSAFE

ACCEPTED = "accepted"
REJECTED = "rejected"


def candidate_failures(row: dict[str, Any], cfg: CurationConfig) -> list[str]:
    """Reasons a verified candidate does not qualify (empty: it passes)."""
    reasons = []
    if cfg.require_flip and not row.get("flip_verified"):
        reasons.append("flip_not_verified")
    if cfg.require_adherence and row.get("adherence") is False:
        reasons.append("instruction_not_followed")
    ssim = row.get("ssim")
    if ssim is None or ssim < cfg.min_ssim:
        reasons.append(f"ssim_below_{cfg.min_ssim}")
    changed = row.get("changed_fraction")
    if changed is None or changed > cfg.max_changed_fraction:
        reasons.append(f"changed_fraction_above_{cfg.max_changed_fraction}")
    if changed == 0:
        reasons.append("no_change")
    outside = row.get("outside_changed_fraction")
    if outside is not None and outside > cfg.max_outside_change:
        reasons.append(f"change_outside_region_above_{cfg.max_outside_change}")
    cosine = row.get("encoder_cosine")
    if cfg.min_encoder_cosine is not None and cosine is not None and cosine < cfg.min_encoder_cosine:
        reasons.append(f"encoder_cosine_below_{cfg.min_encoder_cosine}")
    return reasons


def _hamming(a: str | None, b: str | None) -> int | None:
    if not a or not b:
        return None
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def assign_split(group_id: str, splits: dict[str, float]) -> str:
    """Stable split from a hash of the group id: the same source always lands in the same split."""
    u = int(hash_parts("split", group_id)[:12], 16) / float(16**12)
    acc = 0.0
    names = list(splits)
    for name in names:
        acc += splits[name]
        if u < acc:
            return name
    return names[-1]


def source_groups(sources: Iterable[tuple[str, str | None]], distance: int) -> dict[str, str]:
    """Map each source id to its group id (the smallest id among its near-duplicates)."""
    items = sorted(set(sources))
    parent = {sid: sid for sid, _ in items}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, (a, ha) in enumerate(items):
        for b, hb in items[i + 1:]:
            d = _hamming(ha, hb)
            if d is not None and d <= distance:
                ra, rb = find(a), find(b)
                parent[max(ra, rb)] = min(ra, rb)
    return {sid: find(sid) for sid, _ in items}


def _rank(row: dict[str, Any]) -> tuple:
    return (-(row.get("ssim") or -1.0), row.get("changed_fraction") or 1.0, row["edit_id"])


def curate(
    scores: Sequence[dict[str, Any]],
    instructions: Sequence[dict[str, Any]],
    null_edits: dict[str, str],
    cfg: CurationConfig,
) -> list[dict[str, Any]]:
    """`curated_pairs` rows: one per instruction that has at least one scored candidate.

    `scores` are `verification_scores` rows of kind "edit"; `null_edits` maps a source image id
    to its null edit's image id (the null-edit control linked to each pair).
    """
    by_instruction: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in scores:
        if row["kind"] == "edit":
            by_instruction[row["instruction_id"]].append(row)
    instruction_rows = {r["instruction_id"]: r for r in instructions}
    groups = source_groups(((r["source_image_id"], r.get("source_phash")) for r in scores),
                           cfg.near_duplicate_distance)

    out = []
    for iid in sorted(by_instruction):
        candidates = by_instruction[iid]
        instruction = instruction_rows[iid]
        passing = sorted((c for c in candidates if c["passed"]), key=_rank)
        chosen = passing[0] if passing else sorted(candidates, key=_rank)[0]
        if passing:
            decision, reason = ACCEPTED, "best passing candidate by SSIM"
        else:
            counts = Counter(r for c in candidates for r in json.loads(c["reasons"]))
            decision = REJECTED
            reason = "no candidate passed: " + ", ".join(f"{r} ({n})" for r, n in counts.most_common())
        source_is_unsafe = instruction["source_rating"] == UNSAFE
        unsafe_image = chosen["source_image_id"] if source_is_unsafe else chosen["edited_image_id"]
        safe_image = chosen["edited_image_id"] if source_is_unsafe else chosen["source_image_id"]
        group = groups[chosen["source_image_id"]]
        out.append({
            "pair_id": pair_id(unsafe_image, safe_image, iid),
            "instruction_id": iid,
            "edit_id": chosen["edit_id"],
            "category": chosen["category"],
            "category_id": chosen["category_id"],
            "direction": instruction["direction"],
            "decision": decision,
            "reason": reason,
            "candidates": len(candidates),
            "candidates_passing": len(passing),
            "source_image_id": chosen["source_image_id"],
            "edited_image_id": chosen["edited_image_id"],
            "unsafe_image_id": unsafe_image,
            "safe_image_id": safe_image,
            "null_edit_image_id": null_edits.get(chosen["source_image_id"]),
            "instruction": instruction["instruction"],
            "edit_kind": instruction["edit_kind"],
            "feature_kind": instruction["feature_kind"],
            "feature": instruction["feature"],
            "replacement": instruction["replacement"],
            "ssim": chosen["ssim"],
            "psnr": chosen["psnr"],
            "l1": chosen["l1"],
            "l2": chosen["l2"],
            "changed_fraction": chosen["changed_fraction"],
            "outside_changed_fraction": chosen["outside_changed_fraction"],
            "encoder_cosine": chosen["encoder_cosine"],
            "phash_distance": chosen["phash_distance"],
            "flip_verified": chosen["flip_verified"],
            "adherence": chosen["adherence"],
            "judges": json.dumps({"source": json.loads(chosen["source_decision"]),
                                  "edited": json.loads(chosen["edited_decision"])}, sort_keys=True),
            "source_phash": chosen.get("source_phash"),
            "edited_phash": chosen.get("edited_phash"),
            "split_group": group,
            "split": assign_split(group, cfg.splits),
        })
    _reject_near_duplicates(out, cfg.near_duplicate_distance)
    version = dataset_version(out, cfg)
    for row in out:
        row["dataset_version"] = version
    return out


def _reject_near_duplicates(rows: list[dict[str, Any]], distance: int) -> None:
    kept: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: r["pair_id"]):
        if row["decision"] != ACCEPTED:
            continue
        for other in kept:
            ds = _hamming(row["source_phash"], other["source_phash"])
            de = _hamming(row["edited_phash"], other["edited_phash"])
            if ds is not None and de is not None and ds <= distance and de <= distance \
                    and row["source_image_id"] != other["source_image_id"]:
                row["decision"] = REJECTED
                row["reason"] = f"near_duplicate_of {other['pair_id'][:16]}"
                break
        else:
            kept.append(row)


def dataset_version(rows: Sequence[dict[str, Any]], cfg: CurationConfig) -> str:
    """`ds-<hash>` of the accepted pairs, their splits and the curation settings."""
    accepted = sorted((r["pair_id"], r["split"]) for r in rows if r["decision"] == ACCEPTED)
    return "ds-" + hash_parts("dataset", accepted, cfg.model_dump(mode="json"))[:12]
