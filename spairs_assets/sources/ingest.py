"""Decode, verify and normalise seed images; quarantine what cannot be used, with the reason.

Every candidate ends as exactly one of: a `source_images` row, or a `quarantine` row. Nothing is
dropped silently and one bad file never stops the others.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from spairs_assets.ids import file_sha256
from spairs_assets.policy import SafetyPolicy
from spairs_assets.sources.discover import Rejection, SeedCandidate, parse_rating
from spairs_assets.storage import ImageStore, ItemCache, cache_key

QUARANTINE_REASONS: dict[str, str] = {
    "zero_bytes": "the file is empty",
    "truncated": "the image data ends early or is corrupt",
    "not_an_image": "the file is not a decodable image",
    "decompression_bomb": "more pixels than sources.max_pixels allows",
    "animated": "an animated image (several frames) is not a seed",
    "outside_roots": "the path resolves outside the configured roots",
    "unknown_category": "the category is not in the safety policy",
    "unknown_rating": "the rating is neither Safe nor Unsafe",
    "unreadable": "the file could not be read",
    "duplicate": "the same pixels as another seed of this category",
    "bad_manifest_row": "the manifest row is incomplete or malformed",
    "bad_layout": "a folder source file is not under <category>/<rating>/",
}

UNKNOWN_PARTITION = "_unknown"

# Refuse silently-truncated decodes: a truncated file must be quarantined, not half-loaded.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class Quarantined(Exception):
    def __init__(self, reason: str, detail: str):
        assert reason in QUARANTINE_REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class IngestParams:
    max_side: int
    max_pixels: int

    def as_dict(self) -> dict[str, int]:
        return {"max_side": self.max_side, "max_pixels": self.max_pixels}


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Convert any mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr8 = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB"), f"{mode}->RGB (scaled to 8 bit)"
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), f"{mode}->RGB (alpha on white)"
    return img.convert("RGB"), f"{mode}->RGB"


def decode_image(data: bytes, params: IngestParams) -> tuple[np.ndarray, dict[str, Any]]:
    """Bytes to canonical uint8 RGB pixels plus what normalising did; raises `Quarantined`."""
    if not data:
        raise Quarantined("zero_bytes", "0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            width, height = img.size
            if width * height > params.max_pixels:
                raise Quarantined(
                    "decompression_bomb",
                    f"{width}x{height} = {width * height} pixels > max_pixels {params.max_pixels}",
                )
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise Quarantined("animated", f"{fmt} with {frames} frames")
            img.verify()  # checksums and structure; the image must be reopened afterwards
            img = Image.open(io.BytesIO(data))
            img.load()
    except Quarantined:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Quarantined("decompression_bomb", str(exc)) from None
    except UnidentifiedImageError:
        raise Quarantined("not_an_image", "no image format recognised the bytes") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        raise Quarantined("truncated", text) from None

    info: dict[str, Any] = {"format": fmt, "mode": img.mode, "original_size": [width, height]}
    orientation = img.getexif().get(0x0112)
    if orientation and orientation != 1:
        img = ImageOps.exif_transpose(img)
        info["exif_orientation"] = int(orientation)
    img, converted = _to_rgb(img)
    if converted:
        info["converted"] = converted
    if max(img.size) > params.max_side:
        scale = params.max_side / max(img.size)
        new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new_size, Image.Resampling.LANCZOS)
        info["resized_to"] = list(new_size)
    return np.asarray(img, dtype=np.uint8).copy(), info


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    for root in roots:
        try:
            path.relative_to(Path(root).resolve())
            return True
        except ValueError:
            continue
    return False


def read_candidate(candidate: SeedCandidate) -> bytes:
    """Read a candidate's bytes after checking it resolves inside its allowed roots."""
    try:
        resolved = candidate.file.resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        raise Quarantined("unreadable", f"{candidate.file}: {exc.__class__.__name__}") from None
    if not _inside(resolved, candidate.allowed_roots):
        raise Quarantined("outside_roots", f"{resolved} is outside {[str(r) for r in candidate.allowed_roots]}")
    if not resolved.is_file():
        raise Quarantined("unreadable", f"{resolved} is not a regular file")
    try:
        return resolved.read_bytes()
    except OSError as exc:
        raise Quarantined("unreadable", f"{resolved}: {exc.strerror or exc}") from None


@dataclass
class IngestResult:
    rows: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    ground_truth_files: dict[str, str]  # candidate file path -> image id, for demo ground truth


def quarantine_row(category: str, item: SeedCandidate | Rejection, reason: str, detail: str,
                   sha: str | None = None) -> dict[str, Any]:
    return {
        "category": category,
        "source_kind": item.source_kind,
        "source_name": item.source_name,
        "source_path": item.source_path,
        "reason": reason,
        "detail": detail,
        "source_sha256": sha,
    }


def ingest_candidates(
    candidates: Iterable[SeedCandidate],
    *,
    partition: str,
    policy: SafetyPolicy,
    images: ImageStore,
    params: IngestParams,
    cache: ItemCache | None = None,
    code_version: str = "",
) -> IngestResult:
    """Turn one category's candidates into seed rows and quarantine rows.

    Decoding is cached per (file bytes hash, params, code version), so a refresh only decodes
    new files. Duplicates (same canonical pixels) keep the first by (source, path) order.
    """
    category = policy.category(partition)
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    by_image: dict[str, dict[str, Any]] = {}
    files: dict[str, str] = {}
    ordered = sorted(candidates, key=lambda c: (c.source_kind, c.source_name, c.source_path))
    for cand in ordered:
        sha = None
        try:
            rating = parse_rating(cand.rating_ref)
            if rating is None:
                raise Quarantined("unknown_rating", f"rating {cand.rating_ref!r} (use Safe or Unsafe)")
            data = read_candidate(cand)
            sha = file_sha256(data) if data else None
            key = cache_key(sha=sha, params=params.as_dict(), code=code_version) if sha else None
            cached = cache.get(key) if (cache and key) else None
            if cached and images.exists(cached["image_id"]):
                iid, path, width, height = cached["image_id"], cached["image_path"], cached["width"], cached["height"]
                info = cached["info"]
            else:
                pixels, info = decode_image(data, params)
                stored = images.put(pixels)
                iid, path, width, height = stored.image_id, stored.path, stored.width, stored.height
                if cache and key:
                    cache.put(key, {"image_id": iid, "image_path": path, "width": width,
                                    "height": height, "info": info})
        except Quarantined as q:
            quarantine.append(quarantine_row(partition, cand, q.reason, q.detail, sha))
            continue
        if iid in by_image:
            kept = by_image[iid]
            quarantine.append(quarantine_row(
                partition, cand, "duplicate",
                f"same pixels as {kept['source_name']}:{kept['source_path']} (image {iid[:12]})", sha))
            continue
        row = {
            "image_id": iid,
            "image_path": path,
            "category": partition,
            "category_id": category.id,
            "rating": rating,
            "width": int(width),
            "height": int(height),
            "source_kind": cand.source_kind,
            "source_name": cand.source_name,
            "source_path": cand.source_path,
            "source_sha256": sha,
            "licence": cand.licence,
            "provenance": json.dumps({**info, **cand.extra}, sort_keys=True, default=str),
        }
        by_image[iid] = row
        rows.append(row)
        files[str(cand.file)] = iid
    rows.sort(key=lambda r: r["image_id"])
    quarantine.sort(key=lambda r: (r["source_name"], r["source_path"], r["reason"]))
    return IngestResult(rows, quarantine, files)
