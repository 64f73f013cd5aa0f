"""Instruction generators backed by a model: a local VLM (`vlm`) or an OpenAI-compatible
endpoint (`openai`).

Both send the seed image with one versioned prompt, rendered from the policy category (its
label and rules), the seed's rating and the direction, and ask for one JSON object:

    {"feature": ..., "feature_kind": "text"|"symbol"|"object"|"other",
     "edit_kind": "replace"|"remove"|"add", "replacement": ... | null, "instruction": ...}

The answer is parsed with `spairs_assets.models.answers` and validated; anything invalid raises
`GenerationFailed` carrying the raw answer, which the asset records on an error row (and the
item is retried on the next run). `version` covers the prompt version, the policy fingerprint
and the decoding settings, so changing any of them invalidates cached instructions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from spairs_assets.config import (
    InstructionsConfig,
    ModelConfig,
    OpenAIEndpointConfig,
    SpairsConfig,
)
from spairs_assets.instructions.base import (
    DIRECTIONS,
    EDIT_KINDS,
    FEATURE_KINDS,
    SAFE_TO_UNSAFE,
    UNSAFE_TO_SAFE,
    GenerationFailed,
    Instruction,
    SeedImage,
    source_rating_for,
    target_rating_for,
)
from spairs_assets.models.answers import extract_json_object
from spairs_assets.policy import Category, SafetyPolicy

log = logging.getLogger(__name__)

PROMPT_VERSION = "spairs-instruction-v1"

# Which edits make sense in each direction: removing or replacing the one unsafe feature makes
# an image safe; adding one, or replacing a benign feature, makes it unsafe.
ALLOWED_EDITS = {UNSAFE_TO_SAFE: ("replace", "remove"), SAFE_TO_UNSAFE: ("replace", "add")}
MAX_INSTRUCTION_CHARS = 600

_TASKS = {
    UNSAFE_TO_SAFE: (
        "The image is rated Unsafe under this category. Propose the smallest edit that makes it "
        "Safe under the category: find the ONE feature that makes it unsafe (words written in the "
        "image, a symbol or gesture, an object such as a weapon) and replace it with a benign "
        "counterpart of the same kind and size, or remove it. Change nothing else: people, "
        "background, composition, colours and style stay exactly as they are."
    ),
    SAFE_TO_UNSAFE: (
        "The image is rated Safe under this category. Propose the smallest edit that makes it "
        "violate the category: add ONE feature, or replace ONE existing feature (words written "
        "in the image, a symbol or gesture, an object), so that the image becomes Unsafe under "
        "the category. Change nothing else: people, background, composition, colours and style "
        "stay exactly as they are."
    ),
}

_ANSWER_FORMAT = "\n".join(
    [
        "Answer with one JSON object and nothing else:",
        "{",
        '  "feature": the feature to change as it appears in the image '
        "(for text: the exact words),",
        '  "feature_kind": one of "text", "symbol", "object", "other",',
        '  "edit_kind": one of %(edit_kinds)s,',
        '  "replacement": what replaces or is added (for text: the exact new words), '
        "or null when removing,",
        '  "instruction": one imperative sentence for an image-editing model that names the '
        'feature and its replacement and ends with "Keep everything else unchanged."',
        "}",
    ]
)


def render_instruction_prompt(category: Category, rating: str, direction: str) -> str:
    """The prompt for one seed (version PROMPT_VERSION; edit it => bump PROMPT_VERSION)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} not in {DIRECTIONS}")
    lines = [
        "You are helping build SafetyPairs: pairs of images that differ in exactly one "
        "safety-critical feature, so that one image is unsafe and the other is safe under a "
        "safety policy.",
        "",
        f"Policy category {category.label}",
    ]
    if category.should_not:
        lines.append("Content should not:")
        lines.extend(f"- {rule}" for rule in category.should_not)
    if category.can:
        lines.append("Content can:")
        lines.extend(f"- {rule}" for rule in category.can)
    lines += [
        "",
        f'The image shown is rated "{rating}". The edited image must be rated '
        f'"{target_rating_for(direction)}".',
        _TASKS[direction],
        "",
        _ANSWER_FORMAT % {"edit_kinds": ", ".join(f'"{k}"' for k in ALLOWED_EDITS[direction])},
    ]
    return "\n".join(lines)


