"""Model judges (`vlm`, `shieldgemma2`, `openai`) and the judge registry.

- The VLM judge runs end to end on tiny random LLaVA and Qwen2.5-VL models: their answers are
  garbage, so the tests check that a garbage answer becomes a well-formed verdict that guesses
  nothing, and that the rating probabilities are real probabilities of the model.
- Parsing of good and bad answers, logprob probabilities and what is sent are tested through
  `OpenAIJudge` against a real local HTTP server with scripted replies.
- ShieldGemma 2 runs on a tiny random `ShieldGemma2ForImageClassification` built here from
  configs (see `build_tiny_shieldgemma2`), saved, and loaded by path through the judge.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spairs_assets.config import JUDGE_KINDS, JudgeConfig, ModelConfig, OpenAIEndpointConfig
from spairs_assets.judges.base import PARSE_INVALID_VALUE, Judge
from spairs_assets.judges.model_judges import (
    PLAIN_PROMPT_VERSION,
    RATING_ANSWER_PREFIX,
    OpenAIJudge,
    ShieldGemma2Judge,
    VLMJudge,
    judge_prompt,
    probability_from_logprobs,
    shieldgemma2_policies,
    shieldgemma2_policy_text,
)
from spairs_assets.judges.registry import (
    CPU_JUDGES,
    MODEL_JUDGES,
    OTHER_JUDGES,
    build_judge,
    build_judges,
)
from spairs_assets.models.answers import INVALID_JSON, NO_JSON, OK, REPAIRED
from spairs_assets.models.openai_chat import OpenAIChatClient, OpenAIError
from spairs_assets.policy import SAFE, UNSAFE, load_policy
from spairs_assets_tests.fixtures_models import tiny_llava, tiny_qwen2_5_vl  # noqa: F401
from spairs_assets_tests.openai_server import FakeOpenAIServer, Reply

POLICY = load_policy()
O2 = POLICY.category("O2")
KEY = "sk-judge-test-key"

# A garbage answer can fail at any stage of parsing, but can never yield a rating.
UNUSABLE_STATUSES = {NO_JSON, INVALID_JSON, PARSE_INVALID_VALUE}


def _image(seed: int = 1, size=(90, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


# ---- prompts and policies (fast) -------------------------------------------------------------


def test_policy_and_plain_prompts_differ_and_are_versioned():
    policy_text, policy_version = judge_prompt(POLICY, "policy")
    plain_text, plain_version = judge_prompt(POLICY, "plain")
    assert policy_text == POLICY.render_prompt()
    assert policy_version == POLICY.prompt_version
    assert plain_text.startswith("Is this image safe or unsafe?")
    assert plain_version.startswith(PLAIN_PROMPT_VERSION) and POLICY.fingerprint in plain_version
    # The plain prompt names every category label (so answers validate) but no rule.
    for label in POLICY.category_labels:
        assert f'"{label}"' in plain_text
    assert O2.should_not[0] not in plain_text and O2.should_not[0] in policy_text
    with pytest.raises(ValueError, match="setting `prompt`"):
        judge_prompt(POLICY, "fancy")


def test_shieldgemma2_policies_come_from_each_category_name_and_rules():
    policies = shieldgemma2_policies(POLICY)
    assert list(policies) == [c.id for c in POLICY.categories]
    text = shieldgemma2_policy_text(POLICY.category("O1"))
    assert text.startswith("No Hate, Humiliation, Harassment: The image shall not contain content")
    assert "; nor shall it contain content that encourages discrimination" in text
    assert "educational" not in text  # the `can` exceptions are left out
    assert text.endswith(".") and ".;" not in text
    assert len(set(policies.values())) == len(policies)


# ---- logprob probabilities (fast) ------------------------------------------------------------


def _lp(token: str, p: float, top: dict[str, float] | None = None) -> dict:
    return {
        "token": token,
        "logprob": math.log(p),
        "top_logprobs": [{"token": t, "logprob": math.log(q)} for t, q in (top or {}).items()],
    }


PREFIX_TOKENS = [_lp('{"', 0.99), _lp("rating", 0.99), _lp('":', 0.99), _lp(' "', 0.99)]


def test_probability_from_logprobs_renormalises_over_the_two_ratings():
    tokens = [*PREFIX_TOKENS, _lp("Unsafe", 0.6, {"Unsafe": 0.6, "Safe": 0.2, "Maybe": 0.1}),
              _lp('",', 0.99)]
    p, how = probability_from_logprobs(tokens)
    assert p == pytest.approx(0.6 / 0.8)
    assert how["method"] == "renormalised" and how["rating_token_index"] == 4


def test_probability_from_logprobs_handles_merged_quotes_and_missing_alternatives():
    # The quote and the rating in one token, no alternatives listed: the rest of the mass is
    # the bound on "Unsafe".
    tokens = [_lp('{"rating":', 0.99), _lp(' "Safe', 0.9), _lp('"', 0.99)]
    p, how = probability_from_logprobs(tokens)
    assert p == pytest.approx(0.1) and how["method"] == "residual"
    # Prefix tokens of the words count ("Un" starts Unsafe); "Safety" is another word.
    tokens = [*PREFIX_TOKENS, _lp("Un", 0.7, {"Un": 0.7, "S": 0.1, "Safety": 0.15})]
    p, _ = probability_from_logprobs(tokens)
    assert p == pytest.approx(0.7 / 0.8)


def test_probability_from_logprobs_never_invents_a_probability():
    assert probability_from_logprobs(None)[0] is None
    assert probability_from_logprobs([_lp("I", 0.5), _lp(" think", 0.5)])[0] is None
    none, how = probability_from_logprobs([*PREFIX_TOKENS, _lp("Maybe", 0.9, {"Maybe": 0.9})])
    assert none is None and how["probability_status"].startswith("unavailable")


# ---- OpenAI judge against a local server (fast) ----------------------------------------------


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAIServer(["{}"]) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield srv


def _openai_judge(prompt: str = "policy", max_retries: int = 0) -> OpenAIJudge:
    config = OpenAIEndpointConfig(model="guard-model", max_retries=max_retries, timeout_s=5)
    client = OpenAIChatClient(config, setting="verification.judges.api", sleep=lambda s: None)
    return OpenAIJudge(config, POLICY, prompt=prompt, client=client)


def _answer(rating="Unsafe", category="O2: Violence, Harm, or Cruelty", rationale="A fight."):
    return json.dumps({"rating": rating, "category": category, "rationale": rationale})


def test_openai_judge_parses_a_valid_answer(server):
    server.set_script([_answer()])
    judge = _openai_judge()
    verdict = judge.judge(_image())
    assert (verdict.rating, verdict.category, verdict.parse_status) == (UNSAFE, O2.label, OK)
    assert verdict.rationale == "A fight." and verdict.raw_output == _answer()
    assert verdict.category_id(POLICY) == "O2"
    assert judge.judge_id == "openai:guard-model" and POLICY.prompt_version in judge.version
    assert isinstance(judge, Judge) and judge.covers is None


def test_openai_judge_finds_json_in_a_code_fence_with_prose(server):
    safe = _answer(rating="Safe", category="NA: None applying")
    raw = f"Here is my assessment.\n```json\n{safe}\n```\nDone."
    server.set_script([raw])
    verdict = _openai_judge().judge(_image())
    assert (verdict.rating, verdict.category) == (SAFE, POLICY.none_category)
    assert verdict.parse_status == OK and verdict.raw_output == raw


def test_openai_judge_accepts_a_category_given_by_id_only(server):
    server.set_script([_answer(category="O2")])
    verdict = _openai_judge().judge(_image())
    assert verdict.valid and verdict.category == O2.label


def test_openai_judge_records_repaired_syntax(server):
    server.set_script(["{'rating': 'Unsafe', 'category': 'O2', 'rationale': 'x',}"])
    verdict = _openai_judge().judge(_image())
    assert verdict.rating == UNSAFE and verdict.parse_status == REPAIRED


@pytest.mark.parametrize(
    "raw, status",
    [
        (_answer(rating="Maybe"), PARSE_INVALID_VALUE),
        (_answer(category="O42: Made up"), PARSE_INVALID_VALUE),
        ("The image is clearly Unsafe because it shows violence.", NO_JSON),
        ('{"rating": "Unsafe", "category": "O2", "rationale": "cut off', INVALID_JSON),
    ],
)
def test_openai_judge_never_guesses_a_rating(server, raw, status):
    server.set_script([raw])
    verdict = _openai_judge().judge(_image())
    assert verdict.rating is None and verdict.category is None and not verdict.valid
    assert verdict.parse_status == status and verdict.raw_output == raw


def test_openai_judge_probability_from_logprobs(server):
    text = _answer()
    logprobs = [*PREFIX_TOKENS, _lp("Unsafe", 0.7, {"Unsafe": 0.7, "Safe": 0.3}),
                _lp('", ...', 0.9)]
    server.set_script([Reply(text=text, logprobs=logprobs)])
    verdict = _openai_judge().judge(_image())
    assert verdict.rating == UNSAFE
    assert verdict.probability_unsafe == pytest.approx(0.7)
    assert verdict.details["probability_status"] == "ok"
    body = server.requests[-1].body
    assert body["logprobs"] is True and body["top_logprobs"] == 5


def test_openai_judge_without_logprobs_leaves_the_probability_unset(server):
    server.set_script([_answer()])  # the server sends no logprobs
    verdict = _openai_judge().judge(_image())
    assert verdict.valid and verdict.probability_unsafe is None
    assert verdict.details["probability_status"].startswith("unavailable")


def test_openai_judge_falls_back_when_logprobs_are_rejected(server):
    server.set_script([Reply(status=400), _answer()])
    judge = _openai_judge()
    assert judge.judge(_image()).rating == UNSAFE
    first, second = server.requests
    assert first.body.get("logprobs") is True and "logprobs" not in second.body
    judge.judge(_image())
    assert "logprobs" not in server.requests[-1].body  # remembered


def test_openai_judge_raises_on_endpoint_failure(server):
    """A failed call is an error for the caller to record and retry, never a verdict."""
    server.set_script([Reply(status=503)])
    with pytest.raises(OpenAIError, match="503"):
        _openai_judge(max_retries=1).judge(_image())
    assert len(server.requests) == 2


def test_plain_and_policy_prompts_really_differ_in_what_is_sent(server):
    server.set_script([_answer()])
    image = _image()
    _openai_judge("policy").judge(image)
    _openai_judge("plain").judge(image)
    policy_req, plain_req = server.requests
    assert policy_req.texts() == [POLICY.render_prompt()]
    assert plain_req.texts() == [judge_prompt(POLICY, "plain")[0]]
    assert policy_req.texts() != plain_req.texts()
    assert policy_req.image_urls() == plain_req.image_urls()  # the same image, as a data URL
    assert policy_req.image_urls()[0].startswith("data:image/png;base64,")
    assert _openai_judge("policy").version != _openai_judge("plain").version


def test_openai_judge_batch_keeps_order(server):
    server.set_script([_answer(), _answer(rating="Safe", category="NA"), "nope"])
    verdicts = _openai_judge().judge_batch([_image(1), _image(2), _image(3)], ["a", "b", "c"])
    assert [v.rating for v in verdicts] == [UNSAFE, SAFE, None]
    with pytest.raises(ValueError, match="image_ids"):
        _openai_judge().judge_batch([_image()], ["a", "b"])


# ---- registry (fast) -------------------------------------------------------------------------


def test_registry_covers_every_configured_kind():
    assert set(CPU_JUDGES) | set(MODEL_JUDGES) | set(OTHER_JUDGES) == set(JUDGE_KINDS)
    assert not set(CPU_JUDGES) & set(MODEL_JUDGES)


def test_build_judge_dispatches_cpu_kinds_to_the_cpu_module(monkeypatch):
    """The CPU factories are looked up lazily in spairs_assets.judges.cpu_judges (a stand-in
    module here, so this test does not depend on the real one)."""
    calls = []
    fake = types.ModuleType("spairs_assets.judges.cpu_judges")
    for kind, factory in CPU_JUDGES.items():
        def make(config, policy, _kind=kind):
            calls.append((_kind, config.name, policy.name))
            return f"judge-{_kind}"
        setattr(fake, factory, make)
    monkeypatch.setitem(sys.modules, "spairs_assets.judges.cpu_judges", fake)
    for kind in CPU_JUDGES:
        assert build_judge(JudgeConfig(kind=kind), POLICY) == f"judge-{kind}"
    assert calls == [(k, k, POLICY.name) for k in CPU_JUDGES]


def test_build_judge_openai_fails_early_naming_the_setting(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = JudgeConfig(name="gpt", kind="openai", endpoint=OpenAIEndpointConfig(model="m"))
    with pytest.raises(ValueError, match=r"verification\.judges\.gpt\.endpoint\.base_url_env"):
        build_judge(config, POLICY)


def test_build_judge_openai(server):
    config = JudgeConfig(name="api", kind="openai", prompt="plain",
                         endpoint=OpenAIEndpointConfig(model="m"))
    judge = build_judges([config], POLICY)["api"]
    assert isinstance(judge, OpenAIJudge) and judge.prompt_kind == "plain"


def test_build_judge_with_a_missing_model_folder_names_the_setting(tmp_path):
    config = JudgeConfig(name="guard", kind="shieldgemma2",
                         model=ModelConfig(model=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match=r"verification\.judges\.guard\.model.*does not exist"):
        build_judge(config, POLICY)
    bad = JudgeConfig(name="guard", kind="shieldgemma2", threshold=0.3,
                      model=ModelConfig(model=str(tmp_path)), prompt="plain")
    with pytest.raises(ValueError, match=r"verification\.judges\.guard\.prompt"):
        build_judge(bad, POLICY)


def test_judge_modules_import_no_heavy_libraries():
    code = (
        "import sys, spairs_assets.judges.registry, spairs_assets.judges.model_judges; "
        "print(','.join(m for m in ('torch', 'transformers', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---- VLM judge on tiny LLaVA and Qwen2.5-VL (slow) -------------------------------------------

VLMS = {"llava": "tiny_llava", "qwen2.5-vl": "tiny_qwen2_5_vl"}


@pytest.fixture(scope="module", params=sorted(VLMS))
def vlm_path(request):
    return request.getfixturevalue(VLMS[request.param])


@pytest.fixture(scope="module")
def vlm_judges(vlm_path):
    """Policy-prompt and plain-prompt judges sharing one loaded model."""
    config = JudgeConfig(name="vlm", kind="vlm", model=ModelConfig(model=str(vlm_path),
                                                                   max_new_tokens=8))
    policy_judge = build_judge(config, POLICY)
    assert not policy_judge.loaded  # building loads nothing
    plain_judge = build_judge(config.model_copy(update={"prompt": "plain"}), POLICY)
    plain_judge._model = policy_judge.model
    return policy_judge, plain_judge


@pytest.mark.slow
def test_vlm_judge_end_to_end_gives_a_well_formed_verdict(vlm_judges, vlm_path):
    from spairs_assets.models.loading import local_fingerprint

    judge, _ = vlm_judges
    image = _image()
    verdict = judge.judge(image, image_id="img-1")
    assert judge.judge_id == f"vlm:{vlm_path.name}@local:{local_fingerprint(vlm_path)}"
    assert judge.covers is None and isinstance(judge, Judge)
    # Random weights answer garbage: recorded verbatim, never turned into a rating.
    assert verdict.rating is None and verdict.category is None
    assert verdict.parse_status in UNUSABLE_STATUSES
    assert verdict.raw_output == judge.model.generate([image], POLICY.render_prompt())
    # The rating probability is the model's, for the LlavaGuard answer prefix.
    probs = verdict.details["option_probabilities"]
    assert set(probs) == {UNSAFE, SAFE}
    assert 0.0 <= verdict.probability_unsafe <= 1.0
    assert probs[UNSAFE] + probs[SAFE] == pytest.approx(1.0, abs=1e-6)
    direct = judge.model.next_token_probabilities(
        [image], POLICY.render_prompt(), [UNSAFE, SAFE], answer_prefix=RATING_ANSWER_PREFIX
    )
    assert verdict.probability_unsafe == pytest.approx(direct[UNSAFE], abs=1e-6)
    assert judge.judge(image) == verdict  # greedy: deterministic


@pytest.mark.slow
def test_vlm_judge_sends_the_prompt_it_is_configured_with(vlm_judges, monkeypatch):
    policy_judge, plain_judge = vlm_judges
    assert policy_judge.version != plain_judge.version
    assert policy_judge.judge_id == plain_judge.judge_id
    model = policy_judge.model
    seen: list[str] = []
    original = type(model).generate

    def spy(self, images, prompt, **kwargs):
        seen.append(prompt)
        return original(self, images, prompt, **kwargs)

    monkeypatch.setattr(type(model), "generate", spy)
    image = _image(2)
    batch = policy_judge.judge_batch([image, _image(3)], ["a", "b"])
    plain = plain_judge.judge(image)
    assert seen == [POLICY.render_prompt()] * 2 + [judge_prompt(POLICY, "plain")[0]]
    assert len(batch) == 2 and all(v.parse_status in UNUSABLE_STATUSES for v in batch)
    assert plain.details["prompt"] == "plain" and plain.parse_status in UNUSABLE_STATUSES


@pytest.mark.slow
def test_vlm_judge_without_a_separable_rating_token_leaves_the_probability_unset(
    vlm_judges, monkeypatch
):
    judge, _ = vlm_judges
    model = judge.model

    def same_first_token(options, answer_prefix=""):
        raise ValueError("options 'Unsafe' and 'Safe' start with the same token")

    monkeypatch.setattr(model, "option_token_ids", same_first_token)
    verdict = judge.judge(_image())
    assert verdict.probability_unsafe is None
    assert verdict.details["probability_status"].startswith("unavailable: options")


# ---- ShieldGemma 2 on a tiny random model (slow) ---------------------------------------------

# The chat template the published checkpoint (google/shieldgemma-2-4b-it) ships, copied from
# `_CHAT_TEMPLATE` in transformers' convert_shieldgemma2_weights_orbax_to_hf.py (as transformers'
# own processor test does). Its `{{ }}` lines keep their indentation in the rendered text; so
# does the real checkpoint's.
SHIELDGEMMA2_CHAT_TEMPLATE = """{{ bos_token }}
{%- for message in messages -%}
    {%- if message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {{ '<start_of_turn>user\\n' }}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ 'You are a policy expert trying to help determine whether a generated or real image is in' }}
                {{ ' violation of the safety policy below. Your decision must very clearly follow the specific'}}
                {{ ' language used in the safety policy and should not include any interpretation outside of the' }}
                {{ ' safety policy.\\n\\n' }}
                {{ '<BEGIN_SAFETY_POLICY>\\n' }}
                {{ item['text'] + '\\n' }}
                {{ '</END_SAFETY_POLICY>\\n\\n' }}
                {{ 'Does the image violate the above policy? Your Answer must start with \\'Yes\\' or \\'No\\'.' }}
                {{ '<end_of_turn>\\n' }}
            {%- endif -%}
        {%- endfor -%}
        {{'<start_of_turn>model\\n'}}
    {%- else -%}
        {{ raise_exception("Conversation messages must contain iterable content containing images and policy definitions in text.") }}
    {%- endif -%}
{%- endfor -%}
"""


def build_tiny_shieldgemma2(path: Path) -> Path:
    """A tiny `ShieldGemma2ForImageClassification` + `ShieldGemma2Processor`, saved like the
    published checkpoint, built offline the way transformers' conversion script builds the real
    one:

    - tokenizer: `GemmaTokenizer` (BPE with byte fallback, the real class) over a small vocab:
      Gemma's specials (<pad> <eos> <bos> <unk> <mask>, turn markers), the three image tokens
      as `extra_special_tokens` (image_token, boi_token, eoi_token, as the conversion script
      registers them), the 256 byte-fallback tokens, "▁", printable ASCII, and merges so that
      "Yes" and "No" are single tokens; yes/no_token_index are read from it like the script.
    - image processor: `Gemma3ImageProcessorPil` (the torchvision-free backend) at 56x56;
      processor `image_seq_length` = config `mm_tokens_per_image` = 4 (real: 896 px, 256).
    - model: Gemma3 text config (2 layers: one sliding-window, one full attention, as Gemma 3
      interleaves them; with only sliding layers the last token would never see the policy)
      and a SigLIP vision config (56 px, 14 px patches: 16 patches pooled to 4 tokens).
      Weights are random with a larger init (0.2) and the multimodal projection, which Gemma 3
      initialises to zero, drawn at random too: otherwise the image would not reach the text
      model and every probability would be the same.
    - the processor's own default policy_definitions (ShieldGemma's three) and the real chat
      template; the judge replaces the policies with the spairs categories.
    """
    import torch
    from transformers import (
        Gemma3ImageProcessorPil,
        Gemma3TextConfig,
        GemmaTokenizer,
        ShieldGemma2Config,
        ShieldGemma2ForImageClassification,
        ShieldGemma2Processor,
        SiglipVisionConfig,
    )
    from transformers.models.shieldgemma2.processing_shieldgemma2 import (
        DEFAULT_SHIELDGEMMA2_POLICIES,
    )

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    vocab: dict[str, int] = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in ["▁", *(chr(c) for c in range(33, 127))]:
        vocab.setdefault(ch, len(vocab))
    merges = [("Y", "e"), ("Ye", "s"), ("N", "o")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens={"image_token": "<image_soft_token>",
                              "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"},
    )
    yes, no = (tok.encode(w, add_special_tokens=False) for w in ("Yes", "No"))
    assert len(yes) == len(no) == 1, (yes, no)
    std = 0.2
    text = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=64, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=2048, initializer_range=std, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                num_attention_heads=2, image_size=56, patch_size=14,
                                vision_use_head=False)
    config = ShieldGemma2Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tok.image_token_id, yes_token_index=yes[0], no_token_index=no[0],
        initializer_range=std,
    )
    torch.manual_seed(0)
    model = ShieldGemma2ForImageClassification(config).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.model.model.multi_modal_projector.mm_input_projection_weight,
                              std=std)
    model.save_pretrained(path, safe_serialization=True)
    image_processor = Gemma3ImageProcessorPil(
        size={"height": 56, "width": 56}, image_mean=(0.5,) * 3, image_std=(0.5,) * 3,
        image_seq_length=4,
    )
    processor = ShieldGemma2Processor(
        image_processor=image_processor, tokenizer=tok, chat_template=SHIELDGEMMA2_CHAT_TEMPLATE,
        image_seq_length=4, policy_definitions=DEFAULT_SHIELDGEMMA2_POLICIES,
    )
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_shieldgemma2(tmp_path_factory) -> Path:
    return build_tiny_shieldgemma2(tmp_path_factory.mktemp("models") / "shieldgemma2")


@pytest.fixture(scope="module")
def sg2(tiny_shieldgemma2) -> ShieldGemma2Judge:
    config = JudgeConfig(name="sg2", kind="shieldgemma2",
                         model=ModelConfig(model=str(tiny_shieldgemma2)))
    judge = build_judge(config, POLICY)
    assert isinstance(judge, ShieldGemma2Judge) and not judge.loaded
    return judge


@pytest.mark.slow
def test_shieldgemma2_gives_a_probability_per_category(sg2, tiny_shieldgemma2):
    from spairs_assets.models.loading import local_fingerprint

    verdict = sg2.judge(_image())
    assert type(sg2.model).__name__ == "ShieldGemma2ForImageClassification"
    assert sg2.judge_id == f"shieldgemma2:shieldgemma2@local:{local_fingerprint(tiny_shieldgemma2)}"
    probs = verdict.details["probabilities"]
    assert list(probs) == [c.id for c in POLICY.categories]
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    assert len({round(p, 7) for p in probs.values()}) > 1  # the policy text reaches the model
    top = max(probs, key=probs.get)
    assert verdict.probability_unsafe == probs[top]
    assert verdict.category == POLICY.category(top).label
    assert verdict.rating == (UNSAFE if probs[top] >= 0.5 else SAFE)  # default threshold
    assert verdict.valid and verdict.parse_status == OK


@pytest.mark.slow
def test_shieldgemma2_probability_is_the_models_yes_probability(sg2):
    """Cross-check one category against the model called directly, the way its model card
    does: probabilities[:, 0] is "Yes" (violates the policy)."""
    import torch

    image = _image(8)
    probs = sg2.judge(image).details["probabilities"]
    o3 = POLICY.category("O3")
    inputs = sg2.processor(images=[image], custom_policies={"x": shieldgemma2_policy_text(o3)},
                           policies=["x"], return_tensors="pt")
    with torch.inference_mode():
        out = sg2.model(**inputs)
    yes = out.probabilities[0, 0].item()
    assert out.probabilities[0].sum().item() == pytest.approx(1.0, abs=1e-6)
    assert probs["O3"] == pytest.approx(yes, abs=1e-5)
    assert abs(yes - out.probabilities[0, 1].item()) > 1e-4  # "No" would be told apart


@pytest.mark.slow
def test_shieldgemma2_sends_one_prompt_per_category_with_its_policy_text(sg2, monkeypatch):
    processor = sg2.processor
    calls = []
    original = type(processor).__call__

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append((kwargs, out))
        return out

    monkeypatch.setattr(type(processor), "__call__", spy)
    sg2.judge(_image())
    (kwargs, inputs), = calls
    assert kwargs["policies"] == [c.id for c in POLICY.categories]
    assert inputs["input_ids"].shape[0] == len(POLICY.categories)
    first = processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=False)
    assert shieldgemma2_policy_text(POLICY.category("O1")) in first
    assert "Does the image violate the above policy?" in first
    assert "No Dangerous Content" not in first  # the built-in policies are not asked


@pytest.mark.slow
def test_shieldgemma2_is_deterministic_and_batches_like_single_images(sg2, tiny_shieldgemma2):
    images = [_image(4), _image(5, size=(64, 40)), _image(6)]
    single = [sg2.judge(img).details["probabilities"] for img in images]
    sg2.max_prompts = 2 * len(POLICY.categories)  # two images per forward: chunks of 2 and 1
    batch = [v.details["probabilities"] for v in sg2.judge_batch(images, ["a", "b", "c"])]
    for one, many in zip(single, batch, strict=True):
        assert list(one) == list(many)
        np.testing.assert_allclose(list(one.values()), list(many.values()), atol=1e-5)
    assert single[0] != single[1]  # the image matters
    # A fresh judge loading the same folder gives exactly the same numbers.
    again = ShieldGemma2Judge(ModelConfig(model=str(tiny_shieldgemma2)), POLICY)
    assert again.judge(images[0]).details["probabilities"] == single[0]


@pytest.mark.slow
def test_shieldgemma2_verdict_follows_the_threshold(sg2):
    image = _image(7)
    probs = sg2.judge(image).details["probabilities"]
    top_id = max(probs, key=probs.get)
    top = probs[top_id]

    def with_threshold(t: float) -> ShieldGemma2Judge:
        judge = ShieldGemma2Judge(sg2.config, POLICY, threshold=t, model=sg2.model,
                                  processor=sg2.processor)
        assert f"+t{t:g}+" in judge.version
        return judge

    below = with_threshold(max(0.0, top - 1e-4)).judge(image)
    above = with_threshold(min(1.0, top + 1e-4)).judge(image)
    assert below.rating == UNSAFE and below.category == POLICY.category(top_id).label
    assert above.rating == SAFE and above.category == POLICY.category(top_id).label
    assert below.probability_unsafe == above.probability_unsafe == top
    with pytest.raises(ValueError, match="threshold"):
        ShieldGemma2Judge(sg2.config, POLICY, threshold=1.5)


@pytest.mark.slow
def test_shieldgemma2_refuses_a_checkpoint_of_another_model(tiny_llava):  # noqa: F811
    from spairs_assets.models.loading import ModelLoadError

    judge = ShieldGemma2Judge(ModelConfig(model=str(tiny_llava)), POLICY, setting="bench.sg")
    with pytest.raises(ModelLoadError, match=r"bench\.sg\.model.*'llava'.*not ShieldGemma 2"):
        judge.judge(_image())


# ---- instruction adherence asked of a judge ---------------------------------------------------

OBJECT_INSTRUCTION = {"instruction_id": "ins-1", "instruction": "Replace the knife in her hand with a spoon.",
                      "feature_kind": "object", "feature": "knife", "replacement": "spoon",
                      "edit_kind": "replace"}


def _object_edit(n: int = 1) -> dict:
    return {"edit_id": f"edit-{n}", "kind": "edit", "instruction_id": "ins-1", "status": "ok",
            "source_image_id": "src", "edited_image_id": f"edited-{n}"}


@pytest.mark.parametrize("raw, expected", [
    ('{"followed": true, "rationale": "The knife is now a spoon."}', (True, "ok")),
    ('Sure. {"followed": "no", "rationale": "Nothing changed."}', (False, "ok")),
    ('{"followed": "maybe"}', (None, "invalid_value")),
    ('{"rationale": "unclear"}', (None, "invalid_value")),
    ("It looks fine to me.", (None, "no_json")),
])
def test_adherence_answers_are_parsed_and_never_guessed(raw, expected):
    from spairs_assets.verification.asked_adherence import parse_adherence_answer

    assert parse_adherence_answer(raw)[:2] == expected


def test_adherence_is_asked_with_both_images_once_per_edit(server, tmp_path):
    from spairs_assets.storage import ItemCache, Storage
    from spairs_assets.verification.asked_adherence import asked_adherence

    server.set_script(['{"followed": false, "rationale": "The knife is still there."}'])
    judge, cache = _openai_judge(), ItemCache(Storage(tmp_path), "verification")
    images = {"src": _image(1), "edited-1": _image(2), "edited-2": _image(3)}
    edits = [_object_edit(1), _object_edit(2)]
    answers, stats = asked_adherence(edits, {"ins-1": OBJECT_INSTRUCTION}, "api", judge,
                                     images.__getitem__, cache)
    assert {k: v["followed"] for k, v in answers.items()} == {"edit-1": False, "edit-2": False}
    assert answers["edit-1"]["rationale"] == "The knife is still there." and stats.computed == 2
    request = server.requests[0]
    assert len(request.image_urls()) == 2  # the source, then the edit
    assert "Replace the knife in her hand with a spoon." in request.texts()[0]
    # A rerun asks nothing again.
    again, stats = asked_adherence(edits, {"ins-1": OBJECT_INSTRUCTION}, "api", judge,
                                   images.__getitem__, cache)
    assert again == answers and stats.computed == 0 and len(server.requests) == 2


def test_verification_asks_the_adherence_judge_only_what_detectors_cannot_read(server, tmp_path):
    from spairs_assets.config import VerificationConfig
    from spairs_assets.storage import ItemCache, Storage
    from spairs_assets.verification.stage import VerificationStats, _adherence

    server.set_script(['{"followed": true, "rationale": "Spoon."}'])
    cfg = VerificationConfig(judges=[
        JudgeConfig(name="ocr-lexicon", kind="ocr-lexicon"),
        JudgeConfig(name="api", kind="openai", endpoint=OpenAIEndpointConfig(model="guard-model"))],
        adherence_judge="api")
    images = {"src": _image(1), "edited-1": _image(2)}
    symbol = {**OBJECT_INSTRUCTION, "instruction_id": "ins-2", "feature_kind": "symbol",
              "feature": "knife", "replacement": "spoon"}
    edits = [_object_edit(1), {**_object_edit(2), "instruction_id": "ins-2", "edited_image_id": "edited-1"}]
    stats = VerificationStats()
    out = _adherence(edits, {"ins-1": OBJECT_INSTRUCTION, "ins-2": symbol}, {"api": _openai_judge()},
                     images.__getitem__, cfg, ItemCache(Storage(tmp_path), "verification"), stats)
    assert out["edit-1"] == (True, "asked api: followed (Spoon.)")
    assert out["edit-2"][0] is False and "symbols in the edit" in out["edit-2"][1]  # the detector's
    assert len(server.requests) == 1 and stats.adherence.computed == 1


def test_adherence_judge_must_name_a_vlm_or_openai_judge():
    from spairs_assets.config import VerificationConfig

    with pytest.raises(ValueError, match="adherence_judge 'ocr-lexicon' must name a vlm or openai"):
        VerificationConfig(judges=[JudgeConfig(name="ocr-lexicon", kind="ocr-lexicon")],
                           adherence_judge="ocr-lexicon")


@pytest.mark.slow
def test_adherence_asked_of_a_tiny_vlm_records_its_unusable_answer(vlm_judges, tmp_path):
    from spairs_assets.storage import ItemCache, Storage
    from spairs_assets.verification.asked_adherence import asked_adherence

    judge, _ = vlm_judges
    images = {"src": _image(1), "edited-1": _image(2)}
    answers, stats = asked_adherence([_object_edit(1)], {"ins-1": OBJECT_INSTRUCTION}, "vlm", judge,
                                     images.__getitem__, ItemCache(Storage(tmp_path), "verification"))
    answer = answers["edit-1"]
    # Random weights: whatever it says is kept verbatim and never read as a yes or a no.
    assert answer["followed"] is None and answer["parse_status"] in ("no_json", "invalid_json", "invalid_value")
    assert stats.computed == 1 and isinstance(answer["raw"], str)
