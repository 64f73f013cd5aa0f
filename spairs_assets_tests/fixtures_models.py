"""Session fixtures that build each tiny model once and hand out its folder.

Import the fixtures you need into a test module (`from spairs_assets_tests.fixtures_models
import tiny_flux_kontext  # noqa: F401`). pytest registers an imported fixture once per module
that imports it, so the models are cached here, per process: every module gets the same folder
and each model is built once per test session (per xdist worker).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from spairs_assets_tests import tiny_models

_BUILT: dict[str, Path] = {}
_LOCK = threading.RLock()  # re-entrant: the Plus variant builds the base model first


def tiny_model_path(name: str, factory: pytest.TempPathFactory) -> Path:
    """The folder of tiny model `name`: a key of `tiny_models.BUILDERS`, or
    "qwen-image-edit-plus"."""
    with _LOCK:
        if name not in _BUILT:
            root = factory.getbasetemp() / "tiny_models"
            root.mkdir(exist_ok=True)
            if name == "qwen-image-edit-plus":
                base = tiny_model_path("qwen-image-edit", factory)
                _BUILT[name] = tiny_models.copy_as_pipeline_class(
                    base, root / name, "QwenImageEditPlusPipeline"
                )
            else:
                _BUILT[name] = tiny_models.BUILDERS[name](root / name)
        return _BUILT[name]


@pytest.fixture(scope="session")
def tiny_instruct_pix2pix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path("instruct-pix2pix", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_flux_kontext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path("flux-kontext", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_qwen_image_edit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path("qwen-image-edit", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_qwen_image_edit_plus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path("qwen-image-edit-plus", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path("llava", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path("qwen2.5-vl", tmp_path_factory)
