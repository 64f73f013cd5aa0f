"""What is in the incoming folder, and which category partitions changed since the last look.

The `incoming_seeds` sensor calls `changes_since` on every tick. The folder holds
`<category>/<rating>/<images>` and manifest files (CSV, JSONL, Parquet) at its top level, exactly
as ingestion reads it (`spairs_assets.sources.seeds.incoming_sources`):

- an image under `<category>/...` belongs to the category its top folder names, resolved through
  the policy (id, key, label or name); a file directly in a category folder (a bad layout) still
  belongs to it, since ingestion quarantines it in that partition;
- a manifest row belongs to the category in its `category` column; an image a manifest lists is
  counted under the manifest's category, not its folder (ingestion does the same);
- categories the policy does not know are ignored here (ingestion quarantines them), as are hidden
  files and folders (`.partial-upload.png`, `.tmp-*`).

Nothing is decoded or hashed by content: a file is fingerprinted by its path, size and
modification time (`stat`), a manifest row by its content plus the stat of the file it points
to. The cursor is compact: one 64-bit digest and an item count per category, whatever the number
of files, so it fits in the sensor's cursor. A touched but unchanged file therefore requests a
run; that run finds every item in the per-item caches and computes nothing.

A category with a file modified in the last `settle_s` seconds (a copy still in progress) is
held back: its previous digest stays in the cursor, so the next tick looks at it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spairs_assets.config import SpairsConfig
from spairs_assets.policy import SafetyPolicy
from spairs_assets.sources.discover import (
    MANIFEST_SUFFIXES,
    ManifestError,
    Rejection,
    SeedCandidate,
    discover_manifest,
)

CURSOR_VERSION = 1
DIGEST_CHARS = 16  # 64 bits per category


@dataclass(frozen=True)
class CategoryState:
    """One category's share of the incoming folder."""

    digest: str  # over its items' paths and stat signatures (or manifest rows)
    items: int  # files plus manifest rows
    newest_mtime: float  # of its files and manifests, to hold back copies in progress


@dataclass(frozen=True)
class IncomingScan:
    """A snapshot of the incoming folder, grouped by category partition."""

    root: Path
    categories: dict[str, CategoryState]  # partition key -> state
    unknown: dict[str, int]  # category refs the policy does not know -> item count (ignored)
    manifest_errors: dict[str, str]  # manifest name -> why it could not be read
    fingerprint: str  # of everything there, known categories or not

    @property
    def items(self) -> int:
        return sum(s.items for s in self.categories.values())


@dataclass(frozen=True)
class IncomingChanges:
    """What `changes_since` found: the partitions to refresh and the cursor to store."""

    affected: list[str]  # partition keys whose items are new, changed or removed; sorted
    cursor: str  # JSON: store it as the sensor cursor
    scan: IncomingScan
    held_back: list[str] = field(default_factory=list)  # changed, but a file is still being copied
    epoch: str = ""  # identifies the cursor's history (a reset cursor starts a new one)
    seq: int = 0  # how many ticks with changes this cursor has seen (this one included)
    previous_items: dict[str, int] = field(default_factory=dict)

    def run_key(self, partition: str) -> str:
        """Unique per change (and per partition): the sensor's RunRequest run key."""
        state = self.scan.categories.get(partition)
        digest = state.digest if state else "removed"
        return f"incoming:{self.epoch}:{self.seq}:{partition}:{digest}"

    def describe(self, partition: str) -> str:
        now = self.scan.categories.get(partition)
        before = self.previous_items.get(partition, 0)
        return f"{partition}: {before} -> {now.items if now else 0} items"


def incoming_root(config: SpairsConfig) -> Path | None:
    """The configured incoming folder (resolved), or None when `sources.incoming` is unset."""
    if config.sources.incoming is None:
        return None
    return config.resolve(config.sources.incoming)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _stat_signature(path: Path) -> tuple[str, float]:
    try:
        st = path.stat()
    except OSError:
        return "missing", 0.0
    return f"{st.st_size}:{st.st_mtime_ns}", st.st_mtime


