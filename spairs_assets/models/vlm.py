"""A generic vision-language chat model on transformers (`AutoModelForImageTextToText`).

One class for every VLM the platform talks to: instruction generators, VLM judges and the
benchmark. It loads any checkpoint that `AutoProcessor` + `AutoModelForImageTextToText` can
(LLaVA, LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL, Idefics3, Gemma 3, PaliGemma, ...), builds the
prompt with the processor's own chat template, and decodes greedily so an answer is a pure
function of (model, revision, images, prompt): the platform caches answers under that key.

- `generate(images, prompt, system=None)`: the assistant's answer as text.
- `next_token_probabilities(images, prompt, options)`: for scoring judges, the probability of
  each option as the first answer token (softmax over the options' first tokens), e.g.
  P("Unsafe") vs P("Safe").

torch and transformers are imported inside methods only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from spairs_assets.config import ModelConfig
from spairs_assets.models.loading import (
    ResolvedModel,
    ensure_processors_work_without_torchvision,
    resolve_model,
    resolved_revision,
)

log = logging.getLogger(__name__)


class VisionChatModel:
    """A VLM, its processor and its chat template, loaded once (see the module doc)."""

    def __init__(
        self, model: Any, processor: Any, resolved: ResolvedModel, *, max_new_tokens: int = 256
    ):
        self.model = model
        self.processor = processor
        self.resolved = resolved
        self.max_new_tokens = max_new_tokens
        self.revision = resolved_revision(resolved, model)
        self.name = resolved.short_name
        self._lock = threading.Lock()  # one generate at a time per model object

    @classmethod
    def from_config(
        cls, config: ModelConfig, *, setting: str = "model", base_dir: str | Path | None = None
    ) -> VisionChatModel:
        """Load from a hub id or local folder (safetensors only; offline if HF_HUB_OFFLINE=1).

        `setting` is where `config` sits in spairs.yaml, for error messages.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        resolved = resolve_model(config, setting, base_dir=base_dir)
        # Processors of video-capable VLMs (Qwen2-VL, ...) cannot be built without torchvision;
        # this drops their video part only when torchvision is unusable (see loading.py).
        ensure_processors_work_without_torchvision()
        kwargs = resolved.from_pretrained_kwargs()
        processor_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("dtype", "use_safetensors")
        }
        processor = AutoProcessor.from_pretrained(resolved.source, **processor_kwargs)
        if resolved.device != "cpu":
            kwargs["device_map"] = resolved.device  # load straight onto the accelerator
        model = AutoModelForImageTextToText.from_pretrained(resolved.source, **kwargs)
        if resolved.device == "cpu":
            model.to("cpu")
        model.eval()
        if getattr(processor, "chat_template", None) is None:
            raise ValueError(
                f"setting `{setting}.model`: {resolved.source} has no chat template; "
                "use an instruction-tuned checkpoint (or add chat_template.jinja to the folder)"
            )
        return cls(model, processor, resolved, max_new_tokens=config.max_new_tokens)

    # ---- prompt building ---------------------------------------------------------------------
    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def render(self, n_images: int, prompt: str, system: str | None = None) -> str:
        """The chat-templated text for one user turn with `n_images` images, ready for the
        assistant's answer.

        A system prompt is given as a system message. Some templates drop or reject system
        messages (LLaVA 1.5 renders it without a role, Gemma's may raise): when the rendered text
        does not contain it, it is put before the user's text instead, so it is never lost.
        """
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        if system is None:
            messages = [{"role": "user", "content": [*content, {"type": "text", "text": prompt}]}]
            return self._apply(messages)
        messages = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": [*content, {"type": "text", "text": prompt}]},
        ]
        try:
            text = self._apply(messages)
            if system in text:
                return text
        except Exception as exc:  # noqa: BLE001 - jinja2 TemplateError, ValueError, ...
            log.debug("chat template rejected a system message: %s", exc)
        merged = f"{system}\n\n{prompt}"
        return self._apply(
            [{"role": "user", "content": [*content, {"type": "text", "text": merged}]}]
        )

    def _apply(self, messages: list[dict[str, Any]]) -> str:
        return self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def _inputs(self, images: Sequence[Image.Image], text: str):
        import torch

        images = [img.convert("RGB") for img in images]
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt")
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.resolved.device)
                if value.is_floating_point():
                    value = value.to(self.model.dtype)
            moved[key] = value
        return moved

    # ---- inference -----------------------------------------------------------------------------
    def generate(
        self,
        images: Sequence[Image.Image],
        prompt: str,
        *,
        system: str | None = None,
        max_new_tokens: int | None = None,
    ) -> str:
        """The model's answer (greedy decoding, special tokens removed, whitespace stripped)."""
        import torch

        text = self.render(len(images), prompt, system)
        inputs = self._inputs(images, text)
        tok = self.tokenizer
        pad = getattr(tok, "pad_token_id", None)
        if pad is None:
            pad = getattr(tok, "eos_token_id", None)
        with self._lock, torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
            )
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        return self.processor.decode(new_tokens, skip_special_tokens=True).strip()

    def option_token_ids(self, options: Sequence[str], answer_prefix: str = "") -> dict[str, int]:
        """Each option's first token, as it would follow `answer_prefix` in the answer.

        Raises ValueError when two options start with the same token (their probabilities could
        not be told apart).
        """
        tok = self.tokenizer
        prefix_ids = tok.encode(answer_prefix, add_special_tokens=False) if answer_prefix else []
        ids: dict[str, int] = {}
        for option in options:
            full = tok.encode(answer_prefix + option, add_special_tokens=False)
            if full[: len(prefix_ids)] == prefix_ids and len(full) > len(prefix_ids):
                ids[option] = full[len(prefix_ids)]
            else:  # the prefix and the option merge into one token: use the option alone
                alone = tok.encode(option, add_special_tokens=False)
                if not alone:
                    raise ValueError(f"option {option!r} has no tokens")
                ids[option] = alone[0]
        seen: dict[int, str] = {}
        for option, token in ids.items():
            if token in seen:
                raise ValueError(
                    f"options {seen[token]!r} and {option!r} start with the same token "
                    f"({tok.convert_ids_to_tokens(token)!r}); their probabilities are not separable"
                )
            seen[token] = option
        return ids

    def next_token_probabilities(
        self,
        images: Sequence[Image.Image],
        prompt: str,
        options: Sequence[str],
        *,
        system: str | None = None,
        answer_prefix: str = "",
    ) -> dict[str, float]:
        """P(option) for each option as the first token of the answer, renormalised over the
        options (a softmax over the options' first-token logits), so they sum to 1.

        `answer_prefix` is text the assistant's answer is forced to start with before the option
        (e.g. '{"rating": "' for a LlavaGuard-style JSON answer).
        """
        import torch

        if not options:
            raise ValueError("options must not be empty")
        token_ids = self.option_token_ids(options, answer_prefix)
        text = self.render(len(images), prompt, system) + answer_prefix
        inputs = self._inputs(images, text)
        with self._lock, torch.inference_mode():
            logits = self.model(**inputs).logits[0, -1].float()
        chosen = logits[list(token_ids.values())]
        probs = torch.softmax(chosen, dim=0).tolist()
        return dict(zip(token_ids, probs, strict=True))

    def __repr__(self) -> str:
        device = self.resolved.device
        return f"VisionChatModel({self.name!r}, revision={self.revision!r}, device={device!r})"
