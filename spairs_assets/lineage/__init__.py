"""Lineage audit of a pair (`spairs lineage`): the chain from source file to guard models, as
text, JSON or a self-contained HTML card."""

from spairs_assets.lineage.audit import (
    GUARD_TRAINING_PAIRS_SCHEMA,
    GUARD_TRAINING_PAIRS_SORT_KEYS,
    AmbiguousPairId,
    LineageError,
    LineageIndex,
    PairNotFound,
    lineage_command,
    pair_lineage,
    render_text,
    to_json,
)

__all__ = [
    "GUARD_TRAINING_PAIRS_SCHEMA",
    "GUARD_TRAINING_PAIRS_SORT_KEYS",
    "AmbiguousPairId",
    "LineageError",
    "LineageIndex",
    "PairNotFound",
    "lineage_command",
    "pair_lineage",
    "render_text",
    "to_json",
]
