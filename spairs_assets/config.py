"""Platform configuration: one YAML file (`spairs.yaml`), validated up front.

Bad settings fail when the file is loaded, with a message naming the setting, not halfway
through a run. Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spairs_assets.policy import SafetyPolicy, load_policy

CONFIG_ENV = "SPAIRS_CONFIG"
CONFIG_FILE_NAME = "spairs.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoSource(_Strict):
    """The built-in demo seeds, generated deterministically from scikit-image photographs."""

    kind: Literal["demo"] = "demo"
    name: str = "demo"
    n_unsafe: int = Field(24, ge=1, le=1000)
    n_safe: int = Field(16, ge=0, le=1000)  # the guards' baseline arm trains on safe seeds
    seed: int = 0


class FolderSource(_Strict):
    """Seeds laid out as `<root>/<category>/<rating>/<image files>`."""

    kind: Literal["folder"] = "folder"
    name: str
    root: Path
    licence: str | None = None


class ManifestSource(_Strict):
    """A CSV, JSONL or Parquet file with columns path, category, rating[, source, licence]."""

    kind: Literal["manifest"] = "manifest"
    name: str
    path: Path
    licence: str | None = Field(None, description="Default licence for rows that give none.")


SourceConfig = Annotated[DemoSource | FolderSource | ManifestSource, Field(discriminator="kind")]


class SourcesConfig(_Strict):
    items: tuple[SourceConfig, ...] = (DemoSource(),)
    allowed_roots: tuple[Path, ...] = Field(
        (),
        description="Extra folders that manifest paths may point into (a manifest's own folder "
        "and a folder source's root are always allowed).",
    )
    max_side: int = Field(1024, ge=32, le=16384, description="Longer side after normalising.")
    max_pixels: int = Field(
        40_000_000, ge=1024, description="Larger images are quarantined as decompression bombs."
    )
    incoming: Path | None = Field(
        None, description="A folder watched by the `incoming_seeds` sensor and read as a source: "
        "<category>/<rating>/<images>, and manifest files (CSV, JSONL, Parquet) at its top level.")


class AutomationConfig(_Strict):
    refresh_cron: str = Field("0 3 * * 1", description="Schedule of the full refresh (weekly).")
    refresh_enabled: bool = Field(False, description="Start the schedule switched on.")
    sensor_interval_s: int = Field(30, ge=5, description="How often the incoming folder is checked.")
    sensor_enabled: bool = Field(False, description="Start the sensor switched on.")


class ModelConfig(_Strict):
    """A model from the Hugging Face hub (id) or a local folder, loaded with `from_pretrained`.

    Nothing is downloaded at run time when HF_HUB_OFFLINE=1; a local path always works.
    """

    model: str = Field(description="Hub id (org/name) or local path.")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch).")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    trust_remote_code: bool = False
    max_new_tokens: int = Field(256, ge=1, le=8192)


class OpenAIEndpointConfig(_Strict):
    """Any OpenAI-compatible chat endpoint (vLLM, SGLang, a hosted API)."""

    model: str
    base_url_env: str = Field("OPENAI_BASE_URL", description="Env var holding the base URL.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Env var holding the API key.")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=1)


class GroundedGeneratorConfig(_Strict):
    """The CPU instruction generator: OCR + policy lexicon, and pictogram template matching."""

    lexicon: Path | None = Field(None, description="Lexicon YAML; the built-in one if unset.")
    min_ocr_confidence: float = Field(0.5, ge=0, le=1)
    symbol_threshold: float = Field(0.7, ge=0, le=1, description="Template-match score needed.")


class InstructionsConfig(_Strict):
    generator: Literal["grounded", "vlm", "openai"] = "grounded"
    directions: tuple[Literal["unsafe_to_safe", "safe_to_unsafe"], ...] = ("unsafe_to_safe",)
    max_per_seed: int = Field(1, ge=1, le=16, description="Instructions kept per seed.")
    grounded: GroundedGeneratorConfig = GroundedGeneratorConfig()
    vlm: ModelConfig | None = None
    openai: OpenAIEndpointConfig | None = None

    @model_validator(mode="after")
    def _backend_configured(self) -> InstructionsConfig:
        if self.generator in ("vlm", "openai") and getattr(self, self.generator) is None:
            raise ValueError(f"generator {self.generator!r} needs an `instructions.{self.generator}` section")
        if not self.directions:
            raise ValueError("directions must name at least one direction")
        return self


class ClassicalEditorConfig(_Strict):
    """The CPU editor: locate (OCR / template matching), inpaint (OpenCV), re-render."""

    inpaint_radius: int = Field(5, ge=1, le=50)
    margin: int = Field(2, ge=0, le=32, description="Pixels added around the located feature.")


class DiffusersEditorConfig(ModelConfig):
    """A diffusers image-editing pipeline (Flux Kontext, Qwen-Image-Edit, InstructPix2Pix)."""

    steps: int = Field(28, ge=1, le=500)
    guidance_scale: float | None = Field(None, ge=0, description="The pipeline's default if unset.")
    image_guidance_scale: float | None = Field(None, ge=0, description="InstructPix2Pix only.")
    true_cfg_scale: float | None = Field(None, ge=0, description="Qwen-Image-Edit, Flux Kontext.")
    negative_prompt: str | None = None
    batch_size: int = Field(1, ge=1, le=64)
    max_area: int | None = Field(None, ge=64 * 64, description="Resize inputs to about this area.")
    cpu_offload: bool = False


class EditingConfig(_Strict):
    editor: Literal["classical", "flux-kontext", "qwen-image-edit", "instruct-pix2pix"] = "classical"
    candidates: int = Field(2, ge=1, le=16, description="Candidates per instruction (distinct seeds).")
    seed: int = 0
    null_edit: bool = Field(True, description="Also record the editor's round trip of each source.")
    classical: ClassicalEditorConfig = ClassicalEditorConfig()
    diffusers: DiffusersEditorConfig | None = None

    @model_validator(mode="after")
    def _backend_configured(self) -> EditingConfig:
        if self.editor != "classical" and self.diffusers is None:
            raise ValueError(f"editor {self.editor!r} needs an `editing.diffusers` section (model, ...)")
        return self


JUDGE_KINDS = ("ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram", "vlm", "shieldgemma2",
               "openai", "guard")


class JudgeConfig(_Strict):
    """One judge of the label-flip check (and a model under test in the benchmark)."""

    name: str = Field(description="Unique name; defaults to the kind.", default="")
    kind: Literal["ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram", "vlm",
                  "shieldgemma2", "openai", "guard"]
    model: ModelConfig | None = Field(None, description="For vlm and shieldgemma2.")
    endpoint: OpenAIEndpointConfig | None = Field(None, description="For openai.")
    path: str | None = Field(
        None, description="For guard: a trained probe (.safetensors, or its stem) or a folder of "
        "probes; relative to the data root; `{category}` is replaced by the partition "
        "benchmarked, e.g. guards/{category}/deploy.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Decision threshold where the judge has one (open-nsfw "
        "probability, ocr-embedding similarity, pictogram match score); a calibrated or built-in "
        "default when unset.")
    prompt: Literal["policy", "plain"] = Field(
        "policy", description="policy: the LlavaGuard assessment prompt; plain: 'is this image safe?'")

    @model_validator(mode="after")
    def _complete(self) -> JudgeConfig:
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        if self.kind in ("vlm", "shieldgemma2") and self.model is None:
            raise ValueError(f"judge {self.name!r} ({self.kind}) needs a `model` section")
        if self.kind == "openai" and self.endpoint is None:
            raise ValueError(f"judge {self.name!r} (openai) needs an `endpoint` section")
        if self.kind == "guard" and not self.path:
            raise ValueError(f"judge {self.name!r} (guard) needs a `path`")
        return self


def _default_judges() -> tuple[JudgeConfig, ...]:
    return tuple(JudgeConfig(kind=k) for k in ("ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram"))


class VerificationConfig(_Strict):
    judges: tuple[JudgeConfig, ...] = Field(default_factory=_default_judges)
    ensemble_k: int = Field(1, ge=1, description="Unsafe votes needed (k of the m judges).")
    encoder: Literal["open-nsfw", "clip", "siglip", "dino"] = "open-nsfw"
    encoder_model: ModelConfig | None = Field(None, description="For clip, siglip and dino.")
    change_tolerance: int = Field(
        8, ge=0, le=255, description="A pixel counts as changed when a channel differs by more "
        "than this (absorbs a diffusion VAE's round-trip noise; the classical editor changes "
        "nothing outside its region at all).")
    check_adherence: bool = True
    adherence_judge: str | None = Field(
        None, description="Name of a vlm or openai judge in `judges` to ask whether an edit did "
        "what its instruction said, for features OCR and the pictogram detector cannot check.")

    @model_validator(mode="after")
    def _consistent(self) -> VerificationConfig:
        names = [j.name for j in self.judges]
        if len(set(names)) != len(names):
            raise ValueError(f"judge names must be unique: {names}")
        if self.adherence_judge is not None:
            kinds = {j.name: j.kind for j in self.judges}
            if kinds.get(self.adherence_judge) not in ("vlm", "openai"):
                raise ValueError(f"adherence_judge {self.adherence_judge!r} must name a vlm or "
                                 f"openai judge of `judges` ({kinds})")
        if not self.judges:
            raise ValueError("at least one judge is needed")
        if self.ensemble_k > len(self.judges):
            raise ValueError(f"ensemble_k={self.ensemble_k} exceeds the {len(self.judges)} judges")
        if self.encoder != "open-nsfw" and self.encoder_model is None:
            raise ValueError(f"encoder {self.encoder!r} needs `encoder_model`")
        return self


class CurationConfig(_Strict):
    """Which candidates become SafetyPairs. Defaults are justified in the README."""

    min_ssim: float = Field(0.75, ge=-1, le=1)
    max_changed_fraction: float = Field(0.35, gt=0, le=1)
    max_outside_change: float = Field(0.01, ge=0, le=1)
    min_encoder_cosine: float | None = Field(0.80, ge=-1, le=1)
    require_flip: bool = True
    require_adherence: bool = True
    near_duplicate_distance: int = Field(4, ge=0, le=64, description="pHash Hamming distance.")
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.6, "validation": 0.2, "test": 0.2})

    @model_validator(mode="after")
    def _splits_sum_to_one(self) -> CurationConfig:
        total = sum(self.splits.values())
        if abs(total - 1.0) > 1e-6 or any(v < 0 for v in self.splits.values()):
            raise ValueError(f"splits must be non-negative and sum to 1 (got {total:.3f})")
        return self


def _default_models() -> tuple[JudgeConfig, ...]:
    cpu = tuple(JudgeConfig(kind=k) for k in ("ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram"))
    # The category's deployable probe, trained by `guard_models` on the TRAIN split.
    return (*cpu, JudgeConfig(kind="guard", name="linear-probe-guard", path="guards/{category}/deploy"))


class BenchmarkConfig(_Strict):
    """Models under test, on the images of curated pairs."""

    models: tuple[JudgeConfig, ...] = Field(default_factory=_default_models)
    splits: tuple[str, ...] = Field(("test",), description="Which splits of curated pairs.")
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _unique(self) -> BenchmarkConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        return self


class GuardsConfig(_Strict):
    """Linear probes on a frozen encoder and the sample-efficiency experiment."""

    encoder: str = Field("open-nsfw+ocr-minilm", description="Encoder registry name (open-nsfw, "
                         "ocr-minilm, open-nsfw+ocr-minilm, clip, siglip, dino).")
    encoder_model: ModelConfig | None = Field(None, description="For clip, siglip and dino.")
    budgets: tuple[int | Literal["all"], ...] = (8, 16, 32, 64, "all")
    seeds: int = Field(5, ge=1, le=100, description="Random draws per arm and budget.")
    C: float = Field(100.0, gt=0, description="Inverse L2 strength of the logistic regression.")
    threshold: float = Field(0.5, gt=0, lt=1)
    target: float = Field(0.9, gt=0, le=1, description="Pair accuracy the budget-to-reach reports.")

    @model_validator(mode="after")
    def _encoder_needs_model(self) -> GuardsConfig:
        if self.encoder in ("clip", "siglip", "dino") and self.encoder_model is None:
            raise ValueError(f"encoder {self.encoder!r} needs `encoder_model`")
        return self


class PreviewConfig(_Strict):
    show_unsafe: bool = Field(False, description="Show unsafe images unblurred in previews.")
    count: int = Field(12, ge=0, le=64)
    thumb_size: int = Field(128, ge=32, le=512)


class SpairsConfig(_Strict):
    data_root: str = Field("data", description="Local folder or fsspec URL for all outputs.")
    policy: Path | None = Field(None, description="Policy YAML; built-in LlavaGuard v1.2 if unset.")
    sources: SourcesConfig = SourcesConfig()
    instructions: InstructionsConfig = InstructionsConfig()
    editing: EditingConfig = EditingConfig()
    verification: VerificationConfig = VerificationConfig()
    curation: CurationConfig = CurationConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    guards: GuardsConfig = GuardsConfig()
    automation: AutomationConfig = AutomationConfig()
    previews: PreviewConfig = PreviewConfig()

    # Where the file was loaded from: relative paths resolve against it.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def resolve(self, path: Path | str) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def data_url(self) -> str:
        if "://" in self.data_root:
            return self.data_root
        return str(self.resolve(self.data_root))

    @cached_property
    def safety_policy(self) -> SafetyPolicy:
        return load_policy(self.resolve(self.policy) if self.policy else None)

    @property
    def show_unsafe_previews(self) -> bool:
        return self.previews.show_unsafe or os.environ.get("SPAIRS_SHOW_UNSAFE") == "1"


def _format_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid spairs configuration in {origin}:"]
    for err in exc.errors():
        setting = ".".join(str(p) for p in err["loc"])
        lines.append(f"  - setting `{setting}`: {err['msg']}")
    return "\n".join(lines)


class ConfigError(ValueError):
    pass


def find_config_file(start: Path | None = None) -> Path | None:
    """`$SPAIRS_CONFIG`, else `spairs.yaml` in the current folder or one of its parents."""
    if os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV]).expanduser()
        if not path.exists():
            raise ConfigError(f"{CONFIG_ENV}={path} does not exist")
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path | None = None) -> SpairsConfig:
    """Load and validate the configuration (defaults when no file is found)."""
    file = Path(path).resolve() if path else find_config_file()
    if file is None:
        return SpairsConfig()
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    raw = yaml.safe_load(file.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of settings")
    try:
        config = SpairsConfig.model_validate({**raw, "base_dir": file.parent})
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, str(file))) from None
    try:
        config.safety_policy  # noqa: B018 - fail early on a bad policy file
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: setting `policy`: {exc}") from None
    return config
