"""A small client for OpenAI-compatible chat endpoints (vLLM, SGLang, hosted APIs), on httpx.

Why not the `openai` package: we need one call (POST /chat/completions with an image), a
retry policy we control, and no extra dependency. The base URL and the API key come from the
environment variables named in `OpenAIEndpointConfig` (never from the config file, so keys stay
out of repositories); a missing variable is a clear error naming the setting. The key is sent
as a Bearer token and never logged or put in an error message.

Images travel inline as base64 PNG data URLs in an `image_url` content part, the form every
OpenAI-compatible server accepts. Retries with exponential backoff (honouring Retry-After) on
429, 5xx and connection errors; other 4xx answers fail at once.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from spairs_assets.config import OpenAIEndpointConfig

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


class OpenAIError(RuntimeError):
    """The endpoint failed (after retries) or answered something unusable."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class EndpointConfigError(ValueError):
    """A setting of the endpoint (its environment variables) is missing."""


@dataclass
class ChatResponse:
    text: str
    model: str | None = None
    finish_reason: str | None = None
    # One entry per generated token: {"token", "logprob", "top_logprobs": [{"token", "logprob"}]}
    logprobs: list[dict[str, Any]] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1


def image_data_url(image: Image.Image) -> str:
    """The image as a base64 PNG data URL (lossless, so the model sees the exact pixels)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_messages(
    prompt: str, images: Sequence[Image.Image] = (), system: str | None = None
) -> list[dict]:
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in images
    ]
    content.append({"type": "text", "text": prompt})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": content})
    return messages


class OpenAIChatClient:
    """Chat completions against one endpoint and model (see the module doc)."""

    def __init__(
        self,
        config: OpenAIEndpointConfig,
        *,
        setting: str = "openai",
        sleep: Callable[[float], None] = time.sleep,
        transport: Any = None,
    ):
        import httpx

        self.config = config
        self.setting = setting
        base_url = os.environ.get(config.base_url_env, "").strip()
        if not base_url:
            raise EndpointConfigError(
                f"setting `{setting}.base_url_env`: environment variable {config.base_url_env} is "
                "not set (it must hold the endpoint's base URL, e.g. http://localhost:8000/v1)"
            )
        if not base_url.startswith(("http://", "https://")):
            raise EndpointConfigError(
                f"setting `{setting}.base_url_env`: {config.base_url_env} must be an http(s) URL"
            )
        api_key = os.environ.get(config.api_key_env, "").strip()
        if not api_key:
            raise EndpointConfigError(
                f"setting `{setting}.api_key_env`: environment variable {config.api_key_env} is "
                "not set (servers without authentication accept any value, e.g. EMPTY)"
            )
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self._api_key = api_key
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            transport=transport,
        )

    @property
    def model(self) -> str:
        return self.config.model

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def chat(
        self,
        prompt: str,
        images: Sequence[Image.Image] = (),
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        seed: int | None = None,
    ) -> ChatResponse:
        """One chat completion: the user turn holds the images, then the prompt."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": build_messages(prompt, images, system),
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
        }
        if logprobs:
            body["logprobs"] = True
            if top_logprobs:
                body["top_logprobs"] = int(top_logprobs)
        if seed is not None:
            body["seed"] = int(seed)
        payload, attempts = self._post(body)
        return self._parse(payload, attempts, want_logprobs=logprobs)

    def complete(self, prompt: str, images: Sequence[Image.Image] = (), **kwargs: Any) -> str:
        """Just the answer text."""
        return self.chat(prompt, images, **kwargs).text

    def _post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        import httpx

        attempts = self.config.max_retries + 1
        last_error = "no attempt made"
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                last_error = f"{type(exc).__name__}: {self._redact(str(exc))}"
                status = None
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json(), attempt
                    except ValueError as exc:
                        raise OpenAIError(
                            f"{self.url} answered {status} with a body that is not JSON",
                            status=status,
                        ) from exc
                last_error = f"HTTP {status}: {self._redact(response.text[:500])}"
                if status not in RETRY_STATUSES:
                    raise OpenAIError(f"{self.url} failed: {last_error}", status=status)
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt < attempts:
                delay = (
                    retry_after
                    if retry_after is not None
                    else min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1) * (1 + 0.25 * random.random()))
                )
                log.warning(
                    "%s attempt %d/%d failed (%s); retrying in %.1f s",
                    self.url,
                    attempt,
                    attempts,
                    last_error.split(":")[0],
                    delay,
                )
                self._sleep(min(delay, MAX_BACKOFF_S))
        raise OpenAIError(f"{self.url} failed after {attempts} attempt(s): {last_error}")

    def _parse(
        self, payload: dict[str, Any], attempts: int, *, want_logprobs: bool
    ) -> ChatResponse:
        try:
            choice = payload["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise OpenAIError(f"{self.url}: no choices[0].message in the answer") from exc
        content = message.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if content is None:
            content = ""
        tokens = None
        if want_logprobs and isinstance(choice.get("logprobs"), dict):
            raw_tokens = choice["logprobs"].get("content") or []
            tokens = [
                {
                    "token": t.get("token"),
                    "logprob": t.get("logprob"),
                    "top_logprobs": [
                        {"token": c.get("token"), "logprob": c.get("logprob")}
                        for c in (t.get("top_logprobs") or [])
                    ],
                }
                for t in raw_tokens
                if isinstance(t, dict)
            ]
        return ChatResponse(
            text=str(content),
            model=payload.get("model"),
            finish_reason=choice.get("finish_reason"),
            logprobs=tokens,
            usage=payload.get("usage") or {},
            attempts=attempts,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatClient(model={self.config.model!r}, base_url={self.base_url!r})"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
