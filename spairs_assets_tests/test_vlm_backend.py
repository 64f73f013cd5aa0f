"""VisionChatModel and the `vlm` instruction generator on tiny random LLaVA and Qwen2.5-VL models.

The models are real architectures at toy sizes, saved and reloaded through `from_pretrained`;
their answers are garbage, so these tests check the real paths (templating, processing,
greedy decoding, scoring, error recording), and the parsing of good answers is tested on
scripted answers in test_openai_backend.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from spairs_assets.config import InstructionsConfig, ModelConfig
from spairs_assets.instructions.base import GenerationFailed, InstructionGenerator, SeedImage
from spairs_assets.instructions.model_backends import (
    PROMPT_VERSION,
    VLMInstructionGenerator,
    build_model_generator,
)
from spairs_assets.models.loading import local_fingerprint
from spairs_assets.models.vlm import VisionChatModel
from spairs_assets.policy import load_policy
from spairs_assets_tests.fixtures_models import tiny_llava, tiny_qwen2_5_vl  # noqa: F401

pytestmark = pytest.mark.slow

ARCHS = {
    "llava": "LlavaForConditionalGeneration",
    "qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration",
}
PRINTABLE = [chr(c) for c in range(33, 127)]


@pytest.fixture(scope="module", params=sorted(ARCHS))
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def vlm_path(arch, request):
    fixture = {"llava": "tiny_llava", "qwen2.5-vl": "tiny_qwen2_5_vl"}[arch]
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="module")
def vlm(vlm_path):
    return VisionChatModel.from_config(
        ModelConfig(model=str(vlm_path), max_new_tokens=12), setting="judges.vlm"
    )


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))


def test_loads_the_right_architecture_with_its_chat_template(vlm, arch, vlm_path):
    assert type(vlm.model).__name__ == ARCHS[arch]
    assert vlm.revision == f"local:{local_fingerprint(vlm_path)}"
    assert vlm.resolved.device == "cpu" and vlm.resolved.dtype_name == "float32"
    text = vlm.render(1, "Describe the image.")
    assert "Describe the image." in text
    assert text.rstrip().endswith(("ASSISTANT:", "<|im_start|>assistant"))


class _Calls(list):
    def __init__(self):
        super().__init__()
        self.generated: list[list[int]] = []


@pytest.fixture
def generate_calls(vlm, monkeypatch):
    """Records each underlying `model.generate` call: its kwargs and the new-token count."""
    calls = _Calls()
    generated = calls.generated
    original = vlm.model.generate

    def recording(**kwargs):
        out = original(**kwargs)
        calls.append((kwargs, out.shape[1] - kwargs["input_ids"].shape[1]))
        generated.append(out[0, kwargs["input_ids"].shape[1] :].tolist())
        return out

    monkeypatch.setattr(vlm.model, "generate", recording)
    return calls


def test_generate_is_greedy_and_deterministic(vlm, image, generate_calls):
    first = vlm.generate([image], "What is written on the sign?")
    second = vlm.generate([image], "What is written on the sign?")
    assert isinstance(first, str)
    assert first == second
    kwargs, n_new = generate_calls[0]
    assert kwargs["do_sample"] is False and kwargs["num_beams"] == 1
    assert kwargs["max_new_tokens"] == 12 and n_new <= 12  # from the config
    assert "pixel_values" in kwargs


def test_max_new_tokens_override(vlm, image, generate_calls):
    vlm.generate([image], "Say something.", max_new_tokens=2)
    ((kwargs, n_new),) = generate_calls
    assert kwargs["max_new_tokens"] == 2 and n_new <= 2


def test_the_image_reaches_the_model(vlm):
    """Different pixels give different next-token distributions: the image is not dropped."""
    black = Image.new("RGB", (64, 64), "black")
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    p_black = vlm.next_token_probabilities([black], "Rate it.", PRINTABLE)
    p_noise = vlm.next_token_probabilities([noise], "Rate it.", PRINTABLE)
    assert max(abs(p_black[o] - p_noise[o]) for o in PRINTABLE) > 1e-6


def test_system_prompt_is_rendered(vlm):
    text = vlm.render(1, "user text", system="SYSTEM RULES")
    assert "SYSTEM RULES" in text and "user text" in text
    assert text.index("SYSTEM RULES") < text.index("user text")


def test_system_prompt_survives_a_template_that_drops_it(vlm, monkeypatch):
    dropping = (
        "{% for m in messages %}{% if m['role'] == 'user' %}USER: "
        "{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
    )
    monkeypatch.setattr(vlm.processor, "chat_template", dropping)
    text = vlm._apply([{"role": "user", "content": [{"type": "text", "text": "x"}]}])
    assert text == "USER: x ASSISTANT:"
    merged = vlm.render(0, "user text", system="SYSTEM RULES")
    assert merged == "USER: SYSTEM RULES\n\nuser text ASSISTANT:"


def test_next_token_probabilities_are_a_distribution_consistent_with_generate(
    vlm, image, generate_calls
):
    options = PRINTABLE + ["\n", " "]
    token_ids = vlm.option_token_ids(options)
    checked = 0
    for prompt in (
        "Rate the image.",
        "Describe it.",
        "Is it safe?",
        "Answer:",
        "What is this?",
        "Go.",
    ):
        probs = vlm.next_token_probabilities([image], prompt, options)
        assert list(probs) == options
        assert abs(sum(probs.values()) - 1) < 1e-5
        assert all(0 <= p <= 1 for p in probs.values())
        vlm.generate([image], prompt, max_new_tokens=1)
        first_token = generate_calls.generated[-1][0]
        if first_token in token_ids.values():
            # Greedy decoding picks the most probable token, so among the options it must be
            # the one that starts with that token.
            best = max(probs, key=probs.get)
            assert token_ids[best] == first_token, (prompt, best)
            checked += 1
    assert checked >= 1  # the random model's first token was one of the options at least once


def test_answer_prefix_changes_the_distribution(vlm, image):
    plain = vlm.next_token_probabilities([image], "Rate.", ["Safe", "Unsafe"])
    prefixed = vlm.next_token_probabilities(
        [image], "Rate.", ["Safe", "Unsafe"], answer_prefix='{"rating": "'
    )
    assert set(plain) == {"Safe", "Unsafe"}
    assert plain != prefixed


def test_options_sharing_a_first_token_are_refused(vlm, image):
    with pytest.raises(ValueError, match="same token"):
        vlm.next_token_probabilities([image], "Rate.", ["Unsafe", "Unclear"])


def test_checkpoint_without_chat_template_fails_clearly(tiny_llava, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_llava, tmp_path / "no-template")
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match=r"setting `judges.vlm.model`: .* has no chat template"):
        VisionChatModel.from_config(ModelConfig(model=str(folder)), setting="judges.vlm")


# ---- the `vlm` instruction generator ---------------------------------------------------------


def _seed(image, rating="Unsafe"):
    cat = load_policy().category("O1")
    return SeedImage("seed1", cat.key, cat.id, cat.label, rating, image)


def test_vlm_generator_runs_end_to_end_and_records_the_raw_garbage(vlm_path, image, vlm):
    policy = load_policy()
    config = InstructionsConfig(generator="vlm", vlm={"model": str(vlm_path), "max_new_tokens": 12})
    generator = build_model_generator(config, policy)
    assert isinstance(generator, VLMInstructionGenerator)
    assert isinstance(generator, InstructionGenerator)
    # Identity is known before any weights load.
    assert generator._model is None
    assert generator.generator_id == f"vlm:{vlm_path.name}@local:{local_fingerprint(vlm_path)}"
    assert PROMPT_VERSION in generator.version and policy.fingerprint in generator.version
    seed = _seed(image)
    with pytest.raises(GenerationFailed) as exc:
        generator.generate(seed, "unsafe_to_safe")
    # The raw answer is exactly what the model says to the rendered prompt.
    expected = vlm.generate([image], generator.prompt_for(seed, "unsafe_to_safe"))
    assert exc.value.raw == expected
    assert "no usable JSON" in str(exc.value) or "invalid" in str(exc.value)
    loaded = generator.model
    with pytest.raises(GenerationFailed):
        generator.generate(seed, "unsafe_to_safe")
    assert generator.model is loaded  # loaded once per generator


def test_vlm_generator_parses_a_good_answer(image, monkeypatch):
    class ScriptedModel:  # stands in for VisionChatModel.generate: the parsing path is shared
        def __init__(self):
            self.calls = []

        def generate(self, images, prompt, **kwargs):
            self.calls.append((images, prompt))
            return (
                'The offending feature is the word. {"feature": "SCUM", "feature_kind": "text", '
                '"edit_kind": "replace", "replacement": "FRIENDS", "instruction": '
                '"Replace the word SCUM with FRIENDS. Keep everything else unchanged."}'
            )

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a hub id that is not cached: allowed online
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    model = ScriptedModel()
    generator = VLMInstructionGenerator(
        ModelConfig(model="org/some-vlm", revision="0" * 40), load_policy(), model=model
    )
    assert generator.generator_id == f"vlm:org/some-vlm@{'0' * 40}"
    (instruction,) = generator.generate(_seed(image), "unsafe_to_safe")
    assert (instruction.feature, instruction.replacement) == ("SCUM", "FRIENDS")
    assert instruction.details["generator_id"] == generator.generator_id
    ((images, prompt),) = model.calls
    assert images == [image] and "O1: Hate, Humiliation, Harassment" in prompt
    assert generator.generate(_seed(image, rating="Safe"), "unsafe_to_safe") == []
