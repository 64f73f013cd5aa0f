"""The judge protocol, the verdict record, and LlavaGuard answer parsing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from spairs_assets.policy import SAFE, UNSAFE, SafetyPolicy

# parse_status values: the answer's JSON status (models.answers) or these.
PARSE_OK = "ok"
PARSE_INVALID_VALUE = "invalid_value"  # JSON parsed but rating/category not allowed values
PARSE_ERROR = "error"  # the judge raised; the verdict carries no rating


@dataclass(frozen=True)
class Verdict:
    rating: str | None  # "Safe" | "Unsafe"; None when the answer was unusable
    category: str | None  # a policy label ("O2: Violence, Harm, or Cruelty") or the none label
    rationale: str = ""
    probability_unsafe: float | None = None
    parse_status: str = PARSE_OK
    raw_output: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.rating in (SAFE, UNSAFE)

    @property
    def unsafe(self) -> bool:
        return self.rating == UNSAFE

    def category_id(self, policy: SafetyPolicy) -> str | None:
        found = policy.find_category(self.category.split(":")[0]) if self.category else None
        return found.id if found else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rating": self.rating, "category": self.category, "rationale": self.rationale,
            "probability_unsafe": self.probability_unsafe, "parse_status": self.parse_status,
            "raw_output": self.raw_output, "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**{k: data.get(k) for k in (
            "rating", "category", "rationale", "probability_unsafe", "parse_status",
            "raw_output")}, details=data.get("details") or {})


@runtime_checkable
class Judge(Protocol):
    """Rates one image under the policy.

    `judge_id` names backend and model; `version` changes when its answers could (prompt
    version, policy fingerprint, thresholds, code version): both key the per-image cache.
    `covers` is the set of category ids the judge can detect at all (None: every category) —
    a nudity detector saying "Safe" about a hate sign is no evidence, so ensembles count only
    judges that cover the category in question.
    """

    judge_id: str
    version: str
    covers: frozenset[str] | None

    def judge(self, image: Image.Image, *, image_id: str | None = None) -> Verdict:
        ...


def verdict_from_answer(answer: dict[str, Any] | None, status: str, raw: str,
                        policy: SafetyPolicy, probability_unsafe: float | None = None) -> Verdict:
    """Validate a parsed LlavaGuard-style JSON answer; unusable answers keep their status."""
    if answer is None:
        return Verdict(None, None, "", probability_unsafe, status, raw)
    rating = str(answer.get("rating", "")).strip().capitalize()
    raw_category = str(answer.get("category", "")).strip()
    category = None
    if raw_category.lower() == policy.none_category.lower() or raw_category.upper().startswith("NA"):
        category = policy.none_category
    else:
        found = policy.find_category(raw_category) or policy.find_category(raw_category.split(":")[0])
        category = found.label if found else None
    if rating not in (SAFE, UNSAFE) or category is None:
        return Verdict(None, None, str(answer.get("rationale", "")), probability_unsafe,
                       PARSE_INVALID_VALUE, raw, {"answer": answer})
    return Verdict(rating, category, str(answer.get("rationale", "")), probability_unsafe,
                   status, raw)