def _walk_files(root: Path) -> list[tuple[str, os.stat_result]]:
    """(posix path relative to root, stat) of every non-hidden file under root."""
    found: list[tuple[str, os.stat_result]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # vanished or unreadable: what remains is still scanned
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            rel = f"{prefix}{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                elif entry.is_file():
                    found.append((rel, entry.stat()))
            except OSError:
                continue
    return found


# Parsed manifests, reused across sensor ticks in one process: (path, size, mtime_ns) -> rows.
_MANIFEST_MEMO: dict[tuple[str, int, int], list[tuple[str | None, str, Path | None]]] = {}
_MEMO_LIMIT = 64


def _manifest_rows(path: Path, st: os.stat_result) -> list[tuple[str | None, str, Path | None]]:
    """(category ref, row digest, file it points to) per manifest row."""
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _MANIFEST_MEMO:
        return _MANIFEST_MEMO[key]
    rows: list[tuple[str | None, str, Path | None]] = []
    for item in discover_manifest(path, name=f"incoming:{path.name}", licence=None, allowed_roots=()):
        if isinstance(item, SeedCandidate):
            # The row's content, not its line number: reordering a manifest changes nothing.
            extra = {k: v for k, v in item.extra.items() if k != "manifest_row"}
            content = [item.source_name, item.source_path, item.category_ref, item.rating_ref,
                       item.licence, extra]
            rows.append((item.category_ref, _digest(content), item.file))
        elif isinstance(item, Rejection):
            rows.append((item.category_ref, _digest([item.reason, item.detail, item.source_path]), None))
    if len(_MANIFEST_MEMO) >= _MEMO_LIMIT:
        _MANIFEST_MEMO.clear()
    _MANIFEST_MEMO[key] = rows
    return rows


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def scan_incoming(root: Path | str, policy: SafetyPolicy) -> IncomingScan:
    """Fingerprint the incoming folder, grouped by the category partition each item feeds."""
    root = Path(root).expanduser().resolve()
    items: dict[str, list[str]] = defaultdict(list)  # category ref or key -> item signatures
    newest: dict[str, float] = defaultdict(float)
    manifest_errors: dict[str, str] = {}
    if not root.is_dir():
        return IncomingScan(root, {}, {}, {}, _digest([]))

    files = _walk_files(root)
    manifests = [(rel, st) for rel, st in files
                 if "/" not in rel and Path(rel).suffix.lower() in MANIFEST_SUFFIXES]
    listed: set[str] = set()
    for rel, st in sorted(manifests):
        path = root / rel
        try:
            rows = _manifest_rows(path, st)
        except (ManifestError, OSError, ValueError, UnicodeDecodeError) as exc:
            manifest_errors[rel] = f"{type(exc).__name__}: {exc}"
            continue
        except Exception as exc:  # a half-written Parquet file: pyarrow's own errors
            manifest_errors[rel] = f"{type(exc).__name__}: {exc}"
            continue
        for category_ref, row_digest, file in rows:
            if category_ref is None:
                continue  # an unparsable row: ingestion quarantines it outside any category
            group = _group(policy, category_ref)
            signature, mtime = _stat_signature(file) if file is not None else ("", 0.0)
            items[group].append(f"m|{rel}|{row_digest}|{signature}")
            newest[group] = max(newest[group], st.st_mtime, mtime)
            if file is not None:
                try:
                    listed.add(file.relative_to(root).as_posix())
                except ValueError:
                    pass  # a file outside the incoming folder

    for rel, st in files:
        if rel in listed:
            continue  # counted under its manifest's category
        parts = rel.split("/")
        if len(parts) == 1:
            continue  # manifests (above) or stray top-level files (no category)
        group = _group(policy, parts[0])
        items[group].append(f"f|{rel}|{st.st_size}:{st.st_mtime_ns}")
        newest[group] = max(newest[group], st.st_mtime)

    categories: dict[str, CategoryState] = {}
    unknown: dict[str, int] = {}
    for group, signatures in items.items():
        if group.startswith("?"):
            unknown[group[1:]] = len(signatures)
            continue
        categories[group] = CategoryState(_digest(sorted(signatures))[:DIGEST_CHARS],
                                          len(signatures), newest[group])
    everything = {g: _digest(sorted(s)) for g, s in items.items()}
    return IncomingScan(root, dict(sorted(categories.items())), dict(sorted(unknown.items())),
                        manifest_errors, _digest([everything, sorted(manifest_errors)])[:DIGEST_CHARS])


def _group(policy: SafetyPolicy, ref: str) -> str:
    found = policy.find_category(ref)
    return found.key if found is not None else f"?{ref}"


def parse_cursor(cursor: str | None) -> dict[str, Any]:
    """The stored cursor as a dict (empty for None, another version, or a corrupt value)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except (TypeError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        return {}
    return data


def changes_since(
    root: Path | str,
    policy: SafetyPolicy,
    cursor: str | None,
    *,
    settle_s: float = 0.0,
    now: float | None = None,
) -> IncomingChanges:
    """The category partitions whose incoming items are new, changed or removed since `cursor`.

    `cursor` is what a previous call returned (None the first time: every category with items
    is affected). Removed items count as a change: a refresh drops their rows.
    """
    previous = parse_cursor(cursor)
    before: dict[str, list] = previous.get("categories", {})
    scan = scan_incoming(root, policy)
    now = time.time() if now is None else now

    stored: dict[str, list] = {}
    affected: list[str] = []
    held_back: list[str] = []
    for key in sorted(set(before) | set(scan.categories)):
        state = scan.categories.get(key)
        old = before.get(key)
        current = [state.digest, state.items] if state else None
        if current == (list(old) if old else None):
            if current:
                stored[key] = current
            continue
        if state is not None and settle_s > 0 and now - state.newest_mtime < settle_s:
            held_back.append(key)  # look again next tick; keep what the last cursor said
            if old:
                stored[key] = list(old)
            continue
        affected.append(key)
        if current:
            stored[key] = current

    epoch = str(previous.get("epoch") or uuid.uuid4().hex[:8])
    seq = int(previous.get("seq", 0)) + (1 if affected else 0)
    data = {"v": CURSOR_VERSION, "epoch": epoch, "seq": seq, "fingerprint": scan.fingerprint,
            "categories": stored}
    return IncomingChanges(
        affected=affected,
        cursor=json.dumps(data, sort_keys=True, separators=(",", ":")),
        scan=scan,
        held_back=held_back,
        epoch=epoch,
        seq=seq,
        previous_items={k: int(v[1]) for k, v in before.items()},
    )
