"""Find seed candidates in the configured sources: demo set, folders and manifests.

Discovery only reads listings and manifest rows; it never decodes images. Each candidate says
where it came from; anything that cannot become a candidate (a bad manifest row, a file in the
wrong place) is returned as a quarantine entry with the reason, never dropped.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spairs_assets.policy import SAFE, UNSAFE

MANIFEST_REQUIRED = ("path", "category", "rating")
MANIFEST_KNOWN = (*MANIFEST_REQUIRED, "source", "licence", "license")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")


@dataclass(frozen=True)
class SeedCandidate:
    source_kind: str
    source_name: str
    source_path: str  # as the source names it (manifest text, or path under the folder root)
    file: Path  # absolute, not yet resolved through symlinks
    category_ref: str
    rating_ref: str
    licence: str | None
    allowed_roots: tuple[Path, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # goes into provenance


@dataclass(frozen=True)
class Rejection:
    """A quarantine entry found before decoding."""

    source_kind: str
    source_name: str
    source_path: str
    reason: str
    detail: str
    category_ref: str | None = None


class ManifestError(ValueError):
    """A manifest that cannot be read at all (missing columns, unknown format)."""


def parse_rating(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return {"unsafe": UNSAFE, "safe": SAFE}.get(text)


def _visible_files(root: Path) -> Iterator[Path]:
    """Files under `root`, without descending into hidden folders: an upload or a demo category
    being written next to its final place (`.tmp-*`) may vanish while we walk, and is not a
    seed yet. A folder removed during the walk is skipped (os.walk ignores its error)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith("."):
                yield Path(dirpath) / f


def discover_folder(
    root: Path, *, kind: str, name: str, licence: str | None, allowed_roots: tuple[Path, ...],
    skip_top_level: tuple[str, ...] = (),
) -> Iterator[SeedCandidate | Rejection]:
    """`<root>/<category>/<rating>/<files, possibly in subfolders>`.

    Files directly in `root` whose suffix is in `skip_top_level` are left alone (the incoming
    folder keeps its manifests there)."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"source {name!r}: folder {root} does not exist")
    roots = (root, *allowed_roots)
    for path in sorted(_visible_files(root)):
        rel = path.relative_to(root)
        parts = rel.parts
        if len(parts) == 1 and path.suffix.lower() in skip_top_level:
            continue
        if len(parts) < 3:
            yield Rejection(kind, name, rel.as_posix(), "bad_layout",
                            "expected <root>/<category>/<rating>/<file>",
                            parts[0] if len(parts) == 2 else None)
            continue
        yield SeedCandidate(
            source_kind=kind,
            source_name=name,
            source_path=rel.as_posix(),
            file=path,
            category_ref=parts[0],
            rating_ref=parts[1],
            licence=licence,
            allowed_roots=roots,
            extra={"relative_path": rel.as_posix()},
        )


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(row number, row or None when unparsable, error text)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in MANIFEST_REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ManifestError(f"manifest {path}: missing columns {missing}")
            for i, row in enumerate(reader, start=1):
                yield i, dict(row), ""
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield i, None, f"line {i} is not JSON: {exc.msg}"
                    continue
                if not isinstance(row, dict):
                    yield i, None, f"line {i} is not a JSON object"
                    continue
                yield i, row, ""
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = [c for c in MANIFEST_REQUIRED if c not in table.column_names]
        if missing:
            raise ManifestError(f"manifest {path}: missing columns {missing}")
        for i, row in enumerate(table.to_pylist(), start=1):
            yield i, row, ""
    else:
        raise ManifestError(f"manifest {path}: unsupported format (use one of {MANIFEST_SUFFIXES})")


def discover_manifest(
    path: Path, *, name: str, licence: str | None, allowed_roots: tuple[Path, ...]
) -> Iterator[SeedCandidate | Rejection]:
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise FileNotFoundError(f"source {name!r}: manifest {path} does not exist")
    base = path.parent
    roots = (base, *allowed_roots)
    for row_number, row, error in _manifest_rows(path):
        where = f"{path.name}#{row_number}"
        if row is None:
            yield Rejection("manifest", name, where, "bad_manifest_row", error)
            continue
        missing = [c for c in MANIFEST_REQUIRED if not str(row.get(c) or "").strip()]
        if missing:
            yield Rejection("manifest", name, where, "bad_manifest_row",
                            f"row {row_number}: empty {missing}", row.get("category"))
            continue
        given = str(row["path"]).strip()
        file = Path(given).expanduser()
        file = file if file.is_absolute() else base / file
        extra = {k: v for k, v in row.items() if k not in MANIFEST_KNOWN and v not in (None, "")}
        yield SeedCandidate(
            source_kind="manifest",
            source_name=str(row.get("source") or name),
            source_path=given,
            file=file.absolute(),
            category_ref=str(row["category"]).strip(),
            rating_ref=str(row["rating"]).strip(),
            licence=row.get("licence") or row.get("license") or licence,
            allowed_roots=roots,
            extra={"manifest": str(path), "manifest_row": row_number, **extra},
        )