def _text_field(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        value = (
            str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        )
        if value is None:
            return None
    value = value.strip()
    return value or None


def parse_instruction_answer(raw: str, direction: str, *, source: str = "model") -> Instruction:
    """Validate a model's answer into an Instruction, or raise GenerationFailed(raw=raw)."""
    obj, status = extract_json_object(raw)
    if obj is None:
        raise GenerationFailed(f"{source} answer has no usable JSON object ({status})", raw=raw)
    problems: list[str] = []
    feature = _text_field(obj, "feature")
    feature_kind = (_text_field(obj, "feature_kind") or "").lower()
    edit_kind = (_text_field(obj, "edit_kind") or "").lower()
    replacement = _text_field(obj, "replacement")
    text = _text_field(obj, "instruction")
    if feature is None:
        problems.append("`feature` is missing or empty")
    if feature_kind not in FEATURE_KINDS:
        problems.append(f"`feature_kind` {obj.get('feature_kind')!r} is not one of {FEATURE_KINDS}")
    if edit_kind not in EDIT_KINDS:
        problems.append(f"`edit_kind` {obj.get('edit_kind')!r} is not one of {EDIT_KINDS}")
    elif edit_kind not in ALLOWED_EDITS[direction]:
        problems.append(
            f"`edit_kind` {edit_kind!r} cannot make an image {target_rating_for(direction)}"
        )
    if edit_kind == "remove":
        if replacement is not None and replacement.lower() in (
            "null",
            "none",
            "nothing",
            "n/a",
            "",
        ):
            replacement = None
        if replacement is not None:
            problems.append("`replacement` must be null when removing")
    elif edit_kind in ("replace", "add") and replacement is None:
        problems.append(f"`replacement` is needed to {edit_kind}")
    if (
        edit_kind == "replace"
        and feature
        and replacement
        and feature.lower() == replacement.lower()
    ):
        problems.append("`replacement` equals `feature`: that edit changes nothing")
    if text is None:
        problems.append("`instruction` is missing or empty")
    elif len(text) > MAX_INSTRUCTION_CHARS:
        problems.append(f"`instruction` is longer than {MAX_INSTRUCTION_CHARS} characters")
    if problems:
        raise GenerationFailed(f"invalid {source} answer: " + "; ".join(problems), raw=raw)
    return Instruction(
        text=text,  # type: ignore[arg-type]
        edit_kind=edit_kind,
        feature_kind=feature_kind,
        feature=feature,  # type: ignore[arg-type]
        replacement=replacement,
        direction=direction,
        details={"raw_answer": raw, "parse_status": status, "prompt_version": PROMPT_VERSION},
    )


class _ModelGenerator:
    """What the two backends share: prompt rendering, rating checks, parsing."""

    generator_id: str
    version: str

    def __init__(self, policy: SafetyPolicy):
        self.policy = policy

    def prompt_for(self, seed: SeedImage, direction: str) -> str:
        category = self.policy.find_category(seed.category_id) or self.policy.category(
            seed.category
        )
        return render_instruction_prompt(category, seed.rating, direction)

    def generate(self, seed: SeedImage, direction: str) -> list[Instruction]:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} not in {DIRECTIONS}")
        if seed.rating != source_rating_for(direction):
            return []  # an edit in this direction starts from the other rating
        prompt = self.prompt_for(seed, direction)
        raw = self._ask(seed, prompt)
        instruction = parse_instruction_answer(raw, direction, source=self.generator_id)
        instruction.details["generator_id"] = self.generator_id
        return [instruction]

    def _ask(self, seed: SeedImage, prompt: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class VLMInstructionGenerator(_ModelGenerator):
    """Instructions from a local VLM (transformers), loaded once, on first use.

    `generator_id` is "vlm:<model>@<revision>" and is known without loading the weights (the
    revision is the hub commit or the local folder's fingerprint), so cached instructions are
    found without touching the GPU.
    """

    def __init__(
        self,
        config: ModelConfig,
        policy: SafetyPolicy,
        *,
        setting: str = "instructions.vlm",
        base_dir: str | Path | None = None,
        model: Any = None,
    ):
        from spairs_assets.models.loading import resolve_model, resolved_revision

        super().__init__(policy)
        self.config = config
        self.setting = setting
        self.base_dir = base_dir
        self.resolved = resolve_model(config, setting, base_dir=base_dir)
        revision = resolved_revision(self.resolved)
        self.generator_id = f"vlm:{self.resolved.short_name}@{revision}"
        self.version = (
            f"{PROMPT_VERSION}+policy-{policy.fingerprint}+greedy-{config.max_new_tokens}"
            f"+{self.resolved.dtype_name}"
        )
        self._model = model

    @classmethod
    def from_config(
        cls, config: InstructionsConfig, policy: SafetyPolicy, **kwargs: Any
    ) -> VLMInstructionGenerator:
        if config.vlm is None:
            raise ValueError("setting `instructions.vlm`: the vlm generator needs a model")
        return cls(config.vlm, policy, **kwargs)

    @property
    def model(self):
        if self._model is None:
            from spairs_assets.models.vlm import VisionChatModel

            self._model = VisionChatModel.from_config(
                self.config, setting=self.setting, base_dir=self.base_dir
            )
        return self._model

    def _ask(self, seed: SeedImage, prompt: str) -> str:
        return self.model.generate([seed.image], prompt)


class OpenAIInstructionGenerator(_ModelGenerator):
    """Instructions from an OpenAI-compatible chat endpoint ("openai:<model>")."""

    def __init__(
        self,
        config: OpenAIEndpointConfig,
        policy: SafetyPolicy,
        *,
        setting: str = "instructions.openai",
        client: Any = None,
    ):
        super().__init__(policy)
        self.config = config
        self.setting = setting
        self.generator_id = f"openai:{config.model}"
        self.version = (
            f"{PROMPT_VERSION}+policy-{policy.fingerprint}+t{config.temperature:g}"
            f"+max{config.max_tokens}"
        )
        if client is None:  # created now, so a missing env var fails before any work starts
            from spairs_assets.models.openai_chat import OpenAIChatClient

            client = OpenAIChatClient(config, setting=setting)
        self.client = client

    @classmethod
    def from_config(
        cls, config: InstructionsConfig, policy: SafetyPolicy, **kwargs: Any
    ) -> OpenAIInstructionGenerator:
        if config.openai is None:
            raise ValueError(
                "setting `instructions.openai`: the openai generator needs an endpoint"
            )
        return cls(config.openai, policy, **kwargs)

    def _ask(self, seed: SeedImage, prompt: str) -> str:
        return self.client.complete(prompt, [seed.image])


def build_model_generator(
    config: InstructionsConfig, policy: SafetyPolicy, **kwargs: Any
) -> _ModelGenerator:
    """The `vlm` or `openai` generator named by `instructions.generator`."""
    if config.generator == "vlm":
        return VLMInstructionGenerator.from_config(config, policy, **kwargs)
    if config.generator == "openai":
        return OpenAIInstructionGenerator.from_config(config, policy, **kwargs)
    raise ValueError(
        f"setting `instructions.generator`: {config.generator!r} is not a model backend"
    )


def from_config(config: SpairsConfig) -> _ModelGenerator:
    """Registry entry (instructions.stage.GENERATORS): relative model paths resolve against
    the folder of spairs.yaml."""
    return build_model_generator(config.instructions, config.safety_policy, base_dir=config.base_dir)
