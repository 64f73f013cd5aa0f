"""The `edit_instructions` stage: choose a generator by name, run it on every seed, make rows."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from spairs_assets.config import SpairsConfig
from spairs_assets.ids import hash_parts, instruction_id
from spairs_assets.incremental import Outcome, Progress, RunStats, run_cached
from spairs_assets.instructions.base import (
    Instruction,
    InstructionGenerator,
    SeedImage,
    source_rating_for,
    target_rating_for,
)
from spairs_assets.storage import ItemCache, cache_key

# name in spairs.yaml -> "module:factory"; factories take (SpairsConfig) and must be cheap:
# a model-backed generator loads its model on first use, so a fully cached run loads nothing.
GENERATORS: dict[str, str] = {
    "grounded": "spairs_assets.instructions.grounded:from_config",
    "vlm": "spairs_assets.instructions.model_backends:from_config",
    "openai": "spairs_assets.instructions.model_backends:from_config",
}


def build_generator(config: SpairsConfig) -> InstructionGenerator:
    name = config.instructions.generator
    module, _, factory = GENERATORS[name].partition(":")
    return getattr(importlib.import_module(module), factory)(config)


def _serialise(instruction: Instruction) -> dict[str, Any]:
    data = asdict(instruction)
    data["region"] = list(instruction.region) if instruction.region else None
    return data


def instruction_rows(
    seeds: Sequence[dict[str, Any]],
    *,
    load_seed: Callable[[dict[str, Any]], SeedImage],
    generator: InstructionGenerator,
    directions: Sequence[str],
    max_per_seed: int,
    cache: ItemCache,
    code_version: str,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], RunStats]:
    """Rows of `edit_instructions` for one category's seeds.

    Each (seed, direction) whose rating matches the direction is one cached item. Seeds where
    the generator finds nothing get a `no_feature` row, failures a `failed` row with the error
    (not cached: retried next run), so every seed is accounted for.
    """
    items = [(seed, d) for d in directions for seed in seeds
             if seed["rating"] == source_rating_for(d)]

    def key_of(item: tuple[dict[str, Any], str]) -> str:
        seed, direction = item
        return cache_key(stage="instructions", source=seed["image_id"], direction=direction,
                         generator=generator.generator_id, version=generator.version,
                         max_per_seed=max_per_seed, code=code_version)

    def compute(item: tuple[dict[str, Any], str]) -> dict[str, Any]:
        seed, direction = item
        found = generator.generate(load_seed(seed), direction)[:max_per_seed]
        return {"instructions": [_serialise(i) for i in found]}

    outcomes, stats = run_cached(items, key_of=key_of, compute=compute, cache=cache,
                                 progress=progress)
    rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        rows.extend(_rows_for(outcome, generator))
    rows.sort(key=lambda r: (r["source_image_id"], r["direction"], r["instruction_id"]))
    return rows, stats


def _rows_for(outcome: Outcome, generator: InstructionGenerator) -> list[dict[str, Any]]:
    seed, direction = outcome.item
    base = {
        "source_image_id": seed["image_id"],
        "category": seed["category"],
        "category_id": seed["category_id"],
        "direction": direction,
        "source_rating": source_rating_for(direction),
        "target_rating": target_rating_for(direction),
        "generator_id": generator.generator_id,
        "generator_version": generator.version,
        "instruction": None, "edit_kind": None, "feature_kind": None, "feature": None,
        "replacement": None, "region": None, "error": None,
    }
    if not outcome.ok or not outcome.value["instructions"]:
        status = "failed" if not outcome.ok else "no_feature"
        return [{**base, "status": status, "error": outcome.error,
                 "instruction_id": hash_parts("instruction-" + status, seed["image_id"], direction,
                                              generator.generator_id),
                 "details": json.dumps({}, sort_keys=True)}]
    rows, seen = [], set()
    for data in outcome.value["instructions"]:
        iid = instruction_id(seed["image_id"], data["text"], generator.generator_id)
        if iid in seen:
            continue
        seen.add(iid)
        rows.append({
            **base,
            "instruction_id": iid,
            "status": "ok",
            "instruction": data["text"],
            "edit_kind": data["edit_kind"],
            "feature_kind": data["feature_kind"],
            "feature": data["feature"],
            "replacement": data["replacement"],
            "region": data["region"],
            "details": json.dumps(data.get("details") or {}, sort_keys=True, default=str),
        })
    return rows


def instruction_from_row(row: dict[str, Any]) -> Instruction:
    """Rebuild the Instruction an editor needs from an `edit_instructions` row."""
    return Instruction(
        text=row["instruction"],
        edit_kind=row["edit_kind"],
        feature_kind=row["feature_kind"],
        feature=row["feature"],
        replacement=row["replacement"],
        direction=row["direction"],
        region=tuple(row["region"]) if row["region"] is not None else None,
        details=json.loads(row["details"]),
    )
