"""Content-derived ids: the same inputs give the same id on any machine.

An id is the sha256 of a canonical encoding of what the thing is made of, so rows can be
recomputed, cached and deduplicated without coordination.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the byte form that ids and cache keys hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def hash_parts(kind: str, *parts: Any) -> str:
    """sha256 hex of a kind tag plus the canonical JSON of the parts."""
    return hashlib.sha256(canonical_json([kind, *parts]).encode()).hexdigest()


def image_id(pixels: np.ndarray) -> str:
    """Id of an image: the hash of its canonical pixels (uint8 RGB, height x width x 3)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"canonical pixels must be uint8 HxWx3, got {pixels.dtype} {pixels.shape}")
    digest = hashlib.sha256(f"rgb8:{pixels.shape[1]}x{pixels.shape[0]}:".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def instruction_id(source_image_id: str, text: str, generator_id: str) -> str:
    return hash_parts("instruction", source_image_id, text, generator_id)


def edit_id(instruction_id: str, editor_id: str, params: dict, seed: int) -> str:
    return hash_parts("edit", instruction_id, editor_id, params, seed)


def pair_id(unsafe_image_id: str, safe_image_id: str, instruction_id: str) -> str:
    return hash_parts("pair", unsafe_image_id, safe_image_id, instruction_id)
