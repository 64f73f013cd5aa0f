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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    n_safe: int = Field(6, ge=0, le=1000)
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


class PreviewConfig(_Strict):
    show_unsafe: bool = Field(False, description="Show unsafe images unblurred in previews.")
    count: int = Field(12, ge=0, le=64)
    thumb_size: int = Field(128, ge=32, le=512)


class SpairsConfig(_Strict):
    data_root: str = Field("data", description="Local folder or fsspec URL for all outputs.")
    policy: Path | None = Field(None, description="Policy YAML; built-in LlavaGuard v1.2 if unset.")
    sources: SourcesConfig = SourcesConfig()
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
