"""A real local HTTP server that speaks the OpenAI chat completions API, for tests.

It runs `http.server` in a thread on a random free port of 127.0.0.1, records every request
(path, headers, parsed JSON body) so tests can check what the client sent (the image as a data
URL, the key as a Bearer token), and answers from a script: each entry is either a string (a
successful completion with that text), a `Reply` (any status, body, headers, logprobs, or a
dropped connection), and the last entry repeats once the script runs out.

    with FakeOpenAIServer(["first answer", Reply(status=500), "second"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str | None = None
    status: int = 200
    body: Any = None  # raw JSON body; overrides `text`
    headers: dict[str, str] = field(default_factory=dict)
    logprobs: list[dict[str, Any]] | None = None  # [{"token", "logprob", "top_logprobs"}]
    drop_connection: bool = False  # close the socket without answering


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def content_parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                parts.extend(content)
        return parts

    def image_urls(self) -> list[str]:
        return [p["image_url"]["url"] for p in self.content_parts() if p.get("type") == "image_url"]

    def texts(self) -> list[str]:
        return [p["text"] for p in self.content_parts() if p.get("type") == "text"]


class FakeOpenAIServer:
    def __init__(self, script: list[str | Reply] | None = None, *, model: str = "fake-model"):
        self.script: list[str | Reply] = list(script or ["{}"])
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set_script(self, script: list[str | Reply]) -> None:
        with self._lock:
            self.script = list(script)

    # ---- behaviour ---------------------------------------------------------------------------
    def _next_reply(self) -> Reply:
        with self._lock:
            item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return Reply(text=item) if isinstance(item, str) else item

    def _completion(self, reply: Reply) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.text or ""},
            "finish_reason": "stop",
        }
        if reply.logprobs is not None:
            choice["logprobs"] = {"content": reply.logprobs}
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": self.model,
            "choices": [choice],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with fake._lock:
                    fake.requests.append(
                        RecordedRequest(
                            "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                        )
                    )
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = fake._next_reply()
                if reply.drop_connection:
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply.body is not None:
                    payload = reply.body
                elif reply.status >= 400:
                    payload = {"error": {"message": f"scripted failure {reply.status}"}}
                else:
                    payload = fake._completion(reply)
                self._send(reply.status, payload, reply.headers)

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
