"""How a test tells a fake provider what to answer, and how it inspects what the fake received.

    script = FakeScript()
    script.push(FakeReply(text="Hi there"), FakeReply(status=429, retry_after=1))
    app = create_openai_app(script)
    ...
    assert script.last_request.json["model"] == "gpt-4o"

Replies are consumed in order, one per request that passes authentication and validation (a request the
fake rejects with 400/401 does not consume one). When the queue is empty the fake answers a deterministic
default: a forced tool call when `tool_choice` forces one, otherwise an echo of the last user text.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeReply", "FakeScript", "RecordedRequest"]


@dataclass
class FakeReply:
    """What the next request gets.

    text:        assistant text. ``None`` means "Hello!" when there are no tool calls, and no text when there
                 are. ``""`` means an empty text.
    tool_calls:  ``[(name, arguments)]``; several entries are parallel calls.
    finish:      override the stop/finish reason, verbatim (OpenAI: "stop", "length", "tool_calls",
                 "content_filter"; Anthropic: "end_turn", "max_tokens", "stop_sequence", "tool_use",
                 "refusal", "pause_turn"). ``finish="refusal"`` on the OpenAI fake answers with
                 ``message.refusal = text`` and ``content = null`` (finish_reason "stop"), as the real API does.
    thinking:    Anthropic only: the thinking text of a ``thinking`` block, emitted when the request enables
                 thinking (``None`` → a fixed default sentence).
    status:      non-200 → the provider's real error body for that status (400, 401, 403, 404, 413, 429,
                 500, 503, 504, 529 …). ``error_type`` / ``error_message`` override the defaults.
    retry_after: seconds, sent as the ``retry-after`` header (on any status, usually 429/529/503).
    delay_s:     sleep before sending the response headers (to trigger client read timeouts).
    chunk_delay_s: streaming only: sleep between events.
    cut_stream_after: streaming only: after N SSE events close the connection abruptly (no terminating
                 chunk, no ``[DONE]`` / ``message_stop``).
    stream_error: streaming only: after ``stream_error_after`` events emit the provider's in-stream error
                 event with this error type (Anthropic ``event: error``; OpenAI ``data: {"error": …}``)
                 and end the stream.
    input_tokens / output_tokens: override the usage numbers (otherwise estimated from words).
    headers:     extra response headers.
    echo_headers: the error of ``status`` or ``stream_error`` also shows the request's headers, keys included
                 (in its message; the Gemini fake also as a ``DebugInfo`` detail holding them as JSON text), as a
                 debugging proxy in front of a provider, or a careless provider, might answer.
    """

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish: str | None = None
    thinking: str | None = None
    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cut_stream_after: int | None = None
    stream_error: str | None = None
    stream_error_after: int = 1
    input_tokens: int | None = None
    output_tokens: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    echo_headers: bool = False

    def resolved_text(self) -> str | None:
        if self.text is not None:
            return self.text
        return None if self.tool_calls else "Hello!"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake received it (recorded before any validation)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    json: Any  # parsed body, or None when it is not JSON

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class FakeScript:
    """The shared, thread-safe script of one fake server.

    api_key: when set, only this key is accepted (others → 401); when None any non-empty key is.
    models:  when set, a request for another model → the provider's 404 model-not-found error; also
             what ``GET /v1/models`` lists.
    """

    def __init__(
        self,
        *replies: FakeReply,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.replies: deque[FakeReply] = deque(replies)
        self.requests: list[RecordedRequest] = []
        self.api_key = api_key
        self.models: frozenset[str] | None = frozenset(models) if models is not None else None
        self._ids = itertools.count(1)

    def push(self, *replies: FakeReply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self) -> FakeReply | None:
        with self._lock:
            return self.replies.popleft() if self.replies else None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def next_serial(self) -> int:
        """A per-script counter used to build deterministic ids."""
        with self._lock:
            return next(self._ids)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise AssertionError("the fake received no request")
            return self.requests[-1]

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (optionally only those sent to `path`)."""
        with self._lock:
            return [r.json for r in self.requests if path is None or r.path == path]

    def clear(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()
