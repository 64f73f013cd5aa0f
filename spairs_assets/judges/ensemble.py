"""Combine several judges' verdicts with a k-of-m rule, per category.

An image is *unsafe in category c* when at least k of the judges that cover c rate it Unsafe
in c. It is *safe* when fewer than k of all judges rate it Unsafe in any category (the safe
member of a pair must not violate anything). Judges whose answer was unusable are not counted
as votes either way; if fewer than k usable judges cover c, the ensemble abstains (None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spairs_assets.judges.base import Verdict
from spairs_assets.policy import SafetyPolicy


@dataclass(frozen=True)
class EnsembleDecision:
    unsafe_in_category: bool | None  # None: not enough usable judges cover the category
    safe: bool | None
    votes_unsafe_in_category: int
    votes_unsafe_any: int
    usable: int
    covering: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EnsembleRule:
    k: int = 1  # unsafe votes needed

    def decide(self, verdicts: Mapping[str, Verdict], covers: Mapping[str, frozenset[str] | None],
               category_id: str, policy: SafetyPolicy) -> EnsembleDecision:
        usable = {j: v for j, v in verdicts.items() if v.valid}
        covering = {j: v for j, v in usable.items()
                    if covers.get(j) is None or category_id in covers[j]}
        in_category = sum(1 for v in covering.values()
                          if v.unsafe and (v.category_id(policy) == category_id
                                           or category_id in v.details.get("also_categories", ())))
        any_unsafe = sum(1 for v in usable.values() if v.unsafe)
        enough = len(covering) >= self.k
        return EnsembleDecision(
            unsafe_in_category=(in_category >= self.k) if enough else None,
            safe=(any_unsafe < self.k) if len(usable) >= self.k else None,
            votes_unsafe_in_category=in_category,
            votes_unsafe_any=any_unsafe,
            usable=len(usable),
            covering=len(covering),
        )
