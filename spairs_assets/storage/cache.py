"""Per-item cache of expensive work (model calls, decoding), one small JSON file per item.

The key hashes everything the result depends on (input ids, backend id, model revision, params,
code version). Each item is written as soon as it is computed, atomically, so a crash loses at
most the items in flight and a rerun recomputes only what is missing.
"""

from __future__ import annotations

import json
from typing import Any

from spairs_assets.ids import hash_parts
from spairs_assets.storage.fs import Storage


def cache_key(**parts: Any) -> str:
    return hash_parts("cache", parts)


class ItemCache:
    def __init__(self, storage: Storage, stage: str):
        self.storage = storage
        self.stage = stage
        self.hits = 0
        self.misses = 0

    def _rel(self, key: str) -> str:
        return f"cache/{self.stage}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        rel = self._rel(key)
        if not self.storage.exists(rel):
            self.misses += 1
            return None
        try:
            value = json.loads(self.storage.read_bytes(rel))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.misses += 1  # a torn file from a crash on a non-atomic store: recompute
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.storage.write_bytes(self._rel(key), json.dumps(value, sort_keys=True).encode())
