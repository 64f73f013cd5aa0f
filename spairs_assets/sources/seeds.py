"""The `source_images` stage: gather every configured source for one category and ingest it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spairs_assets.config import DemoSource, FolderSource, ManifestSource, SpairsConfig
from spairs_assets.policy import SafetyPolicy
from spairs_assets.sources.discover import (
    MANIFEST_SUFFIXES,
    Rejection,
    SeedCandidate,
    discover_folder,
    discover_manifest,
)
from spairs_assets.sources.ingest import (
    UNKNOWN_PARTITION,
    IngestParams,
    IngestResult,
    ingest_candidates,
    quarantine_row,
)
from spairs_assets.storage import ImageStore, ItemCache

DEMO_DIR = "demo_seeds"


@dataclass
class SeedBatch:
    """What one partition's ingestion produced, ready to be written as tables."""

    source_images: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    unknown_quarantine: list[dict[str, Any]]  # rows whose category is not in the policy
    demo_ground_truth: list[dict[str, Any]] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0


INCOMING = "incoming"


def incoming_sources(config: SpairsConfig) -> list[FolderSource | ManifestSource]:
    """The incoming folder read as sources: its category folders and its top-level manifests."""
    if config.sources.incoming is None:
        return []
    root = config.resolve(config.sources.incoming)
    if not root.is_dir():
        return []
    found: list[FolderSource | ManifestSource] = [FolderSource(name=INCOMING, root=root)]
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES and not path.name.startswith("."):
            found.append(ManifestSource(name=f"{INCOMING}:{path.name}", path=path))
    return found


def _listed_by_manifests(incoming: list[FolderSource | ManifestSource]) -> set[str]:
    """Paths (relative to the incoming folder) that its manifests describe."""
    folders = [s for s in incoming if isinstance(s, FolderSource)]
    if not folders:
        return set()
    root = folders[0].root
    listed = set()
    for source in incoming:
        if isinstance(source, ManifestSource):
            for item in discover_manifest(source.path, name=source.name, licence=None, allowed_roots=()):
                if isinstance(item, SeedCandidate):
                    try:
                        listed.add(item.file.relative_to(root).as_posix())
                    except ValueError:
                        pass
    return listed


def demo_root(config: SpairsConfig) -> Path:
    """Where demo seeds are generated: under the data root when it is local."""
    if "://" in config.data_root:
        return Path(tempfile.gettempdir()) / "spairs" / DEMO_DIR
    return Path(config.data_url) / DEMO_DIR


