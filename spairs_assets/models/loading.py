"""Turn a `ModelConfig` into `from_pretrained` arguments, and record what was loaded.

One place decides, for every model backend (VLMs, editors, judges, encoders):

- where the weights come from: a local folder (must exist; a clear error names the setting) or
  a hub id (with `revision`); `local_files_only=True` when `HF_HUB_OFFLINE=1` or the model is a
  local folder, so nothing is ever fetched behind the user's back;
- the dtype ("auto": bfloat16 on a CUDA device that supports it, else float32) and the device
  ("auto": cuda, else mps, else cpu);
- safety: `use_safetensors=True` (a checkpoint without safetensors fails instead of being
  unpickled) and `trust_remote_code` off unless configured;
- provenance: `resolved_revision()` (the hub commit, or a fingerprint of a local folder) and
  `package_versions()` for reproducibility records.

torch, transformers and diffusers are imported inside functions only: importing this module is
cheap, so the Dagster code location does not pay for them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from spairs_assets.config import ModelConfig

log = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "bfloat16")

# Files whose content decides how a local model behaves apart from its weights. They are hashed
# fully; weight files (large) are fingerprinted by size and their first and last MiB.
_SMALL_FILE_LIMIT = 16 * 1024 * 1024
_WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".onnx",
    ".msgpack",
    ".h5",
)
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


class ModelLoadError(ValueError):
    """A model setting cannot be honoured (missing path, unknown device, ...)."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE=1 (or the older TRANSFORMERS_OFFLINE=1), read now, not at import."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_path(ref: str) -> bool:
    return (
        ref.startswith(("/", "./", "../", "~", "\\"))
        or ref.count("/") > 1
        or "\\" in ref
        or bool(re.match(r"^[A-Za-z]:[\\/]", ref))
        or not _HUB_ID_RE.match(ref)
    )


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' if available, else 'mps', else 'cpu'; explicit devices are checked."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} was asked for but CUDA is not available")
        if ":" in device:
            index = int(device.split(":", 1)[1])
            if index >= torch.cuda.device_count():
                raise ModelLoadError(
                    f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
                )
        return device
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelLoadError("device 'mps' was asked for but MPS is not available")
        return device
    if device == "cpu":
        return device
    raise ModelLoadError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)")


def resolve_dtype_name(dtype: str, device: str) -> str:
    """'auto' -> 'bfloat16' on a CUDA device that supports it, else 'float32'."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r} (use auto, {', '.join(DTYPES)})")
        return dtype
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bfloat16"
    return "float32"


@dataclass(frozen=True)
class ResolvedModel:
    """A model setting, resolved: where from, which revision, dtype and device."""

    source: str  # absolute local folder, or hub id
    is_local: bool
    revision: str | None
    dtype_name: str  # float32 | float16 | bfloat16
    device: str  # cpu | cuda | cuda:N | mps
    trust_remote_code: bool
    local_files_only: bool
    setting: str  # the config path, for error messages: "editing.diffusers"

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)

    def from_pretrained_kwargs(self, *, with_dtype: bool = True) -> dict[str, Any]:
        """Keyword arguments for transformers' and diffusers' `from_pretrained`.

        Both libraries take `dtype` (the older `torch_dtype` is deprecated in both)."""
        kwargs: dict[str, Any] = {
            "use_safetensors": True,
            "trust_remote_code": self.trust_remote_code,
            "local_files_only": self.local_files_only,
        }
        if self.revision and not self.is_local:
            kwargs["revision"] = self.revision
        if with_dtype:
            kwargs["dtype"] = self.dtype
        return kwargs

    @property
    def short_name(self) -> str:
        """A readable model name for ids: the hub id, or the local folder's name."""
        return Path(self.source).name if self.is_local else self.source


