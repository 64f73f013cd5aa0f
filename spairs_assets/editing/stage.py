"""The `edited_images` stage: choose an editor by name, make n candidates per instruction."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from spairs_assets.config import SpairsConfig
from spairs_assets.editing.base import Editor
from spairs_assets.ids import canonical_json, edit_id, hash_parts
from spairs_assets.incremental import Progress, RunStats, run_cached
from spairs_assets.instructions.stage import instruction_from_row
from spairs_assets.storage import ImageStore, ItemCache, cache_key

# name in spairs.yaml -> "module:factory(SpairsConfig)". Factories must be cheap: a diffusion
# editor loads its pipeline on first use, so a fully cached run loads no model.
EDITORS: dict[str, str] = {
    "classical": "spairs_assets.editing.classical:from_config",
    "flux-kontext": "spairs_assets.editing.diffusers_editors:from_config",
    "qwen-image-edit": "spairs_assets.editing.diffusers_editors:from_config",
    "instruct-pix2pix": "spairs_assets.editing.diffusers_editors:from_config",
}


def build_editor(config: SpairsConfig) -> Editor:
    module, _, factory = EDITORS[config.editing.editor].partition(":")
    return getattr(importlib.import_module(module), factory)(config)


def candidate_seed(base_seed: int, instruction_id: str, candidate: int) -> int:
    """A distinct, reproducible seed per (instruction, candidate)."""
    return int(hash_parts("seed", base_seed, instruction_id, candidate)[:8], 16) & 0x7FFFFFFF


def _work_items(instructions: Sequence[dict[str, Any]], candidates: int, base_seed: int,
                null_edit: bool) -> list[dict[str, Any]]:
    items = []
    for row in instructions:
        if row["status"] != "ok":
            continue
        for k in range(candidates):
            items.append({"kind": "edit", "instruction": row, "candidate": k,
                          "seed": candidate_seed(base_seed, row["instruction_id"], k),
                          "source_image_id": row["source_image_id"], "category": row["category"]})
    if null_edit:
        sources = sorted({(r["source_image_id"], r["category"]) for r in instructions
                          if r["status"] == "ok"})
        for source_id, category in sources:
            items.append({"kind": "null_edit", "instruction": None, "candidate": 0,
                          "seed": candidate_seed(base_seed, source_id, 0),
                          "source_image_id": source_id, "category": category})
    return items


def edit_rows(
    instructions: Sequence[dict[str, Any]],
    *,
    editor: Editor,
    images: ImageStore,
    candidates: int,
    base_seed: int,
    null_edit: bool,
    cache: ItemCache,
    code_version: str,
    package_versions: dict[str, str],
    load_source: Callable[[str], Image.Image] | None = None,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], RunStats]:
    """Rows of `edited_images` for one category's instructions (ok rows only are edited)."""
    load = load_source or images.load
    params_json = canonical_json(editor.params)
    items = _work_items(instructions, candidates, base_seed, null_edit)

    def item_id(item: dict[str, Any]) -> str:
        if item["kind"] == "null_edit":
            return hash_parts("null-edit", item["source_image_id"], editor.editor_id,
                              editor.params, item["seed"])
        return edit_id(item["instruction"]["instruction_id"], editor.editor_id, editor.params,
                       item["seed"])

    def key_of(item: dict[str, Any]) -> str:
        return cache_key(stage="editing", edit=item_id(item), revision=editor.revision,
                         code=code_version)

    def store(source: Image.Image, image: Image.Image, details: dict[str, Any],
              seconds: float) -> dict[str, Any]:
        if image.size != source.size:
            details = {**details, "resized_back_from": list(image.size)}
            image = image.resize(source.size, Image.Resampling.LANCZOS)
        stored = images.put(image.convert("RGB"))
        return {"edited_image_id": stored.image_id, "edited_image_path": stored.path,
                "seconds": seconds, "details": details}

    def compute(item: dict[str, Any]) -> dict[str, Any]:
        source = load(item["source_image_id"])
        began = time.perf_counter()
        if item["kind"] == "null_edit":
            image, details = editor.null_edit(source, item["seed"]), {}
        else:
            result = editor.edit(source, instruction_from_row(item["instruction"]), item["seed"])
            image, details = result.image, result.details
        return store(source, image, details, time.perf_counter() - began)

    def compute_batch(batch: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
        """Edits go to the editor together (a GPU batch); null edits one by one."""
        out: list[dict[str, Any] | BaseException | None] = [None] * len(batch)
        edits = [i for i, item in enumerate(batch) if item["kind"] == "edit"]
        for i, item in enumerate(batch):
            if item["kind"] != "edit":
                try:
                    out[i] = compute(item)
                except Exception as exc:
                    out[i] = exc
        if edits:
            sources = [load(batch[i]["source_image_id"]) for i in edits]
            began = time.perf_counter()
            results = editor.edit_batch(  # type: ignore[attr-defined]
                sources, [instruction_from_row(batch[i]["instruction"]) for i in edits],
                [batch[i]["seed"] for i in edits])
            per_item = (time.perf_counter() - began) / len(edits)
            for i, source, result in zip(edits, sources, results, strict=True):
                out[i] = store(source, result.image, result.details, per_item)
        return out  # type: ignore[return-value]

    batch_size = int(editor.params.get("batch_size", 1) or 1)
    batched = batch_size > 1 and hasattr(editor, "edit_batch")
    outcomes, stats = run_cached(
        items, key_of=key_of, cache=cache, progress=progress,
        compute=None if batched else compute,
        compute_batch=compute_batch if batched else None, batch_size=batch_size)
    rows = []
    for outcome in outcomes:
        item, value = outcome.item, outcome.value or {}
        rows.append({
            "edit_id": item_id(item),
            "kind": item["kind"],
            "instruction_id": item["instruction"]["instruction_id"] if item["instruction"] else None,
            "source_image_id": item["source_image_id"],
            "category": item["category"],
            "candidate": item["candidate"],
            "seed": item["seed"],
            "status": "ok" if outcome.ok else "failed",
            "edited_image_id": value.get("edited_image_id"),
            "edited_image_path": value.get("edited_image_path"),
            "editor_id": editor.editor_id,
            "model_revision": editor.revision,
            "params": params_json,
            "package_versions": canonical_json(package_versions),
            "seconds": value.get("seconds"),
            "error": outcome.error,
            "details": json.dumps(value.get("details") or {}, sort_keys=True, default=str),
        })
    rows.sort(key=lambda r: (r["kind"], r["source_image_id"], r["instruction_id"] or "",
                             r["candidate"]))
    return rows, stats
