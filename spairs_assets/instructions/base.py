"""What an instruction generator is: the protocol, the instruction record, and directions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

UNSAFE_TO_SAFE = "unsafe_to_safe"
SAFE_TO_UNSAFE = "safe_to_unsafe"
DIRECTIONS = (UNSAFE_TO_SAFE, SAFE_TO_UNSAFE)

EDIT_KINDS = ("replace", "remove", "add")
FEATURE_KINDS = ("text", "symbol", "object", "other")


def source_rating_for(direction: str) -> str:
    """The rating a seed must have for an edit in `direction` (the edit produces the other)."""
    return {"unsafe_to_safe": "Unsafe", "safe_to_unsafe": "Safe"}[direction]


def target_rating_for(direction: str) -> str:
    return {"unsafe_to_safe": "Safe", "safe_to_unsafe": "Unsafe"}[direction]


@dataclass(frozen=True)
class SeedImage:
    """What generators and editors are given about a seed: the image and its label, nothing more.

    Ground truth of the demo set is never part of it.
    """

    image_id: str
    category: str  # partition key
    category_id: str  # policy id, e.g. "O2"
    category_label: str  # "O2: Violence, Harm, or Cruelty"
    rating: str  # "Unsafe" | "Safe"
    image: Image.Image  # RGB


@dataclass(frozen=True)
class Instruction:
    """One proposed minimal edit, in words and (when the generator located it) in pixels."""

    text: str  # e.g. 'Replace the word "HURT" on the sign with "HELP"; change nothing else.'
    edit_kind: str  # replace | remove | add
    feature_kind: str  # text | symbol | object | other
    feature: str  # what is named: the offending word(s), the pictogram, the object
    replacement: str | None  # the benign (or, adding, the unsafe) replacement; None to remove
    direction: str  # unsafe_to_safe | safe_to_unsafe
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (exclusive), if located
    details: dict[str, Any] = field(default_factory=dict)  # OCR text, scores, raw model answer

    def __post_init__(self) -> None:
        if self.edit_kind not in EDIT_KINDS:
            raise ValueError(f"edit_kind {self.edit_kind!r} not in {EDIT_KINDS}")
        if self.feature_kind not in FEATURE_KINDS:
            raise ValueError(f"feature_kind {self.feature_kind!r} not in {FEATURE_KINDS}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction {self.direction!r} not in {DIRECTIONS}")
        if not self.text.strip():
            raise ValueError("an instruction needs text")

    @property
    def target_rating(self) -> str:
        return target_rating_for(self.direction)


@runtime_checkable
class InstructionGenerator(Protocol):
    """Proposes label-flipping minimal edits for a seed.

    `generator_id` names the backend and model ("grounded", "vlm:llava-hf/...@rev");
    `version` changes whenever its outputs could (prompt version, lexicon hash, code version).
    Both are part of every cached item's key.
    """

    generator_id: str
    version: str

    def generate(self, seed: SeedImage, direction: str) -> list[Instruction]:
        """Zero or more instructions; an empty list means 'nothing to edit found'."""
        ...


class GenerationFailed(Exception):
    """The generator could not produce a valid instruction (e.g. an unparsable model answer).

    The asset records `str(exc)` and `raw` on an error row; the item is retried on the next run.
    """

    def __init__(self, message: str, raw: str | None = None):
        super().__init__(message)
        self.raw = raw
