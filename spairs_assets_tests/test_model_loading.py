"""Resolving model settings into from_pretrained arguments, provenance, and safe loading."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from spairs_assets.config import DiffusersEditorConfig, EditingConfig, ModelConfig
from spairs_assets.models import loading
from spairs_assets.models.loading import (
    ModelLoadError,
    local_fingerprint,
    package_versions,
    resolve_model,
    resolved_revision,
)
from spairs_assets_tests.fixtures_models import tiny_llava  # noqa: F401

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava", "hidden_size": 8}))
    (folder / "model.safetensors").write_bytes(b"\x00" * 4096)
    return folder


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache holding org/cached-model at commit SHA (as `hf download` leaves it)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--org--cached-model"
    (repo / "snapshots" / SHA).mkdir(parents=True)
    (repo / "snapshots" / SHA / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_local_folder_resolves_to_safe_offline_kwargs(model_dir):
    resolved = resolve_model(ModelConfig(model=str(model_dir), revision="main"), "instructions.vlm")
    assert resolved.is_local and resolved.source == str(model_dir.resolve())
    assert resolved.device == "cpu"  # no GPU here: auto -> cpu
    assert resolved.dtype_name == "float32"  # auto on CPU -> float32
    kwargs = resolved.from_pretrained_kwargs()
    assert kwargs["use_safetensors"] is True
    assert kwargs["local_files_only"] is True
    assert kwargs["trust_remote_code"] is False
    assert "revision" not in kwargs  # a local folder has no hub revision
    import torch

    assert kwargs["dtype"] is torch.float32
    assert resolved.short_name == "my-model"


def test_missing_local_path_names_the_setting(tmp_path):
    missing = tmp_path / "nope" / "flux"
    with pytest.raises(ModelLoadError) as exc:
        resolve_model(DiffusersEditorConfig(model=str(missing)), "editing.diffusers")
    assert str(exc.value) == f"setting `editing.diffusers.model`: {missing} does not exist"


@pytest.mark.parametrize("ref", ["./models/flux", "~/no-such-model-here", "a/b/c", "../x"])
def test_path_like_references_that_do_not_exist_fail(ref):
    with pytest.raises(
        ModelLoadError, match=r"setting `instructions.vlm.model`: .* does not exist"
    ):
        resolve_model(ModelConfig(model=ref), "instructions.vlm")


def test_a_file_is_not_a_model_folder(model_dir):
    with pytest.raises(ModelLoadError, match="is not a folder"):
        resolve_model(ModelConfig(model=str(model_dir / "config.json")), "x")


def test_relative_folder_resolves_against_the_config_folder(model_dir):
    resolved = resolve_model(ModelConfig(model="my-model"), "x", base_dir=model_dir.parent)
    assert resolved.is_local and resolved.source == str(model_dir.resolve())


def test_hub_id_offline_and_not_cached_fails_clearly(monkeypatch, hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelLoadError, match=r"setting `editing.diffusers.model`: org/absent .*HF_HUB_OFFLINE"
    ):
        resolve_model(ModelConfig(model="org/absent"), "editing.diffusers")


def test_hub_id_cached_offline_resolves_to_the_snapshot_commit(monkeypatch, hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_model(
        ModelConfig(model="org/cached-model", revision="main"), "instructions.vlm"
    )
    assert not resolved.is_local and resolved.local_files_only
    kwargs = resolved.from_pretrained_kwargs()
    assert kwargs["revision"] == "main" and kwargs["local_files_only"] is True
    assert resolved_revision(resolved) == SHA
    assert resolved.short_name == "org/cached-model"


def test_hub_id_online_keeps_revision_and_may_download(monkeypatch, hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    resolved = resolve_model(ModelConfig(model="org/other", revision="v1.0"), "x")
    assert resolved.from_pretrained_kwargs()["local_files_only"] is False
    assert resolved.from_pretrained_kwargs()["revision"] == "v1.0"
    assert resolved_revision(resolved) == "v1.0"  # not cached: the configured revision
    assert resolved_revision(resolve_model(ModelConfig(model="org/other"), "x")) == "unpinned"
    pinned = resolve_model(ModelConfig(model="org/other", revision=SHA), "x")
    assert resolved_revision(pinned) == SHA


def test_trust_remote_code_only_when_configured(model_dir):
    on = resolve_model(ModelConfig(model=str(model_dir), trust_remote_code=True), "x")
    assert on.from_pretrained_kwargs()["trust_remote_code"] is True


@pytest.mark.parametrize(
    ("dtype", "expected"), [("float16", "float16"), ("bfloat16", "bfloat16"), ("auto", "float32")]
)
def test_dtype_resolution(model_dir, dtype, expected):
    assert resolve_model(ModelConfig(model=str(model_dir), dtype=dtype), "x").dtype_name == expected


def test_auto_dtype_is_bf16_on_cuda_when_supported(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert loading.resolve_dtype_name("auto", "cuda:0") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert loading.resolve_dtype_name("auto", "cuda") == "float32"


def test_auto_device_prefers_cuda_then_mps(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loading.resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert loading.resolve_device("auto") == "mps"


@pytest.mark.parametrize(
    ("device", "message"), [("cuda", "CUDA is not available"), ("tpu", "unknown device")]
)
def test_bad_devices_fail_clearly(model_dir, device, message):
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match=message):
        resolve_model(ModelConfig(model=str(model_dir), device=device), "x")


def test_local_fingerprint_tracks_config_and_weights(model_dir):
    first = local_fingerprint(model_dir)
    assert first == local_fingerprint(model_dir)
    resolved = resolve_model(ModelConfig(model=str(model_dir)), "x")
    assert resolved_revision(resolved) == f"local:{first}"
    (model_dir / ".cache").mkdir()
    (model_dir / ".cache" / "lock").write_text("x")  # tool droppings do not count
    assert local_fingerprint(model_dir) == first
    (model_dir / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 4095)  # new weights
    second = local_fingerprint(model_dir)
    assert second != first
    (model_dir / "config.json").write_text(json.dumps({"model_type": "llava", "hidden_size": 16}))
    assert local_fingerprint(model_dir) not in (first, second)


def test_fingerprint_is_location_independent(model_dir, tmp_path):
    import shutil

    copy = shutil.copytree(model_dir, tmp_path / "elsewhere" / "renamed")
    assert local_fingerprint(copy) == local_fingerprint(model_dir)


def test_package_versions_lists_the_model_stack_without_importing_torch():
    code = (
        "import sys, json; from spairs_assets.models.loading import package_versions; "
        "v = package_versions(); print(json.dumps([v, 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    versions, torch_imported = json.loads(out.stdout)
    assert not torch_imported
    for name in ("python", "torch", "transformers", "diffusers", "accelerate", "safetensors"):
        assert versions[name]
    import torch

    assert package_versions()["torch"] == torch.__version__.split("+")[
        0
    ] or torch.__version__.startswith(package_versions()["torch"])


def test_model_modules_import_no_heavy_libraries():
    modules = [
        "spairs_assets.models.loading",
        "spairs_assets.models.vlm",
        "spairs_assets.models.openai_chat",
        "spairs_assets.models.answers",
        "spairs_assets.instructions.model_backends",
        "spairs_assets.editing.diffusers_editors",
    ]
    code = (
        "import sys, importlib; "
        f"[importlib.import_module(m) for m in {modules!r}]; "
        "print(','.join(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_build_editor_rejects_a_missing_model_path_with_the_setting(tmp_path):
    from spairs_assets.editing.diffusers_editors import build_diffusers_editor

    config = EditingConfig(editor="flux-kontext", diffusers={"model": str(tmp_path / "x")})
    with pytest.raises(
        ModelLoadError, match=r"setting `editing.diffusers.model`: .* does not exist"
    ):
        build_diffusers_editor(config)


class _Boom:
    """Unpickling this writes a marker file: proof that a pickle was loaded."""

    marker: str = ""

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled!",))


@pytest.mark.slow
def test_pickled_checkpoints_are_refused_not_unpickled(tmp_path, tiny_llava):  # noqa: F811
    """A folder with only a pickle checkpoint must fail to load, and the pickle must not run."""
    from transformers import AutoModelForImageTextToText

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_llava / "config.json").read_text())
    marker = tmp_path / "marker.txt"
    _Boom.marker = str(marker)
    with (folder / "pytorch_model.bin").open("wb") as fh:
        pickle.dump({"weights": _Boom()}, fh)
    resolved = resolve_model(ModelConfig(model=str(folder)), "instructions.vlm")
    with pytest.raises(OSError, match="safetensors"):
        AutoModelForImageTextToText.from_pretrained(
            resolved.source, **resolved.from_pretrained_kwargs()
        )
    assert not marker.exists()


@pytest.mark.slow
def test_tiny_model_loads_through_the_resolved_kwargs(tiny_llava):  # noqa: F811
    from transformers import AutoModelForImageTextToText

    resolved = resolve_model(ModelConfig(model=str(tiny_llava)), "instructions.vlm")
    model = AutoModelForImageTextToText.from_pretrained(
        resolved.source, **resolved.from_pretrained_kwargs()
    )
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert resolved_revision(resolved, model).startswith("local:")


def test_torchvision_workaround_is_idempotent_and_only_without_torchvision():
    active = loading.ensure_processors_work_without_torchvision()
    assert active == (not loading.torchvision_available())
    assert loading.ensure_processors_work_without_torchvision() == active
    if active:
        from transformers import Qwen2_5_VLProcessor

        assert "video_processor" not in Qwen2_5_VLProcessor.get_attributes()
        assert "image_processor" in Qwen2_5_VLProcessor.get_attributes()
