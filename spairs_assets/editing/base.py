"""What an editor is: the protocol and the result of one edit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from spairs_assets.instructions.base import Instruction


class EditFailed(Exception):
    """The editor could not apply this instruction to this image (recorded on the row)."""


@dataclass
class EditResult:
    image: Image.Image  # RGB, the same size as the source
    details: dict[str, Any] = field(default_factory=dict)  # edited region, steps, warnings


@runtime_checkable
class Editor(Protocol):
    """Applies an instruction to an image.

    `editor_id` names backend and model; `revision` is the model revision (or algorithm
    version); `params` are the settings that change outputs (steps, guidance, ...). All three and
    the seed key the cache and the edit id. `uses_gpu` routes the asset to the `gpu` pool.
    """

    editor_id: str
    revision: str
    params: dict[str, Any]
    uses_gpu: bool

    def edit(self, image: Image.Image, instruction: Instruction, seed: int) -> EditResult:
        """One candidate. Raise `EditFailed` (or any exception) to record a failed candidate."""
        ...

    def null_edit(self, image: Image.Image, seed: int) -> Image.Image:
        """The editor's round trip without a change (a diffusion editor's VAE encode/decode).

        Pairs of (source, null edit) let later checks see whether a classifier learned the
        editor's artifacts instead of the safety feature.
        """
        ...
