"""Lineage audit of a pair (`spairs lineage`): the chain from source file to guard models, as
text, JSON or a self-contained HTML card."""

from spairs_assets.lineage.audit import (
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
    "AmbiguousPairId",
    "LineageError",
    "LineageIndex",
    "PairNotFound",
    "lineage_command",
    "pair_lineage",
    "render_text",
    "to_json",
]