def resolve_model(
    config: ModelConfig, setting: str, *, base_dir: str | Path | None = None
) -> ResolvedModel:
    """Resolve `config` (found at config path `setting`, e.g. "editing.diffusers") for loading.

    A model that is a local folder must exist; relative folders resolve against `base_dir`
    (the config file's folder) when given. Anything that is not a path is a hub id.
    """
    ref = config.model.strip()
    if not ref:
        raise ModelLoadError(f"setting `{setting}.model`: empty model reference")
    candidate = Path(ref).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        based = Path(base_dir) / candidate
        if based.exists():
            candidate = based
    is_local = candidate.exists()
    if not is_local and _looks_like_path(ref):
        raise ModelLoadError(f"setting `{setting}.model`: {ref} does not exist")
    if is_local and not candidate.is_dir():
        raise ModelLoadError(
            f"setting `{setting}.model`: {ref} is not a folder "
            "(save the model with save_pretrained)"
        )
    if not is_local and hub_offline() and not _in_hub_cache(ref, config.revision):
        raise ModelLoadError(
            f"setting `{setting}.model`: {ref} is not a local folder and not in the Hugging Face "
            "cache, and HF_HUB_OFFLINE=1 forbids downloading it (give a local path, or download "
            "it first with `hf download`)"
        )
    device = resolve_device(config.device)
    return ResolvedModel(
        source=str(candidate.resolve()) if is_local else ref,
        is_local=is_local,
        revision=config.revision,
        dtype_name=resolve_dtype_name(config.dtype, device),
        device=device,
        trust_remote_code=config.trust_remote_code,
        local_files_only=is_local or hub_offline(),
        setting=setting,
    )


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The local snapshot folder of a hub model in the HF cache, without any network call."""
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id, revision=revision, local_files_only=True, allow_patterns=["*.json"]
            )
        )
    except Exception as exc:  # noqa: BLE001 - not cached (or not a valid id)
        log.debug("no cached snapshot for %s@%s: %s", repo_id, revision, exc)
        return None


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    return cached_snapshot(repo_id, revision) is not None


# ---- provenance ------------------------------------------------------------------------------


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= _SMALL_FILE_LIMIT and not path.name.endswith(_WEIGHT_SUFFIXES):
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        else:
            # Weights: size + first and last MiB (a safetensors header lists every tensor's
            # dtype, shape and offset; the sampled bytes tell fine-tunes apart).
            digest.update(str(size).encode())
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()


def local_fingerprint(folder: str | Path) -> str:
    """A content fingerprint of a local model folder, the same on any machine.

    Config, tokenizer and processor files are hashed fully; weight files by size plus their first
    and last MiB, so fingerprinting a 30 GB checkpoint takes milliseconds.
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):  # .cache, .git, ...
            continue
        digest.update(rel.encode() + b"\0" + _file_digest(path).encode() + b"\n")
    return digest.hexdigest()[:16]


def resolved_revision(resolved: ResolvedModel, loaded: Any = None) -> str:
    """What exactly was loaded, for provenance records and cache keys.

    - a local folder: "local:<fingerprint of its files>";
    - a hub id: the commit sha of the cached snapshot when it can be found (or the
      `_commit_hash` transformers records on a loaded model's config), else the configured
      revision, else "unpinned".
    """
    if resolved.is_local:
        return f"local:{local_fingerprint(resolved.source)}"
    if loaded is not None:
        config = getattr(loaded, "config", None)
        commit = getattr(config, "_commit_hash", None)
        if isinstance(commit, str) and _COMMIT_RE.match(commit):
            return commit
    if resolved.revision and _COMMIT_RE.match(resolved.revision):
        return resolved.revision
    snapshot = cached_snapshot(resolved.source, resolved.revision)
    if snapshot is not None and _COMMIT_RE.match(snapshot.name):
        return snapshot.name
    return resolved.revision or "unpinned"


_VERSIONED_PACKAGES = (
    "torch",
    "transformers",
    "diffusers",
    "accelerate",
    "safetensors",
    "tokenizers",
    "huggingface_hub",
    "httpx",
    "pillow",
    "numpy",
)


def package_versions() -> dict[str, str]:
    """Versions of everything that can change a model's outputs (for reproducibility records).

    Read from package metadata, so calling this imports nothing heavy. CUDA and cuDNN versions
    are added when torch is already imported.
    """
    from importlib import metadata

    versions = {"python": sys.version.split()[0]}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["cuda"] = str(getattr(torch.version, "cuda", None))
        try:
            cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        except Exception:  # noqa: BLE001
            cudnn = None
        if cudnn:
            versions["cudnn"] = str(cudnn)
    return versions


# ---- torchvision-less processors ------------------------------------------------------------


def torchvision_available() -> bool:
    """True when torchvision imports *and* works with the installed torch."""
    return _torchvision_available()


@cache
def _torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
        from torchvision.ops import nms  # noqa: F401  - fails when built for another torch
    except Exception:  # noqa: BLE001 - ImportError, RuntimeError (operator does not exist)
        return False
    return True


_PATCHED = False


def ensure_processors_work_without_torchvision() -> bool:
    """Let transformers build, save and load image processors of video-capable VLMs.

    Why: transformers cannot construct any processor that declares a video processor (Qwen2-VL,
    Qwen2.5-VL, SmolVLM, InternVL, LLaVA-OneVision) when torchvision is missing, because video
    processors exist only in torchvision form. This platform only feeds images, so when (and only
    when) torchvision is unusable we drop the `video_processor` attribute from
    `ProcessorMixin.get_attributes`: the processor is then built from its tokenizer and image
    processor alone, and video inputs are unavailable. With a working torchvision nothing is
    changed. Idempotent; returns True when the workaround is active.
    """
    global _PATCHED
    if _PATCHED:
        return True
    if torchvision_available():
        return False
    from transformers import processing_utils

    mixin = processing_utils.ProcessorMixin
    original = mixin.get_attributes.__func__

    def get_attributes(cls):  # noqa: ANN001
        return [name for name in original(cls) if "video" not in name]

    get_attributes.__doc__ = "spairs: video attributes removed (torchvision is not available)."
    get_attributes._spairs_original = original  # type: ignore[attr-defined]
    mixin.get_attributes = classmethod(get_attributes)
    _PATCHED = True
    log.info("torchvision unavailable: processors are built without video processors")
    return True
