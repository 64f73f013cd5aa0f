"""The `verification_scores` stage: minimality, judge verdicts, flip, adherence, pass/fail.

Every expensive piece is cached per item: judge verdicts per (judge, image), embeddings per
(encoder, image), metrics per (source, edit, region). A rerun recomputes nothing; a refresh
judges only new images.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from spairs_assets.config import CurationConfig, SpairsConfig, VerificationConfig
from spairs_assets.curation.select import candidate_failures
from spairs_assets.incremental import Progress, RunStats, run_cached
from spairs_assets.judges.ensemble import EnsembleRule
from spairs_assets.judges.run import judge_images
from spairs_assets.policy import SafetyPolicy, UNSAFE
from spairs_assets.storage import ImageStore, ItemCache, cache_key
from spairs_assets.verification.adherence import check_adherence

PARSE_FAILURES = ("no_json", "invalid_json", "invalid_value", "error")


class ImageLoader:
    """Loads stored images with a small LRU: several judges read the same image in turn."""

    def __init__(self, images: ImageStore, size: int = 64):
        self.images = images
        self._lru: OrderedDict[str, Image.Image] = OrderedDict()
        self.size = size

    def __call__(self, image_id: str) -> Image.Image:
        if image_id in self._lru:
            self._lru.move_to_end(image_id)
            return self._lru[image_id]
        image = self.images.load(image_id)
        self._lru[image_id] = image
        while len(self._lru) > self.size:
            self._lru.popitem(last=False)
        return image


@dataclass
class VerificationStats:
    judging: dict[str, RunStats] = field(default_factory=dict)
    embedding: RunStats | None = None
    metrics: RunStats | None = None
    adherence: RunStats | None = None  # answers asked of `adherence_judge`

    def as_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, s in self.judging.items():
            out[f"judge/{name}"] = f"{s.computed} computed, {s.cached} cached, {s.failed} failed"
        for name, s in (("embeddings", self.embedding), ("metrics", self.metrics),
                        ("adherence_asked", self.adherence)):
            if s is not None:
                out[name] = f"{s.computed} computed, {s.cached} cached, {s.failed} failed"
        return out


def build_judges(config: SpairsConfig) -> dict[str, Any]:
    from spairs_assets.judges.registry import build_judge

    return {j.name: build_judge(j, config.safety_policy, base_dir=config.base_dir)
            for j in config.verification.judges}


def build_encoder(cfg: VerificationConfig, base_dir=None):
    from spairs_assets.encoders import build_encoder as _build

    if cfg.encoder == "open-nsfw":
        return _build("open-nsfw")
    m = cfg.encoder_model
    return _build(cfg.encoder, model=m.model, revision=m.revision, dtype=m.dtype, device=m.device,
                  trust_remote_code=m.trust_remote_code)


def embed_images(image_ids: Sequence[str], encoder, load: ImageLoader, cache: ItemCache,
                 batch_size: int = 16) -> tuple[dict[str, np.ndarray], RunStats]:
    def key_of(iid: str) -> str:
        return cache_key(stage="embed", encoder=encoder.encoder_id, version=encoder.version, image=iid)

    def compute_batch(ids: list[str]) -> list[dict[str, Any]]:
        vectors = encoder.embed([load(i) for i in ids]).astype(np.float32)
        return [{"vector": base64.b64encode(v.tobytes()).decode()} for v in vectors]

    outcomes, stats = run_cached(list(image_ids), key_of=key_of, compute_batch=compute_batch,
                                 batch_size=batch_size, cache=cache)
    return ({o.item: np.frombuffer(base64.b64decode(o.value["vector"]), dtype=np.float32)
             for o in outcomes if o.ok}, stats)


def register_edits(rows: Sequence[dict[str, Any]], load: ImageLoader) -> None:
    """Tell the vision memo which image each edit came from, so it reads edits incrementally."""
    from spairs_assets.vision.cache import VISION

    for r in rows:
        VISION.register_edit(r["edited_image_id"], r["source_image_id"],
                             lambda sid=r["source_image_id"]: load(sid))


def edit_region(edit: dict[str, Any], instruction: dict[str, Any] | None) -> list[int] | None:
    """The region the locality check holds the edit to.

    The editor's own reported box when it gives one (then "nothing changed outside it" is
    checked bit for bit), else the instruction's located region grown by a quarter of its size
    (a replacement word may be wider than the original), else None (not checkable).
    """
    details = json.loads(edit.get("details") or "{}")
    if details.get("edited_box"):
        return [int(v) for v in details["edited_box"]]
    region = instruction.get("region") if instruction else None
    if region:
        x0, y0, x1, y1 = region
        gx, gy = (x1 - x0) // 4 + 2, (y1 - y0) // 4 + 2
        return [max(0, x0 - gx), max(0, y0 - gy), x1 + gx, y1 + gy]
    return None


def verification_rows(
    edits: Sequence[dict[str, Any]],
    instructions: Sequence[dict[str, Any]],
    *,
    images: ImageStore,
    judges: Mapping[str, Any],
    encoder,
    policy: SafetyPolicy,
    cfg: VerificationConfig,
    curation: CurationConfig,
    cache: ItemCache,
    code_version: str,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], VerificationStats]:
    from spairs_assets.verification.metrics import METRICS_VERSION, image_hashes, minimality

    done = [e for e in edits if e["status"] == "ok"]
    by_instruction = {r["instruction_id"]: r for r in instructions}
    load = ImageLoader(images)
    image_ids = sorted({e["source_image_id"] for e in done} | {e["edited_image_id"] for e in done})
    register_edits(done, load)
    stats = VerificationStats()
    judged, stats.judging = judge_images(image_ids, judges, load, cache, progress)
    verdicts = {iid: {name: v for name, (v, _) in by_judge.items()} for iid, by_judge in judged.items()}
    vectors, stats.embedding = embed_images(image_ids, encoder, load, cache)
    covers = {name: j.covers for name, j in judges.items()}
    rule = EnsembleRule(cfg.ensemble_k)

    def metric_key(e: dict[str, Any]) -> str:
        return cache_key(stage="metrics", source=e["source_image_id"], edited=e["edited_image_id"],
                         region=edit_region(e, by_instruction.get(e["instruction_id"])),
                         tolerance=cfg.change_tolerance, version=METRICS_VERSION)

    def metric(e: dict[str, Any]) -> dict[str, Any]:
        source = np.asarray(load(e["source_image_id"]))
        edited = np.asarray(load(e["edited_image_id"]))
        region = edit_region(e, by_instruction.get(e["instruction_id"]))
        result = minimality(source, edited, region=region, tolerance=cfg.change_tolerance)
        result["source_phash"] = image_hashes(source)["phash"]
        result["edited_phash"] = image_hashes(edited)["phash"]
        return result

    metric_outcomes, stats.metrics = run_cached(done, key_of=metric_key, compute=metric, cache=cache)
    adherence = _adherence(done, by_instruction, judges, load, cfg, cache, stats)
    rows = []
    for outcome in metric_outcomes:
        e = outcome.item
        if not outcome.ok:
            raise RuntimeError(f"metrics failed for edit {e['edit_id']}: {outcome.error}")
        rows.append(_row(e, by_instruction.get(e["instruction_id"]), outcome.value, verdicts,
                         vectors, covers, rule, policy, cfg, curation, encoder,
                         adherence.get(e["edit_id"], (None, "null edit"))))
    rows.sort(key=lambda r: (r["kind"], r["source_image_id"], r["edit_id"]))
    return rows, stats


def _adherence(done, by_instruction, judges, load, cfg, cache, stats
               ) -> dict[str, tuple[bool | None, str]]:
    """edit id -> (adherence, detail): read by OCR or the pictogram detector where they can,
    otherwise asked of `cfg.adherence_judge` when one is set."""
    if not cfg.check_adherence:
        return {}
    out, unknown = {}, []
    for e in done:
        instruction = by_instruction.get(e["instruction_id"])
        if e["kind"] != "edit" or instruction is None:
            continue
        out[e["edit_id"]] = check_adherence(instruction, load(e["edited_image_id"]), e["edited_image_id"])
        if out[e["edit_id"]][0] is None:
            unknown.append(e)
    if unknown and cfg.adherence_judge is not None:
        from spairs_assets.verification.asked_adherence import asked_adherence, describe

        answers, stats.adherence = asked_adherence(
            unknown, by_instruction, cfg.adherence_judge, judges[cfg.adherence_judge], load, cache)
        for edit_id, answer in answers.items():
            out[edit_id] = (answer["followed"], describe(answer))
    return out


def _row(e, instruction, m, verdicts, vectors, covers, rule, policy, cfg, curation, encoder,
         adherence_result):
    category_id = policy.category(e["category"]).id
    src_v, edt_v = verdicts[e["source_image_id"]], verdicts[e["edited_image_id"]]
    src_d = rule.decide(src_v, covers, category_id, policy)
    edt_d = rule.decide(edt_v, covers, category_id, policy)
    direction = instruction["direction"] if instruction else None
    if e["kind"] != "edit" or instruction is None:
        flip = None
    elif instruction["source_rating"] == UNSAFE:
        flip = _all(src_d.unsafe_in_category, edt_d.safe)
    else:
        flip = _all(src_d.safe, edt_d.unsafe_in_category)
    a, b = vectors.get(e["source_image_id"]), vectors.get(e["edited_image_id"])
    cosine = float(np.dot(a, b)) if a is not None and b is not None else None
    adherence, adherence_detail = adherence_result
    parse_failures = sum(1 for v in (*src_v.values(), *edt_v.values())
                         if v.parse_status in PARSE_FAILURES)
    row = {
        "edit_id": e["edit_id"], "kind": e["kind"], "instruction_id": e["instruction_id"],
        "source_image_id": e["source_image_id"], "edited_image_id": e["edited_image_id"],
        "category": e["category"], "category_id": category_id, "direction": direction,
        "ssim": m["ssim"] if m["ssim"] is not None else 1.0, "psnr": m["psnr"],
        "l1": m["l1"], "l2": m["l2"], "changed_fraction": m["changed_fraction"],
        "changed_box": m["changed_bbox"], "changed_area": int(m["changed_pixels"]),
        "region_box": m["region"], "outside_changed_fraction": m["outside_changed_fraction"],
        "outside_max_abs_diff": m["outside_max_abs_diff"],
        "phash_distance": m["phash_distance"], "dhash_distance": m["dhash_distance"],
        "ahash_distance": m["ahash_distance"],
        "source_phash": m["source_phash"], "edited_phash": m["edited_phash"],
        "encoder_cosine": cosine, "encoder_id": encoder.encoder_id,
        "source_verdicts": json.dumps({k: v.as_dict() for k, v in src_v.items()}, sort_keys=True),
        "edited_verdicts": json.dumps({k: v.as_dict() for k, v in edt_v.items()}, sort_keys=True),
        "source_decision": json.dumps(src_d.as_dict(), sort_keys=True),
        "edited_decision": json.dumps(edt_d.as_dict(), sort_keys=True),
        "flip_verified": flip, "judge_parse_failures": parse_failures,
        "adherence": adherence, "adherence_detail": adherence_detail,
    }
    reasons = candidate_failures(row, curation) if e["kind"] == "edit" else []
    row["passed"] = e["kind"] == "edit" and not reasons
    row["reasons"] = json.dumps(reasons)
    return row


def _all(*values: bool | None) -> bool | None:
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True
