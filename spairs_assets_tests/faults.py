"""Fault injection for tests: the real classical editor and a real CPU judge, each raising on
about 10% of its items while a flag file exists.

They are registered through the real registries (`spairs_assets.editing.stage.EDITORS`:
name -> "module:factory"; `spairs_assets.judges.registry.CPU_JUDGES`: kind -> factory name) by
`install`. Which items fail is fixed by a hash of the item (an edit's seed, which hashes its
instruction and candidate number; a judged image's id), so a rerun fails the same items while
the flag is there and none once it is removed. Everything else is the real backend: ids, cache
keys and outputs of the items that succeed are exactly the unwrapped backend's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

FLAG_ENV = "SPAIRS_TEST_FAULTS_FLAG"
RATE = 10  # one item in RATE fails
EDITOR_ERROR = "InjectedEditorFault"
JUDGE_ERROR = "InjectedJudgeFault"


class InjectedFault(RuntimeError):
    pass


def faults_on() -> bool:
    flag = os.environ.get(FLAG_ENV)
    return bool(flag) and Path(flag).exists()


def chosen(*parts: Any) -> bool:
    """Whether this item is among the ~10% that fail (a stable hash, not random)."""
    digest = hashlib.sha256(":".join(str(p) for p in ("fault", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % RATE == 0


class FlakyEditor:
    """Delegates to a real editor; raises on the chosen items while faults are on."""

    def __init__(self, inner):
        self.inner = inner
        self.editor_id = inner.editor_id
        self.revision = inner.revision
        self.params = inner.params
        self.uses_gpu = inner.uses_gpu

    def __getattr__(self, name: str):
        # Everything else (package_versions, ...) is the real editor's, so rows and ids match
        # an unwrapped run; a batch entry point would bypass the faults, so there is none.
        if name in ("edit_batch", "inner"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def edit(self, image, instruction, seed: int):
        if faults_on() and chosen("edit", seed):
            raise InjectedFault(f"{EDITOR_ERROR} on edit seed {seed}")
        return self.inner.edit(image, instruction, seed)

    def null_edit(self, image, seed: int):
        if faults_on() and chosen("null", seed):
            raise InjectedFault(f"{EDITOR_ERROR} on null edit seed {seed}")
        return self.inner.null_edit(image, seed)


class FlakyJudge:
    """Delegates to a real judge (same judge_id, version, covers); raises on chosen images."""

    def __init__(self, inner):
        self.inner = inner
        self.judge_id = inner.judge_id
        self.version = inner.version
        self.covers = inner.covers

    def __getattr__(self, name: str):
        if name in ("judge_batch", "inner"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def judge(self, image, *, image_id: str | None = None):
        if faults_on() and chosen("judge", self.judge_id, image_id):
            raise InjectedFault(f"{JUDGE_ERROR} on image {image_id}")
        return self.inner.judge(image, image_id=image_id)


def flaky_classical(config):
    """EDITORS factory: the real classical editor, wrapped."""
    from spairs_assets.editing.classical import from_config

    return FlakyEditor(from_config(config))


def flaky_ocr_lexicon_judge(config, policy):
    """CPU_JUDGES factory: the real OCR + lexicon judge, wrapped."""
    from spairs_assets.judges.cpu_judges import ocr_lexicon_judge

    return FlakyJudge(ocr_lexicon_judge(config, policy))


FLAKY_JUDGE_KIND = "ocr-lexicon"


def install(monkeypatch, flag: Path) -> None:
    """Route `editing.editor: classical` and the `ocr-lexicon` judge to the flaky wrappers."""
    import spairs_assets.judges.cpu_judges as cpu_judges
    from spairs_assets.editing import stage
    from spairs_assets.judges import registry

    monkeypatch.setenv(FLAG_ENV, str(flag))
    monkeypatch.setitem(stage.EDITORS, "classical", f"{__name__}:flaky_classical")
    # CPU judge factories are looked up by name in the CPU judge module.
    monkeypatch.setattr(cpu_judges, "flaky_ocr_lexicon_judge", flaky_ocr_lexicon_judge, raising=False)
    monkeypatch.setitem(registry.CPU_JUDGES, FLAKY_JUDGE_KIND, "flaky_ocr_lexicon_judge")
