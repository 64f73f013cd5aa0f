"""CLIP, SigLIP and DINO(v2/v3) image encoders through transformers (GPU or CPU).

A model is a hub id or a local folder saved with ``save_pretrained`` (resolved by
`spairs_assets.models.loading`: safetensors only, ``trust_remote_code`` off unless configured,
``local_files_only`` when ``HF_HUB_OFFLINE=1`` or the model is a local folder, dtype and device
"auto" by default). It is loaded with ``AutoModel`` + ``AutoImageProcessor``; the embedding is

- ``kind="clip"`` / ``"siglip"`` (``pooling="auto"``): ``model.get_image_features(...)``, the
  image embedding in the joint image-text space (CLIP's projected pooled output; SigLIP's
  attention-pooled head). A vision-only checkpoint without that method gives its
  ``image_embeds`` if it has them, else its ``pooler_output``;
- ``kind="dino"`` (``pooling="auto"``): the [CLS] token of the last hidden state (after the
  final layer norm), which is what DINOv2's ``pooler_output`` is and what DINO papers use for
  linear probes;
- explicit ``pooling``: ``"image_features"``, ``"pooler"``, ``"cls"`` or ``"mean"`` (mean of the
  patch tokens, without [CLS]).

Rows are L2-normalised float32. Loaded models are shared per process (same source, revision or
local-folder fingerprint, dtype, device and trust setting), so building the encoder twice does
not load twice.
torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spairs_assets.encoders.base import as_rgb_images, batches, l2_normalise

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

KINDS = ("clip", "siglip", "dino", "auto")
POOLINGS = ("auto", "image_features", "pooler", "cls", "mean")

_LOCK = threading.Lock()
_LOADED: dict[tuple, tuple[Any, Any]] = {}


def _load(resolved) -> tuple[Any, Any]:
    """(model, image processor) for a ResolvedModel, loaded once per process."""
    from spairs_assets.models.loading import local_fingerprint

    # a local folder is keyed by its content too, so a folder re-saved in place is reloaded
    content = local_fingerprint(resolved.source) if resolved.is_local else resolved.revision
    key = (
        resolved.source,
        content,
        resolved.dtype_name,
        resolved.device,
        resolved.trust_remote_code,
    )
    with _LOCK:
        if key not in _LOADED:
            from transformers import AutoImageProcessor, AutoModel

            kwargs = resolved.from_pretrained_kwargs()
            processor_kwargs = {
                k: v for k, v in kwargs.items() if k not in ("dtype", "use_safetensors")
            }
            processor = AutoImageProcessor.from_pretrained(resolved.source, **processor_kwargs)
            model = AutoModel.from_pretrained(resolved.source, **kwargs)
            model.to(resolved.device)
            model.eval()
            _LOADED[key] = (model, processor)
        return _LOADED[key]


class TransformersImageEncoder:
    """An image encoder from a transformers checkpoint (see the module doc)."""

    def __init__(
        self,
        model: str,
        *,
        kind: str = "auto",
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        trust_remote_code: bool = False,
        pooling: str = "auto",
        batch_size: int = 32,
        setting: str | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        from spairs_assets.config import ModelConfig
        from spairs_assets.models.loading import resolve_model, resolved_revision

        setting = setting or f"encoders.{kind}"
        if kind not in KINDS:
            raise ValueError(
                f"setting `{setting}`: unknown encoder kind {kind!r} (use {', '.join(KINDS)})"
            )
        if pooling not in POOLINGS:
            raise ValueError(
                f"setting `{setting}.pooling`: unknown pooling {pooling!r} "
                f"(use {', '.join(POOLINGS)})"
            )
        batches(1, batch_size)  # validates batch_size
        config = ModelConfig(
            model=model,
            revision=revision,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
        )
        self.resolved = resolve_model(config, setting, base_dir=base_dir)
        self.model, self.processor = _load(self.resolved)
        self.kind = kind
        self.batch_size = int(batch_size)
        self.pooling = self._choose_pooling(pooling)
        self.encoder_id = f"{kind}:{self.resolved.short_name}"
        self.version = f"{resolved_revision(self.resolved, self.model)};pooling={self.pooling}"
        self.dim = int(self._features(self._pixel_values([_probe_image()])).shape[1])

    def _choose_pooling(self, pooling: str) -> str:
        if pooling != "auto":
            if pooling == "image_features" and not hasattr(self.model, "get_image_features"):
                raise ValueError(
                    f"setting `{self.resolved.setting}.pooling`: {type(self.model).__name__} "
                    "has no get_image_features; use pooler, cls or mean"
                )
            return pooling
        if self.kind == "dino":
            return "cls"
        if hasattr(self.model, "get_image_features"):
            return "image_features"
        return "pooler"

    @property
    def params(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "dtype": self.resolved.dtype_name}

    def _pixel_values(self, images: list[Image.Image]):
        inputs = self.processor(images=images, return_tensors="pt")
        return inputs["pixel_values"].to(device=self.resolved.device, dtype=self.model.dtype)

    def _features(self, pixel_values) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if self.pooling == "image_features":
                out = self.model.get_image_features(pixel_values=pixel_values)
                feats = out if torch.is_tensor(out) else out.pooler_output
            else:
                out = self.model(pixel_values=pixel_values)
                if self.pooling == "pooler":
                    feats = getattr(out, "image_embeds", None)
                    if feats is None:
                        feats = out.pooler_output
                    if feats is None:
                        raise ValueError(
                            f"{type(self.model).__name__} has no pooled output; use cls or mean"
                        )
                elif self.pooling == "cls":
                    feats = out.last_hidden_state[:, 0]
                else:  # mean of the patch tokens
                    feats = out.last_hidden_state[:, 1:].mean(dim=1)
            return feats.float().cpu().numpy()

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """(n, dim) float32, unit-norm rows."""
        images = as_rgb_images(images)
        out = np.zeros((len(images), self.dim), np.float32)
        for part in batches(len(images), self.batch_size):
            out[part] = self._features(self._pixel_values(images[part]))
        return l2_normalise(out)

    def __repr__(self) -> str:
        return (
            f"TransformersImageEncoder({self.encoder_id!r}, pooling={self.pooling!r}, "
            f"dim={self.dim})"
        )


def _probe_image() -> Image.Image:
    from PIL import Image

    return Image.new("RGB", (64, 64), (128, 128, 128))
