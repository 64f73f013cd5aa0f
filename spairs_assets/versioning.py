"""Code versions: a stage's version changes when the source of its domain module changes.

They key per-item caches and Dagster `code_version`s, so editing a stage's code invalidates
exactly that stage's cached work and shows as stale in the UI.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from spairs_assets import __version__

PACKAGE_DIR = Path(__file__).parent

# Which files make up each stage's behaviour (relative to the package). Shared code that
# changes row contents (ids, schemas) is part of every stage.
_SHARED = ("ids.py", "storage/schemas.py")
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "sources": ("sources", "policy.py"),
    "instructions": ("instructions", "vision", "lexicon.py", "policy.py", "incremental.py",
                     "models", "sources/pictograms.py"),
    "editing": ("editing", "vision", "incremental.py", "models", "sources/pictograms.py"),
    "verification": ("verification", "judges", "encoders", "vision", "lexicon.py", "models",
                     "curation/select.py", "incremental.py", "policy.py"),
    "curation": ("curation", "policy.py"),
    "benchmark": ("benchmark", "judges", "models", "vision", "lexicon.py", "encoders",
                  "incremental.py", "policy.py", "guards/judge.py", "guards/probe.py"),
    "guards": ("guards", "encoders", "vision", "incremental.py", "curation/select.py"),
}


def _files(entries: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for entry in entries:
        path = PACKAGE_DIR / entry
        out.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return out


@cache
def code_version(stage: str) -> str:
    """`<package version>+<hash of the stage's source files>`, e.g. `0.1.0+3f2a9c1b7d`."""
    if stage not in STAGE_FILES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_FILES)}")
    digest = hashlib.sha256()
    for path in _files(STAGE_FILES[stage] + _SHARED):
        if path.exists():
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:10]}"


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (for reproducibility records)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
