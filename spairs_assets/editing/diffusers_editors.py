"""Diffusion editors: Flux Kontext, Qwen-Image-Edit (and Edit Plus), InstructPix2Pix.

Each editor is a diffusers pipeline loaded with `from_pretrained` from a hub id or a local
folder (see `spairs_assets.models.loading`: safetensors only, offline when HF_HUB_OFFLINE=1),
wrapped in the `Editor` protocol:

- `edit(image, instruction, seed)`: the source is resized to the editor's *working resolution*
  (about `max_area` pixels at the source's aspect ratio, on the grid the model needs), edited
  with noise drawn from `torch.Generator("cpu").manual_seed(seed)`, and resized back to the
  source size. The generator lives on the CPU on purpose (diffusers' advice for
  reproducibility): the initial noise is then bit-identical on every machine, and diffusers
  moves it to the GPU. The working size is recorded in `EditResult.details`.
- `edit_batch(images, instructions, seeds)`: the same edits, `batch_size` at a time (one
  generator per item, so an item's result does not depend on its batch-mates).
- `null_edit(image, seed)`: VAE encode + decode of the source at the working resolution, no
  denoising: the editor's round-trip artifacts without any change.

`editor_id`, `revision` and `params` are known without loading the weights (the pipeline loads
on first use), so the platform can compute cache keys and skip cached work without touching
the GPU. torch and diffusers are imported inside methods only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from spairs_assets.config import DiffusersEditorConfig, EditingConfig, SpairsConfig
from spairs_assets.editing.base import EditFailed, EditResult
from spairs_assets.instructions.base import Instruction
from spairs_assets.models.loading import (
    ModelLoadError,
    ResolvedModel,
    cached_snapshot,
    ensure_processors_work_without_torchvision,
    resolve_model,
    resolved_revision,
)

log = logging.getLogger(__name__)

SETTING = "editing.diffusers"
RESAMPLE = Image.Resampling.LANCZOS

# editor name -> pipeline classes it accepts (the first is the default).
PIPELINES: dict[str, tuple[str, ...]] = {
    "flux-kontext": ("FluxKontextPipeline",),
    "qwen-image-edit": ("QwenImageEditPipeline", "QwenImageEditPlusPipeline"),
    "instruct-pix2pix": ("StableDiffusionInstructPix2PixPipeline",),
}

# The area each model works at when `max_area` is not set (what it was trained for).
DEFAULT_AREA = {
    "flux-kontext": 1024 * 1024,
    "qwen-image-edit": 1024 * 1024,
    "instruct-pix2pix": 512 * 512,
}

# Qwen-Image-Edit resizes its input to about 1024x1024 inside `__call__` through module-level
# helpers; honouring `max_area` means swapping them for the duration of a call. The lock makes
# that safe when several threads share a process.
_QWEN_PATCH_LOCK = threading.RLock()


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(value) // multiple * multiple)


def _read_model_json(resolved: ResolvedModel, name: str) -> dict[str, Any] | None:
    """A JSON file (model_index.json, vae/config.json) of a local pipeline folder or a cached
    hub snapshot, if it can be read without downloading anything."""
    folder: Path | None = Path(resolved.source) if resolved.is_local else None
    if folder is None:
        folder = cached_snapshot(resolved.source, resolved.revision)
    if folder is None or not (folder / name).is_file():
        return None
    try:
        data = json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class DiffusersEditor:
    """A diffusers image-editing pipeline behind the `Editor` protocol (see the module doc)."""

    uses_gpu = True

    def __init__(
        self,
        kind: str,
        config: DiffusersEditorConfig,
        *,
        setting: str = SETTING,
        base_dir: str | Path | None = None,
        pipeline: Any = None,
    ):
        """`pipeline`: an already-built pipeline of the right class, placed on its device (for
        benchmarks that construct one in memory); normally the pipeline is loaded from
        `config.model` on first use. Identity (id, revision, params) always comes from the
        config and the model folder."""
        if kind not in PIPELINES:
            raise ValueError(
                f"setting `editing.editor`: unknown diffusers editor {kind!r}; "
                f"known: {sorted(PIPELINES)}"
            )
        self.kind = kind
        self.config = config
        self.setting = setting
        self.resolved = resolve_model(config, setting, base_dir=base_dir)
        if config.cpu_offload and not self.resolved.device.startswith("cuda"):
            raise ModelLoadError(
                f"setting `{setting}.cpu_offload`: model CPU offload needs a CUDA device "
                f"(device resolved to {self.resolved.device!r})"
            )
        self.pipeline_class = self._pipeline_class_name()
        self.vae_scale_factor = self._vae_scale_factor()
        self.editor_id = f"{kind}:{self.resolved.short_name}"
        self.revision = resolved_revision(self.resolved)
        self.params = self._params()
        self._pipe = None
        self._lock = threading.RLock()
        if pipeline is not None:
            if type(pipeline).__name__ != self.pipeline_class:
                raise ValueError(
                    f"pipeline is a {type(pipeline).__name__}, expected {self.pipeline_class}"
                )
            pipeline.set_progress_bar_config(disable=True)
            self._pipe = pipeline

    # ---- identity --------------------------------------------------------------------------
    def _pipeline_class_name(self) -> str:
        allowed = PIPELINES[self.kind]
        index = _read_model_json(self.resolved, "model_index.json")
        named = index.get("_class_name") if index else None
        if named is None:
            return allowed[0]
        if named in allowed:
            return named
        raise ModelLoadError(
            f"setting `{self.setting}.model`: {self.resolved.source} is a {named}, but setting "
            f"`editing.editor` is {self.kind!r}, which takes {' or '.join(allowed)}"
        )

    def _vae_scale_factor(self) -> int:
        """The VAE's downsampling, from vae/config.json as the pipelines compute it (8 for all
        three published model families, used when the file cannot be read before loading)."""
        vae = _read_model_json(self.resolved, "vae/config.json") or {}
        if self.kind == "qwen-image-edit" and "temperal_downsample" in vae:
            return 2 ** len(vae["temperal_downsample"])
        if "block_out_channels" in vae:
            return 2 ** (len(vae["block_out_channels"]) - 1)
        return 8

    def _params(self) -> dict[str, Any]:
        """Everything besides model, revision and seed that changes the output, with defaults
        filled in, so two configs that edit identically have equal params (and cache keys).

        batch_size and cpu_offload are left out: they change speed and memory, not results.
        """
        c = self.config
        params: dict[str, Any] = {
            "pipeline": self.pipeline_class,
            "steps": c.steps,
            "dtype": self.resolved.dtype_name,
            "max_area": c.max_area or DEFAULT_AREA[self.kind],
            "negative_prompt": c.negative_prompt,
        }
        # Each pipeline's own default guidance when the config leaves it unset.
        guidance = c.guidance_scale
        if self.kind == "flux-kontext":
            params["guidance_scale"] = 2.5 if guidance is None else guidance
            params["true_cfg_scale"] = c.true_cfg_scale if c.true_cfg_scale is not None else 1.0
            # Without max_area, Kontext works at the trained resolution nearest the aspect ratio.
            params["resolution"] = "area" if c.max_area else "kontext-preferred"
        elif self.kind == "qwen-image-edit":
            # used by guidance-distilled variants only
            params["guidance_scale"] = 1.0 if guidance is None else guidance
            params["true_cfg_scale"] = c.true_cfg_scale if c.true_cfg_scale is not None else 4.0
            if params["negative_prompt"] is None and params["true_cfg_scale"] > 1:
                params["negative_prompt"] = " "  # as in Qwen's reference usage: CFG needs one
        else:
            params["guidance_scale"] = 7.5 if guidance is None else guidance
            params["image_guidance_scale"] = (
                c.image_guidance_scale if c.image_guidance_scale is not None else 1.5
            )
        return dict(sorted(params.items()))

    # ---- loading ---------------------------------------------------------------------------
    @property
    def pipe(self):
        """The loaded pipeline (loaded on first use, once per editor object)."""
        if self._pipe is None:
            with self._lock:
                if self._pipe is None:
                    self._pipe = self._load()
        return self._pipe

    def _load(self):
        import diffusers

        if self.kind == "qwen-image-edit":
            ensure_processors_work_without_torchvision()  # its processor is a Qwen2VLProcessor
        cls = getattr(diffusers, self.pipeline_class)
        started = time.perf_counter()
        pipe = cls.from_pretrained(self.resolved.source, **self.resolved.from_pretrained_kwargs())
        if self.config.cpu_offload:
            pipe.enable_model_cpu_offload(device=self.resolved.device)
        else:
            pipe.to(self.resolved.device)
        pipe.set_progress_bar_config(disable=True)
        loaded_factor = getattr(pipe, "vae_scale_factor", None)
        if isinstance(loaded_factor, int) and loaded_factor != self.vae_scale_factor:
            log.warning(
                "VAE scale factor is %s, not %s as assumed", loaded_factor, self.vae_scale_factor
            )
            self.vae_scale_factor = loaded_factor
        log.info(
            "loaded %s from %s (%s, %s) in %.1f s",
            self.pipeline_class,
            self.resolved.source,
            self.resolved.dtype_name,
            self.resolved.device,
            time.perf_counter() - started,
        )
        return pipe

    # ---- geometry --------------------------------------------------------------------------
    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) the model edits a `size` image at."""
        width, height = size
        ratio = width / height
        area = self.config.max_area or DEFAULT_AREA[self.kind]
        if self.kind == "flux-kontext":
            if self.config.max_area is None:
                from diffusers.pipelines.flux.pipeline_flux_kontext import (
                    PREFERRED_KONTEXT_RESOLUTIONS,
                )

                _, w, h = min((abs(ratio - w / h), w, h) for w, h in PREFERRED_KONTEXT_RESOLUTIONS)
                return w, h
            multiple = self._multiple_of()
            return (
                _round_to(round(math.sqrt(area * ratio)), multiple),
                _round_to(round(math.sqrt(area / ratio)), multiple),
            )
        if self.kind == "qwen-image-edit":
            # Qwen's own rule (its calculate_dimensions): nearest multiples of 32.
            w_exact = math.sqrt(area * ratio)
            w = max(32, round(w_exact / 32) * 32)
            h = max(32, round(w_exact / ratio / 32) * 32)
            multiple = self._multiple_of()
            return _round_to(w, multiple), _round_to(h, multiple)
        # InstructPix2Pix works at any size on its 8-pixel grid; by default large images are
        # brought down to about 512x512 and small ones are kept (it was trained at 256-512 px).
        multiple = self._multiple_of()
        scale = math.sqrt(area / (width * height))
        if self.config.max_area is None:
            scale = min(1.0, scale)
        return _round_to(round(width * scale), multiple), _round_to(round(height * scale), multiple)

    def _multiple_of(self) -> int:
        """The pixel grid: the VAE's downsampling, times 2 where latents are packed 2x2."""
        factor = self.vae_scale_factor
        return factor * 2 if self.kind in ("flux-kontext", "qwen-image-edit") else factor

    # ---- editing ---------------------------------------------------------------------------
    def edit(self, image: Image.Image, instruction: Instruction, seed: int) -> EditResult:
        return self.edit_batch([image], [instruction], [seed])[0]

    def edit_batch(
        self,
        images: Sequence[Image.Image],
        instructions: Sequence[Instruction | str],
        seeds: Sequence[int],
    ) -> list[EditResult]:
        """Edit many images, `batch_size` per pipeline call (items of one working size share a
        call). Each item has its own generator, so results equal those of `edit` one by one up
        to floating-point batching noise. A failing call raises; callers that must isolate the
        failing item fall back to `edit` one by one."""
        if not (len(images) == len(instructions) == len(seeds)):
            raise ValueError("images, instructions and seeds must have the same length")
        pipe = self.pipe
        batch_size = (
            1 if self.pipeline_class == "QwenImageEditPlusPipeline" else self.config.batch_size
        )
        results: list[EditResult | None] = [None] * len(images)
        sources = [img.convert("RGB") for img in images]
        texts = [i.text if isinstance(i, Instruction) else str(i) for i in instructions]
        # Group by working size, keeping the order inside each group.
        groups: dict[tuple[int, int], list[int]] = {}
        for index, img in enumerate(sources):
            groups.setdefault(self.working_size(img.size), []).append(index)
        for size, indexes in groups.items():
            for start in range(0, len(indexes), batch_size):
                chunk = indexes[start : start + batch_size]
                started = time.perf_counter()
                edited = self._run(
                    pipe,
                    [
                        sources[i].resize(size, RESAMPLE) if sources[i].size != size else sources[i]
                        for i in chunk
                    ],
                    [texts[i] for i in chunk],
                    [int(seeds[i]) for i in chunk],
                    size,
                )
                seconds = (time.perf_counter() - started) / len(chunk)
                for i, out in zip(chunk, edited, strict=True):
                    out = out.convert("RGB")
                    if out.size != size:
                        raise EditFailed(
                            f"{self.pipeline_class} returned {out.size}, expected {size}"
                        )
                    if out.size != sources[i].size:
                        out = out.resize(sources[i].size, RESAMPLE)
                    results[i] = EditResult(
                        image=out,
                        details={
                            "working_size": list(size),
                            "source_size": list(sources[i].size),
                            "steps": self.config.steps,
                            "seed": int(seeds[i]),
                            "generator_device": "cpu",
                            "batch": len(chunk),
                            "seconds": round(seconds, 4),
                            "device": self.resolved.device,
                        },
                    )
        return [r for r in results if r is not None]

    def _run(self, pipe, images, prompts, seeds, size) -> list[Image.Image]:
        import torch

        width, height = size
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        p = self.params
        kwargs: dict[str, Any] = {
            "prompt": prompts,
            "image": images,
            "num_inference_steps": self.config.steps,
            "generator": generators,
            "output_type": "pil",
        }
        negative = p.get("negative_prompt")
        if negative is not None:
            kwargs["negative_prompt"] = [negative] * len(prompts)
        if self.kind == "flux-kontext":
            kwargs.update(
                height=height,
                width=width,
                max_area=width * height,
                _auto_resize=False,  # the image is already at a preferred / requested size
                guidance_scale=p["guidance_scale"],
                true_cfg_scale=p["true_cfg_scale"],
            )
            context = contextlib.nullcontext()
        elif self.kind == "qwen-image-edit":
            kwargs.update(height=height, width=width, true_cfg_scale=p["true_cfg_scale"])
            if pipe.transformer.config.guidance_embeds:
                kwargs["guidance_scale"] = p["guidance_scale"]
            if self.pipeline_class == "QwenImageEditPlusPipeline":
                kwargs["image"] = images[0]  # a list means several references for one prompt
                kwargs["prompt"] = prompts[0]
                kwargs["generator"] = generators[0]
                if negative is not None:
                    kwargs["negative_prompt"] = negative
            context = self._qwen_area(width * height)
        else:
            kwargs.update(
                guidance_scale=p["guidance_scale"], image_guidance_scale=p["image_guidance_scale"]
            )
            context = contextlib.nullcontext()
        try:
            with context, torch.inference_mode():
                out = pipe(**kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise EditFailed(
                f"out of GPU memory editing {len(prompts)} image(s) at {width}x{height}: lower "
                f"`{self.setting}.max_area` or `{self.setting}.batch_size`, or set "
                f"`{self.setting}.cpu_offload: true`"
            ) from exc
        return list(out.images)

    @contextlib.contextmanager
    def _qwen_area(self, area: int) -> Iterator[None]:
        """Make Qwen-Image-Edit resize its input to `area` pixels instead of its fixed 1024^2.

        Its pipelines resize inside `__call__` with module-level helpers (`calculate_dimensions`
        and, for Edit Plus, `VAE_IMAGE_SIZE`); there is no argument for it. We swap them for the
        call only, under a lock, and restore them afterwards. The input already has the working
        size, so the pipeline's own resize is then a no-op.
        """
        from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit as edit_mod
        from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus_mod

        with _QWEN_PATCH_LOCK:
            original_edit = edit_mod.calculate_dimensions
            original_vae_size = plus_mod.VAE_IMAGE_SIZE

            def calculate_dimensions(target_area, ratio):  # noqa: ANN001, ARG001
                return original_edit(area, ratio)

            edit_mod.calculate_dimensions = calculate_dimensions
            plus_mod.VAE_IMAGE_SIZE = area
            try:
                yield
            finally:
                edit_mod.calculate_dimensions = original_edit
                plus_mod.VAE_IMAGE_SIZE = original_vae_size

    # ---- null edit ---------------------------------------------------------------------------
    def null_edit(self, image: Image.Image, seed: int) -> Image.Image:
        """VAE encode + decode of the source at the working resolution (no denoising).

        Uses the latent distribution's mode, as the pipelines do for the conditioning image, so
        the result is deterministic; `seed` is accepted for the protocol and does not matter.
        """
        import torch

        pipe = self.pipe
        source = image.convert("RGB")
        size = self.working_size(source.size)
        work = source.resize(size, RESAMPLE) if source.size != size else source
        vae = pipe.vae
        device = pipe._execution_device
        dtype = vae.dtype
        upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        with torch.inference_mode():
            if upcast:
                vae.to(torch.float32)
                dtype = torch.float32
            try:
                pixels = pipe.image_processor.preprocess(work, size[1], size[0]).to(device, dtype)
                if self.kind == "qwen-image-edit":
                    pixels = pixels.unsqueeze(2)  # (B, C, T=1, H, W): Qwen's VAE is a video VAE
                latents = vae.encode(pixels).latent_dist.mode()
                decoded = vae.decode(latents, return_dict=False)[0]
                if self.kind == "qwen-image-edit":
                    decoded = decoded[:, :, 0]
            finally:
                if upcast:
                    vae.to(torch.float16)
            out = pipe.image_processor.postprocess(decoded.float(), output_type="pil")[0]
        out = out.convert("RGB")
        return out.resize(source.size, RESAMPLE) if out.size != source.size else out

    def close(self) -> None:
        """Drop the pipeline and free GPU memory (the editor reloads on next use)."""
        self._pipe = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def __repr__(self) -> str:
        return (
            f"DiffusersEditor({self.editor_id!r}, revision={self.revision!r}, params={self.params})"
        )


def build_diffusers_editor(
    config: EditingConfig, *, base_dir: str | Path | None = None
) -> DiffusersEditor:
    """The editor named by `editing.editor` with the `editing.diffusers` settings."""
    if config.editor not in PIPELINES:
        raise ValueError(
            f"setting `editing.editor`: {config.editor!r} is not a diffusers editor "
            f"(diffusers editors: {', '.join(sorted(PIPELINES))})"
        )
    if config.diffusers is None:
        raise ValueError(f"setting `editing.diffusers`: editor {config.editor!r} needs a model")
    return DiffusersEditor(config.editor, config.diffusers, base_dir=base_dir)


def from_config(config: SpairsConfig) -> DiffusersEditor:
    """Registry entry (editing.stage.EDITORS): relative model paths resolve against the folder
    of spairs.yaml."""
    return build_diffusers_editor(config.editing, base_dir=config.base_dir)
