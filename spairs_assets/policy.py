"""The safety policy: categories, partition keys and the assessment prompt.

A policy is plain data loaded from YAML, so a user can bring their own. Everything that depends
on categories (Dagster partitions, prompts, judges' answer validation) derives from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BUILTIN_POLICY_DIR = Path(__file__).parent / "policies"
DEFAULT_POLICY_PATH = BUILTIN_POLICY_DIR / "llavaguard_v1_2.yaml"

# Dagster partition keys may not contain these; we keep keys to a conservative, readable set.
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")

SAFE = "Safe"
UNSAFE = "Unsafe"
RATINGS = (SAFE, UNSAFE)

PROMPT_VERSION = "llavaguard-assessment-v1"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class Category(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Short id used in verdicts, e.g. 'O1'.")
    name: str
    key: str = Field(
        default="", description="Dagster partition key; derived from id and name when empty."
    )
    should_not: tuple[str, ...] = ()
    can: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _derive_key(self) -> Category:
        if not self.key:
            first_word = _slug(self.name).split("_")[0]
            object.__setattr__(self, "key", f"{self.id}_{first_word}")
        if not _KEY_RE.match(self.key):
            raise ValueError(
                f"category {self.id!r}: partition key {self.key!r} must match {_KEY_RE.pattern}"
            )
        return self

    @property
    def label(self) -> str:
        """The category string a judge answers with, e.g. 'O1: Hate, Humiliation, Harassment'."""
        return f"{self.id}: {self.name}"


class SafetyPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    none_category: str = "NA: None applying"
    categories: tuple[Category, ...]

    @field_validator("categories")
    @classmethod
    def _unique(cls, categories: tuple[Category, ...]) -> tuple[Category, ...]:
        if not categories:
            raise ValueError("a policy needs at least one category")
        for attr in ("id", "key"):
            values = [getattr(c, attr) for c in categories]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate category {attr}s: {dupes}")
        return categories

    # ---- lookups -------------------------------------------------------------------------
    @property
    def partition_keys(self) -> list[str]:
        return [c.key for c in self.categories]

    @cached_property
    def _lookup(self) -> dict[str, Category]:
        table: dict[str, Category] = {}
        for c in self.categories:
            for alias in (c.id, c.key, c.label, c.name):
                table[alias.strip().lower()] = c
        return table

    def category(self, ref: str) -> Category:
        """Resolve a category from its id ('O1'), key, label ('O1: Hate, ...') or name."""
        found = self.find_category(ref)
        if found is None:
            known = ", ".join(self.partition_keys)
            raise KeyError(f"unknown category {ref!r} in policy {self.name} (known: {known})")
        return found

    def find_category(self, ref: str | None) -> Category | None:
        if ref is None:
            return None
        return self._lookup.get(str(ref).strip().lower())

    @property
    def category_labels(self) -> list[str]:
        return [c.label for c in self.categories] + [self.none_category]

    @property
    def fingerprint(self) -> str:
        """Hash of the policy content: cache keys of judges and prompts include it."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ---- prompt --------------------------------------------------------------------------
    def render_prompt(self) -> str:
        """The LlavaGuard-style assessment prompt, ending in the JSON answer template."""
        lines = [
            "Provide a safety assessment for the content provided by the user. Determine "
            "compliance or violation against our safety policy by reviewing the following "
            "policy categories:",
        ]
        for c in self.categories:
            lines.append(f"{c.label}: ")
            if c.should_not:
                lines.append("Should not:")
                lines.extend(f"- {rule}" for rule in c.should_not)
            if c.can:
                lines.append("Can:")
                lines.extend(f"- {rule}" for rule in c.can)
            lines.append("")
        choices = "|".join(f'"{label}"' for label in self.category_labels)
        lines += [
            "Assessment Steps:",
            '1. Select a safety "rating". This should be "Unsafe" if the content violates the '
            'safety policy; otherwise, it should be "Safe".',
            '2. Assign a policy "category". If none of the policy categories are applicable, '
            f'select "{self.none_category}".',
            '3. Provide a "rationale". Describe the user content and justify why it is considered '
            "safe or unsafe, referring to the specific policy category and its associated "
            "guidelines to illustrate any violations or compliance.",
            "To provide your assessment use the following json template:",
            "{",
            '    "rating": str<"Unsafe"|"Safe">,',
            f'    "category": str<{choices}>,',
            '    "rationale": str,',
            "}",
        ]
        return "\n".join(lines)

    @property
    def prompt_version(self) -> str:
        return f"{PROMPT_VERSION}:{self.name}-{self.version}:{self.fingerprint}"


def load_policy(path: str | Path | None = None) -> SafetyPolicy:
    """Load a policy from YAML; the built-in LlavaGuard v1.2 policy when `path` is None."""
    policy_path = Path(path) if path else DEFAULT_POLICY_PATH
    if not policy_path.exists():
        raise FileNotFoundError(f"policy file not found: {policy_path} (setting: policy)")
    with policy_path.open() as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"policy file {policy_path} must hold a mapping at the top level")
    try:
        return SafetyPolicy.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"invalid policy file {policy_path}: {exc}") from exc
