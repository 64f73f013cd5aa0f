"""The OpenAI-compatible client and the `openai` instruction generator, against a real local
HTTP server that speaks the chat completions API."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket

import numpy as np
import pytest
from PIL import Image

from spairs_assets.config import InstructionsConfig, OpenAIEndpointConfig
from spairs_assets.instructions.base import GenerationFailed, InstructionGenerator, SeedImage
from spairs_assets.instructions.model_backends import (
    PROMPT_VERSION,
    OpenAIInstructionGenerator,
    build_model_generator,
    parse_instruction_answer,
)
from spairs_assets.models.openai_chat import EndpointConfigError, OpenAIChatClient, OpenAIError
from spairs_assets.policy import load_policy
from spairs_assets_tests.openai_server import FakeOpenAIServer, Reply

KEY = "sk-test-SECRET-123456"
GOOD = json.dumps(
    {
        "feature": "HURT",
        "feature_kind": "text",
        "edit_kind": "replace",
        "replacement": "HELP",
        "instruction": 'Replace the word "HURT" on the sign with "HELP". '
        "Keep everything else unchanged.",
    }
)


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAIServer([GOOD]) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield srv


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    config = OpenAIEndpointConfig(model="judge-model", max_retries=2, timeout_s=5, max_tokens=64)
    with OpenAIChatClient(config, setting="instructions.openai", sleep=sleeps.append) as c:
        yield c


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))


def _decode_data_url(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_request_carries_bearer_key_model_settings_and_the_image_as_png_data_url(
    client, server, image
):
    assert client.complete("Assess this.", [image], system="You are a judge.") == GOOD
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.authorization == f"Bearer {KEY}"
    body = request.body
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 64
    assert body["messages"][0] == {"role": "system", "content": "You are a judge."}
    (url,) = request.image_urls()
    sent = _decode_data_url(url)
    assert sent.size == (30, 20)
    assert np.array_equal(np.asarray(sent.convert("RGB")), np.asarray(image))  # lossless
    assert request.texts() == ["Assess this."]
    assert "logprobs" not in body


def test_retries_a_500_then_succeeds(client, server, sleeps):
    server.set_script([Reply(status=500), "second time lucky"])
    response = client.chat("hi")
    assert response.text == "second time lucky"
    assert response.attempts == 2
    assert len(server.requests) == 2
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 30


def test_429_honours_retry_after(client, server, sleeps):
    server.set_script([Reply(status=429, headers={"Retry-After": "3"}), "ok"])
    assert client.complete("hi") == "ok"
    assert sleeps == [3.0]


def test_dropped_connection_is_retried(client, server, sleeps):
    server.set_script([Reply(drop_connection=True), "ok"])
    assert client.complete("hi") == "ok"
    assert len(sleeps) == 1


def test_gives_up_after_max_retries_and_never_reveals_the_key(client, server, sleeps, caplog):
    server.set_script([Reply(status=503, body={"error": f"bad key {KEY}"})])
    with caplog.at_level(logging.DEBUG), pytest.raises(OpenAIError) as exc:
        client.complete("hi")
    assert len(server.requests) == 3  # 1 + max_retries
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential backoff
    assert "503" in str(exc.value)
    assert KEY not in str(exc.value)
    assert KEY not in caplog.text
    assert KEY not in repr(client)


def test_client_errors_are_not_retried(client, server, sleeps):
    server.set_script([Reply(status=400), "never reached"])
    with pytest.raises(OpenAIError) as exc:
        client.complete("hi")
    assert exc.value.status == 400
    assert len(server.requests) == 1 and sleeps == []


def test_unreachable_server_fails_after_retries(monkeypatch, sleeps):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = OpenAIEndpointConfig(model="m", max_retries=1, timeout_s=2)
    with (
        OpenAIChatClient(config, sleep=sleeps.append) as c,
        pytest.raises(OpenAIError, match="ConnectError"),
    ):
        c.complete("hi")
    assert len(sleeps) == 1


def test_logprobs_are_requested_and_returned(client, server):
    tokens = [
        {
            "token": "Unsafe",
            "logprob": -0.1,
            "top_logprobs": [
                {"token": "Unsafe", "logprob": -0.1},
                {"token": "Safe", "logprob": -2.4},
            ],
        },
    ]
    server.set_script([Reply(text="Unsafe", logprobs=tokens)])
    response = client.chat("rate", logprobs=True, top_logprobs=2)
    assert server.requests[0].body["logprobs"] is True
    assert server.requests[0].body["top_logprobs"] == 2
    assert response.logprobs == tokens
    assert response.finish_reason == "stop" and response.usage["total_tokens"] == 15


def test_logprobs_absent_when_the_server_has_none(client, server):
    assert client.chat("rate", logprobs=True).logprobs is None


@pytest.mark.parametrize("missing", ["OPENAI_BASE_URL", "OPENAI_API_KEY"])
def test_missing_environment_variable_names_the_setting(monkeypatch, missing):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv(missing)
    with pytest.raises(EndpointConfigError) as exc:
        OpenAIChatClient(OpenAIEndpointConfig(model="m"), setting="instructions.openai")
    setting = "base_url_env" if missing == "OPENAI_BASE_URL" else "api_key_env"
    assert f"instructions.openai.{setting}" in str(exc.value)
    assert missing in str(exc.value)


def test_custom_env_var_names_are_used(monkeypatch, server):
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("MY_VLLM_URL", server.base_url)
    monkeypatch.setenv("MY_VLLM_KEY", "EMPTY")
    config = OpenAIEndpointConfig(model="m", base_url_env="MY_VLLM_URL", api_key_env="MY_VLLM_KEY")
    with OpenAIChatClient(config) as c:
        c.complete("hi")
    assert server.requests[0].authorization == "Bearer EMPTY"


# ---- the `openai` instruction generator ----------------------------------------------------


@pytest.fixture
def policy():
    return load_policy()


def _seed(policy, rating="Unsafe", category="O2", image=None):
    cat = policy.category(category)
    return SeedImage(
        image_id="abc",
        category=cat.key,
        category_id=cat.id,
        category_label=cat.label,
        rating=rating,
        image=image or Image.new("RGB", (32, 24), "white"),
    )


@pytest.fixture
def generator(server, policy):
    config = InstructionsConfig(generator="openai", openai={"model": "gpt-test", "max_retries": 1})
    gen = build_model_generator(config, policy)
    gen.client._sleep = lambda s: None
    return gen


def test_generator_turns_a_json_answer_into_an_instruction(generator, server, policy):
    assert isinstance(generator, OpenAIInstructionGenerator)
    assert isinstance(generator, InstructionGenerator)
    assert generator.generator_id == "openai:gpt-test"
    assert PROMPT_VERSION in generator.version and policy.fingerprint in generator.version
    (instruction,) = generator.generate(_seed(policy), "unsafe_to_safe")
    assert instruction.text.startswith('Replace the word "HURT"')
    assert (instruction.edit_kind, instruction.feature_kind) == ("replace", "text")
    assert (instruction.feature, instruction.replacement) == ("HURT", "HELP")
    assert instruction.direction == "unsafe_to_safe" and instruction.target_rating == "Safe"
    assert instruction.details["raw_answer"] == GOOD
    assert instruction.details["parse_status"] == "ok"
    # The prompt is rendered from the policy category and the direction, with the seed image.
    (prompt,) = server.requests[0].texts()
    category = policy.category("O2")
    assert category.label in prompt
    assert all(rule in prompt for rule in category.should_not)
    assert '"Unsafe"' in prompt and '"Safe"' in prompt
    assert len(server.requests[0].image_urls()) == 1


def test_generator_records_repairs(generator, server, policy):
    server.set_script(
        [
            "Here you go:\n```json\n{'feature': 'gun', 'feature_kind': 'object', "
            "'edit_kind': 'replace',"
            " 'replacement': 'umbrella', 'instruction': 'Replace the gun with an umbrella.',}\n```"
        ]
    )
    (instruction,) = generator.generate(_seed(policy, category="O6"), "unsafe_to_safe")
    assert instruction.details["parse_status"] == "repaired"
    assert instruction.replacement == "umbrella"


def test_generator_fails_with_the_raw_answer_when_there_is_no_json(generator, server, policy):
    server.set_script(["I cannot help with that."])
    with pytest.raises(GenerationFailed) as exc:
        generator.generate(_seed(policy), "unsafe_to_safe")
    assert exc.value.raw == "I cannot help with that."
    assert "no_json" in str(exc.value)


def test_generator_rejects_invalid_fields(generator, server, policy):
    bad = json.dumps(
        {"feature": "", "feature_kind": "colour", "edit_kind": "blur", "instruction": " "}
    )
    server.set_script([bad])
    with pytest.raises(GenerationFailed) as exc:
        generator.generate(_seed(policy), "unsafe_to_safe")
    message = str(exc.value)
    for field in ("feature", "feature_kind", "edit_kind", "instruction"):
        assert f"`{field}`" in message
    assert exc.value.raw == bad


def test_seed_with_the_wrong_rating_for_the_direction_is_skipped(generator, server, policy):
    assert generator.generate(_seed(policy, rating="Safe"), "unsafe_to_safe") == []
    assert server.requests == []


def test_safe_to_unsafe_direction(generator, server, policy):
    server.set_script(
        [
            json.dumps(
                {
                    "feature": "the sign",
                    "feature_kind": "text",
                    "edit_kind": "add",
                    "replacement": "I WILL HURT YOU",
                    "instruction": "Write I WILL HURT YOU on the sign.",
                }
            )
        ]
    )
    (instruction,) = generator.generate(_seed(policy, rating="Safe"), "safe_to_unsafe")
    assert instruction.edit_kind == "add" and instruction.target_rating == "Unsafe"
    prompt = server.requests[0].texts()[0]
    assert "make it violate the category" in prompt or "becomes Unsafe" in prompt


def test_endpoint_failure_propagates(generator, server, policy):
    server.set_script([Reply(status=500)])
    with pytest.raises(OpenAIError):
        generator.generate(_seed(policy), "unsafe_to_safe")


def test_generator_fails_early_without_endpoint_env(monkeypatch, policy):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = InstructionsConfig(generator="openai", openai={"model": "m"})
    with pytest.raises(EndpointConfigError, match="instructions.openai.base_url_env"):
        build_model_generator(config, policy)


# ---- validation rules, on scripted answers -------------------------------------------------


def _answer(**fields):
    base = {
        "feature": "knife",
        "feature_kind": "object",
        "edit_kind": "replace",
        "replacement": "spoon",
        "instruction": "Replace the knife with a spoon.",
    }
    base.update(fields)
    return json.dumps(base)


@pytest.mark.parametrize(
    ("direction", "fields", "problem"),
    [
        ("unsafe_to_safe", {"edit_kind": "add"}, "cannot make an image Safe"),
        (
            "safe_to_unsafe",
            {"edit_kind": "remove", "replacement": None},
            "cannot make an image Unsafe",
        ),
        ("unsafe_to_safe", {"replacement": None}, "`replacement` is needed"),
        ("unsafe_to_safe", {"edit_kind": "remove", "replacement": "spoon"}, "must be null"),
        ("unsafe_to_safe", {"replacement": "Knife"}, "changes nothing"),
        ("unsafe_to_safe", {"instruction": "x" * 601}, "longer than"),
        ("unsafe_to_safe", {"feature_kind": None}, "`feature_kind`"),
    ],
)
def test_validation_rules(direction, fields, problem):
    with pytest.raises(GenerationFailed, match=problem):
        parse_instruction_answer(_answer(**fields), direction)


def test_remove_with_a_null_like_replacement_is_accepted():
    instruction = parse_instruction_answer(
        _answer(edit_kind="remove", replacement="none"), "unsafe_to_safe"
    )
    assert instruction.edit_kind == "remove" and instruction.replacement is None


def test_kinds_are_case_insensitive():
    instruction = parse_instruction_answer(
        _answer(edit_kind="Replace", feature_kind="OBJECT"), "unsafe_to_safe"
    )
    assert (instruction.edit_kind, instruction.feature_kind) == ("replace", "object")
