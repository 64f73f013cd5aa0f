"""Diffusion editors on tiny random Flux Kontext, Qwen-Image-Edit (+ Plus) and InstructPix2Pix
pipelines, loaded from saved folders through `from_pretrained` as a user's checkpoint would be."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from spairs_assets.config import EditingConfig
from spairs_assets.editing.base import EditFailed, Editor, EditResult
from spairs_assets.editing.diffusers_editors import DiffusersEditor, build_diffusers_editor
from spairs_assets.instructions.base import Instruction
from spairs_assets.models.loading import ModelLoadError, local_fingerprint
from spairs_assets_tests.fixtures_models import (  # noqa: F401
    tiny_flux_kontext,
    tiny_instruct_pix2pix,
    tiny_qwen_image_edit,
    tiny_qwen_image_edit_plus,
)

pytestmark = [
    pytest.mark.slow,
    # diffusers' Euler-ancestral scheduler builds numpy arrays from tensors (numpy 2 warns).
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

KINDS = {
    "instruct-pix2pix": ("tiny_instruct_pix2pix", "StableDiffusionInstructPix2PixPipeline"),
    "flux-kontext": ("tiny_flux_kontext", "FluxKontextPipeline"),
    "qwen-image-edit": ("tiny_qwen_image_edit", "QwenImageEditPipeline"),
}
BATCH_TOLERANCE = 2  # uint8 levels: batched matmuls may round differently from single ones


def _instruction(
    text: str = 'Replace the word "HURT" with "HELP". Keep everything else unchanged.',
):
    return Instruction(text, "replace", "text", "HURT", "HELP", "unsafe_to_safe")


def _image(seed: int, size=(90, 70)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _config(kind: str, path, **settings) -> EditingConfig:
    diffusers = {"model": str(path), "steps": 2, "max_area": 64 * 64, "batch_size": 2, **settings}
    return EditingConfig(editor=kind, diffusers=diffusers)


@pytest.fixture(scope="module", params=sorted(KINDS))
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def model_path(kind, request):
    return request.getfixturevalue(KINDS[kind][0])


@pytest.fixture(scope="module")
def editor(kind, model_path):
    return build_diffusers_editor(_config(kind, model_path))


@pytest.fixture(scope="module")
def first_edit(editor):
    return editor.edit(_image(0), _instruction(), seed=1)


def test_identity_is_known_before_loading(kind, model_path):
    editor = build_diffusers_editor(_config(kind, model_path))
    assert editor._pipe is None  # nothing loaded yet
    assert isinstance(editor, Editor)
    assert editor.editor_id == f"{kind}:{model_path.name}"
    assert editor.revision == f"local:{local_fingerprint(model_path)}"
    assert editor.uses_gpu is True
    assert editor.pipeline_class == KINDS[kind][1]
    params = editor.params
    assert params["pipeline"] == KINDS[kind][1]
    assert params["steps"] == 2 and params["max_area"] == 64 * 64 and params["dtype"] == "float32"
    assert "batch_size" not in params and "cpu_offload" not in params
    assert list(params) == sorted(params)  # canonical order


def test_params_change_with_output_settings_only(kind, model_path):
    base = build_diffusers_editor(_config(kind, model_path)).params
    assert build_diffusers_editor(_config(kind, model_path, batch_size=7)).params == base
    assert build_diffusers_editor(_config(kind, model_path, steps=3)).params != base
    assert (
        build_diffusers_editor(_config(kind, model_path, negative_prompt="blurry")).params != base
    )


def test_edit_returns_the_source_size_and_records_the_working_size(editor, first_edit):
    assert isinstance(first_edit, EditResult)
    assert first_edit.image.size == (90, 70) and first_edit.image.mode == "RGB"
    details = first_edit.details
    width, height = details["working_size"]
    assert width * height <= 2 * 64 * 64 and (width, height) != (90, 70)
    assert width % 8 == 0 and height % 8 == 0
    assert details["source_size"] == [90, 70] and details["seed"] == 1 and details["steps"] == 2
    assert details["generator_device"] == "cpu"


def test_same_seed_same_output_different_seed_different_output(editor, first_edit):
    again = editor.edit(_image(0), _instruction(), seed=1)
    assert np.array_equal(_pixels(again.image), _pixels(first_edit.image))
    other = editor.edit(_image(0), _instruction(), seed=2)
    assert np.abs(_pixels(other.image) - _pixels(first_edit.image)).max() > 10


def test_the_instruction_reaches_the_model(editor, first_edit):
    other = editor.edit(
        _image(0), _instruction("Remove the knife. Keep everything else unchanged."), seed=1
    )
    assert not np.array_equal(_pixels(other.image), _pixels(first_edit.image))


def test_batch_equals_one_by_one(editor, first_edit):
    images = [_image(0), _image(1), _image(2, size=(40, 100))]  # the last has another working size
    instructions = [_instruction(), _instruction("Remove the gun."), _instruction()]
    seeds = [1, 5, 3]
    batched = editor.edit_batch(images, instructions, seeds)
    assert [r.image.size for r in batched] == [(90, 70), (90, 70), (40, 100)]
    assert batched[0].details["batch"] == (
        1 if editor.pipeline_class.endswith("PlusPipeline") else 2
    )
    assert batched[2].details["batch"] == 1
    single = [first_edit] + [
        editor.edit(i, t, s)
        for i, t, s in zip(images[1:], instructions[1:], seeds[1:], strict=True)
    ]
    for b, s in zip(batched, single, strict=True):
        assert np.abs(_pixels(b.image) - _pixels(s.image)).max() <= BATCH_TOLERANCE
    # and the items of a batch do not leak into each other
    assert np.abs(_pixels(batched[0].image) - _pixels(batched[1].image)).max() > 10


def test_null_edit_is_a_deterministic_vae_round_trip_of_the_source_size(editor):
    source = _image(0)
    once = editor.null_edit(source, seed=0)
    assert once.size == source.size and once.mode == "RGB"
    assert np.array_equal(_pixels(once), _pixels(editor.null_edit(source, seed=7)))
    # a round trip of a different image gives a different image
    assert not np.array_equal(_pixels(once), _pixels(editor.null_edit(_image(1), seed=0)))


def test_out_of_memory_becomes_a_clear_edit_failure(editor, monkeypatch):
    import torch

    class OutOfMemoryPipe:
        transformer = getattr(editor.pipe, "transformer", None)

        def __call__(self, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(editor, "_pipe", OutOfMemoryPipe())
    with pytest.raises(EditFailed, match=r"out of GPU memory .*editing.diffusers.max_area"):
        editor.edit(_image(0), _instruction(), seed=1)


# ---- specifics --------------------------------------------------------------------------------


def test_qwen_resize_patch_is_restored(tiny_qwen_image_edit):  # noqa: F811
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit as edit_mod
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus_mod

    original = edit_mod.calculate_dimensions
    editor = build_diffusers_editor(_config("qwen-image-edit", tiny_qwen_image_edit))
    with editor._qwen_area(64 * 64):
        assert edit_mod.calculate_dimensions(1024 * 1024, 1.0)[:2] == (64, 64)
        assert plus_mod.VAE_IMAGE_SIZE == 64 * 64
    assert edit_mod.calculate_dimensions is original
    assert plus_mod.VAE_IMAGE_SIZE == 1024 * 1024
    with pytest.raises(RuntimeError), editor._qwen_area(64 * 64):
        raise RuntimeError("pipeline failed")
    assert edit_mod.calculate_dimensions is original


def test_qwen_edit_plus_is_chosen_from_model_index(tiny_qwen_image_edit_plus):  # noqa: F811
    editor = build_diffusers_editor(_config("qwen-image-edit", tiny_qwen_image_edit_plus))
    assert editor.pipeline_class == "QwenImageEditPlusPipeline"
    result = editor.edit(_image(0), _instruction(), seed=1)
    assert type(editor.pipe).__name__ == "QwenImageEditPlusPipeline"
    assert result.image.size == (90, 70)
    again = editor.edit(_image(0), _instruction(), seed=1)
    assert np.array_equal(_pixels(result.image), _pixels(again.image))


def test_kind_and_checkpoint_must_match(tiny_instruct_pix2pix):  # noqa: F811
    with pytest.raises(
        ModelLoadError, match=r"is a StableDiffusionInstructPix2PixPipeline.*`editing.editor`"
    ):
        build_diffusers_editor(_config("flux-kontext", tiny_instruct_pix2pix))


def test_cpu_offload_needs_cuda(tiny_flux_kontext):  # noqa: F811
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match=r"`editing.diffusers.cpu_offload`.*CUDA"):
        build_diffusers_editor(_config("flux-kontext", tiny_flux_kontext, cpu_offload=True))


def test_classical_editor_is_not_a_diffusers_editor():
    with pytest.raises(ValueError, match="setting `editing.editor`"):
        build_diffusers_editor(EditingConfig())


def test_working_sizes(tiny_flux_kontext, tiny_instruct_pix2pix):  # noqa: F811
    from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS

    kontext = DiffusersEditor(
        "flux-kontext", _config("flux-kontext", tiny_flux_kontext, max_area=None).diffusers
    )
    assert kontext.params["resolution"] == "kontext-preferred"
    assert kontext.working_size((1024, 768)) in PREFERRED_KONTEXT_RESOLUTIONS
    assert kontext.working_size((1000, 1000)) == (1024, 1024)
    sized = DiffusersEditor(
        "flux-kontext", _config("flux-kontext", tiny_flux_kontext, max_area=512 * 512).diffusers
    )
    w, h = sized.working_size((1600, 900))
    assert w % 16 == 0 and h % 16 == 0 and abs(w / h - 16 / 9) < 0.1 and w * h <= 512 * 512
    pix = DiffusersEditor(
        "instruct-pix2pix",
        _config("instruct-pix2pix", tiny_instruct_pix2pix, max_area=None).diffusers,
    )
    assert pix.working_size((256, 200)) == (256, 200)  # small images are not upscaled
    w, h = pix.working_size((2048, 1024))
    assert w * h <= 512 * 512 and w % 8 == 0 and h % 8 == 0


def test_qwen_working_size_follows_qwens_own_rule(tiny_qwen_image_edit):  # noqa: F811
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_dimensions

    editor = DiffusersEditor(
        "qwen-image-edit", _config("qwen-image-edit", tiny_qwen_image_edit, max_area=None).diffusers
    )
    for size in [(1024, 768), (333, 1000), (4000, 3000), (1000, 1000), (257, 90)]:
        assert editor.working_size(size) == calculate_dimensions(1024 * 1024, size[0] / size[1])[:2]
