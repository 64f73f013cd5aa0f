"""The policy lexicon: which visible words and pictograms make an image violate a category.

Plain data loaded from YAML (a user can bring their own, setting
`instructions.grounded.lexicon`), the built-in one covering LlavaGuard v1.2. Per category it
lists offending words or short phrases with the benign word that replaces each in a
counterfactual ("HURT" -> "HELP"), the reverse pairs for making a safe image unsafe, a few
unsafe phrases to add on a sign, and the unsafe -> benign pictogram pairs.

The grounded instruction generator and the OCR judges use it. Its `fingerprint` (a hash of
the parsed content, so comments and key order do not count) is part of the generator's
version: editing the lexicon re-runs exactly the instruction items it could change.

This module does not import dagster, OpenCV or the OCR engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spairs_assets.sources.pictograms import PICTOGRAMS

__all__ = [
    "DEFAULT_LEXICON_PATH",
    "CategoryLexicon",
    "Lexicon",
    "LexiconError",
    "load_lexicon",
]

DEFAULT_LEXICON_PATH = Path(__file__).parent / "policies" / "lexicon_llavaguard.yaml"

_ENTRY_RE = re.compile(r"^[A-Z0-9]+(?: [A-Z0-9]+)*$")


class LexiconError(ValueError):
    """A lexicon file that cannot be used; the message names the file and the entry."""


def _norm_entry(value: Any, where: str) -> str:
    text = " ".join(str(value).split()).upper()
    if not _ENTRY_RE.match(text):
        raise ValueError(f"{where}: {value!r} must be words of letters/digits separated by spaces")
    return text


class CategoryLexicon(BaseModel):
    """The lexicon of one policy category (see the YAML file's header for the fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replace: dict[str, str] = Field(default_factory=dict)
    reverse: dict[str, str] = Field(default_factory=dict)
    add: tuple[str, ...] = ()
    pictograms: dict[str, str] = Field(default_factory=dict)

    @field_validator("replace", "reverse", mode="before")
    @classmethod
    def _upper_pairs(cls, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of WORD: REPLACEMENT")
        out: dict[str, str] = {}
        for k, v in value.items():
            key = _norm_entry(k, "word")
            if key in out:
                raise ValueError(f"word {key!r} is listed twice")
            out[key] = _norm_entry(v, f"replacement of {key!r}")
        return out

    @field_validator("add", mode="before")
    @classmethod
    def _upper_phrases(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        return tuple(_norm_entry(v, "add phrase") for v in value)

    @field_validator("pictograms", mode="before")
    @classmethod
    def _known_pictograms(cls, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of unsafe_pictogram: benign_pictogram")
        for unsafe, benign in value.items():
            for name in (unsafe, benign):
                if name not in PICTOGRAMS:
                    raise ValueError(f"unknown pictogram {name!r}; known: {sorted(PICTOGRAMS)}")
            if not PICTOGRAMS[unsafe].unsafe:
                raise ValueError(f"pictogram {unsafe!r} is benign in the library, not unsafe")
            if PICTOGRAMS[benign].unsafe:
                raise ValueError(f"replacement pictogram {benign!r} is unsafe in the library")
        return dict(value)

    @model_validator(mode="after")
    def _consistent(self) -> CategoryLexicon:
        offending = set(self.replace)
        for word, benign in self.replace.items():
            if benign in offending:
                raise ValueError(f"the replacement of {word!r}, {benign!r}, is itself offending")
        for benign, word in self.reverse.items():
            if word not in offending:
                raise ValueError(f"reverse {benign!r} -> {word!r}: {word!r} is not a "
                                 "`replace` word")
            if benign in offending:
                raise ValueError(f"reverse word {benign!r} is itself offending")
        for phrase in self.add:
            if not any(_contains_word(phrase, w) for w in offending):
                raise ValueError(f"add phrase {phrase!r} contains none of the category's words")
        return self

    # ---- derived ---------------------------------------------------------------------------
    @cached_property
    def reverse_words(self) -> dict[str, str]:
        """benign -> offending: the inverse of `replace` (first listed wins) plus `reverse`."""
        out: dict[str, str] = {}
        for word, benign in self.replace.items():
            out.setdefault(benign, word)
        out.update(self.reverse)
        return out

    @cached_property
    def reverse_pictograms(self) -> dict[str, str]:
        """benign -> unsafe pictogram (first listed wins)."""
        out: dict[str, str] = {}
        for unsafe, benign in self.pictograms.items():
            out.setdefault(benign, unsafe)
        return out


def _contains_word(phrase: str, word: str) -> bool:
    return f" {word} " in f" {phrase} "


class Lexicon(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    policy: str | None = None
    categories: dict[str, CategoryLexicon]

    @field_validator("version", mode="before")
    @classmethod
    def _str_version(cls, value: Any) -> str:
        return str(value)

    @model_validator(mode="after")
    def _fill_pictograms(self) -> Lexicon:
        # A category without a `pictograms` entry gets the library's own pairs.
        filled = {}
        for cid, cat in self.categories.items():
            if not cat.pictograms:
                pairs = {p.name: p.benign_replacement for p in PICTOGRAMS.values()
                         if p.unsafe and cid in p.category_ids and p.benign_replacement}
                cat = cat.model_copy(update={"pictograms": pairs})
            filled[cid] = cat
        object.__setattr__(self, "categories", filled)
        return self

    def category(self, category_id: str) -> CategoryLexicon:
        """The lexicon of a category id ("O2"); an empty one for a category it does not cover."""
        return self.categories.get(category_id, CategoryLexicon())

    @property
    def category_ids(self) -> list[str]:
        return list(self.categories)

    @cached_property
    def offending_index(self) -> dict[str, list[str]]:
        """offending word -> the category ids listing it, in lexicon order."""
        out: dict[str, list[str]] = {}
        for cid, cat in self.categories.items():
            for word in cat.replace:
                out.setdefault(word, []).append(cid)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the parsed content (comments and order of keys do not count)."""
        data = self.model_dump(mode="json")
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int) -> Lexicon:
    del mtime_ns  # part of the cache key only: an edited file is read again
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise LexiconError(f"lexicon {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise LexiconError(f"lexicon {path}: the top level must be a mapping")
    try:
        return Lexicon.model_validate(raw)
    except ValueError as exc:
        raise LexiconError(
            f"lexicon {path} (setting instructions.grounded.lexicon): {exc}") from None


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Load and validate a lexicon YAML file; the built-in LlavaGuard lexicon when None."""
    file = Path(path) if path else DEFAULT_LEXICON_PATH
    if not file.is_file():
        raise LexiconError(
            f"lexicon file not found: {file} (setting instructions.grounded.lexicon)")
    resolved = file.resolve()
    return _load(str(resolved), resolved.stat().st_mtime_ns)