def ensure_demo_category(out_dir: Path, category_id: str, source: DemoSource) -> list[dict[str, Any]]:
    """Generate one category's demo seeds once; later calls reuse the files.

    The folder is built beside its final place and renamed in, so a crash never leaves a
    half-written demo set that looks complete.
    """
    from spairs_assets.sources.demo import DEMO_GENERATOR_VERSION, generate_demo_category

    params = {"version": DEMO_GENERATOR_VERSION, "category_id": category_id,
              "n_unsafe": source.n_unsafe, "n_safe": source.n_safe, "seed": source.seed}
    marker = out_dir / "ground_truth.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("params") == params:
            return saved["rows"]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
    try:
        rows = generate_demo_category(category_id, tmp, n_unsafe=source.n_unsafe,
                                      n_safe=source.n_safe, seed=source.seed)
        (tmp / "ground_truth.json").write_text(json.dumps({"params": params, "rows": rows}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _demo_candidates(
    config: SpairsConfig, source: DemoSource, category_key: str, policy: SafetyPolicy
) -> tuple[list[SeedCandidate], list[dict[str, Any]], Path]:
    category = policy.category(category_key)
    from spairs_assets.sources.demo import DEMO_GENERATOR_VERSION, PHRASES

    if category.id not in PHRASES:
        return [], [], Path()  # a custom policy category the demo has no seeds for
    root = demo_root(config) / DEMO_GENERATOR_VERSION
    out_dir = root / category.key
    truth = ensure_demo_category(out_dir, category.id, source)
    candidates = []
    for item in discover_folder(root, kind="demo", name=source.name,
                                licence="BSD-3-Clause (scikit-image sample data)",
                                allowed_roots=()):
        if isinstance(item, SeedCandidate) and item.category_ref == category.key:
            candidates.append(item)
    return candidates, truth, out_dir


def collect_seeds(
    config: SpairsConfig, partition: str, *, images: ImageStore, cache: ItemCache | None,
    code_version: str,
) -> SeedBatch:
    """Discover and ingest every configured source's seeds for one category partition."""
    policy = config.safety_policy
    category = policy.category(partition)
    extra_roots = tuple(config.resolve(p) for p in config.sources.allowed_roots)
    mine: list[SeedCandidate] = []
    pre_quarantine: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    demo_truth: list[tuple[Path, dict[str, Any]]] = []

    incoming = incoming_sources(config)
    listed = _listed_by_manifests(incoming)
    for source in (*config.sources.items, *incoming):
        if isinstance(source, DemoSource):
            cands, truth, out_dir = _demo_candidates(config, source, partition, policy)
            mine.extend(cands)
            demo_truth.extend((out_dir / row["file_name"], row) for row in truth)
            continue
        if isinstance(source, FolderSource):
            found = discover_folder(config.resolve(source.root), kind="folder", name=source.name,
                                    licence=source.licence, allowed_roots=extra_roots,
                                    skip_top_level=MANIFEST_SUFFIXES if source.name == INCOMING else ())
        elif isinstance(source, ManifestSource):
            found = discover_manifest(config.resolve(source.path), name=source.name,
                                      licence=source.licence, allowed_roots=extra_roots)
        else:  # pragma: no cover - the config model admits no other kinds
            raise TypeError(f"unknown source {source!r}")
        for item in found:
            if source.name == INCOMING and item.source_path in listed:
                continue  # an image a manifest in the incoming folder describes
            target = policy.find_category(item.category_ref) if item.category_ref else None
            if isinstance(item, Rejection):
                if target is not None and target.key == partition:
                    pre_quarantine.append(quarantine_row(partition, item, item.reason, item.detail))
                elif target is None:
                    unknown.append(quarantine_row(UNKNOWN_PARTITION, item, item.reason, item.detail))
                continue
            if target is None:
                unknown.append(quarantine_row(
                    UNKNOWN_PARTITION, item, "unknown_category",
                    f"category {item.category_ref!r} is not in policy {policy.name} "
                    f"(known: {', '.join(policy.partition_keys)})"))
            elif target.key == partition:
                mine.append(item)

    result: IngestResult = ingest_candidates(
        mine, partition=partition, policy=policy, images=images,
        params=IngestParams(config.sources.max_side, config.sources.max_pixels),
        cache=cache, code_version=code_version)

    truth_rows = []
    for file, row in demo_truth:
        iid = result.ground_truth_files.get(str(file))
        if iid is None:
            continue  # quarantined or a duplicate: its ground truth has no image to describe
        truth_rows.append(_ground_truth_row(row, iid, partition, category.id))
    truth_rows.sort(key=lambda r: r["image_id"])

    quarantine = sorted(pre_quarantine + result.quarantine,
                        key=lambda r: (r["source_name"], r["source_path"], r["reason"]))
    unknown.sort(key=lambda r: (r["source_name"], r["source_path"], r["reason"]))
    return SeedBatch(result.rows, quarantine, unknown, truth_rows,
                     cache.hits if cache else 0, cache.misses if cache else 0)


_TRUTH_COLUMNS = ("file_name", "feature_kind", "phrase", "benign_phrase", "offending_word",
                  "benign_word", "symbol", "benign_symbol")


def _ground_truth_row(row: dict[str, Any], iid: str, partition: str, category_id: str) -> dict[str, Any]:
    out = {c: row.get(c) for c in _TRUTH_COLUMNS}
    out.update(
        image_id=iid,
        category=partition,
        category_id=category_id,
        rating="Unsafe" if row["rating"].lower() == "unsafe" else "Safe",
        feature_box=row.get("feature_box"),
        text_box=row.get("text_box"),
        details=json.dumps({k: v for k, v in row.items()
                            if k not in (*_TRUTH_COLUMNS, "feature_box", "text_box", "rating",
                                         "category_id")}, sort_keys=True),
    )
    return out
