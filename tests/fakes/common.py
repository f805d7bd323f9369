"""Pieces shared by the two fake providers: request recording, text/token helpers, deterministic ids,
example values from JSON schemas, and a server-sent-events response that can be cut abruptly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .script import FakeReply, FakeScript, RecordedRequest

__all__ = [
    "EventStreamResponse",
    "cut_at_stop",
    "echo_headers",
    "example_from_schema",
    "fake_id",
    "fragments",
    "is_int",
    "is_number",
    "json_type_name",
    "record_request",
    "retry_after_value",
    "stream_pieces",
    "truncate_words",
    "word_count",
]

_WORD = re.compile(r"\S+")
_PIECE = re.compile(r"\S+\s*|\s+")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


async def record_request(request: Request, script: FakeScript) -> RecordedRequest:
    body = await request.body()
    parsed: Any
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    recorded = RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        json=parsed,
    )
    script.record(recorded)
    return recorded


def echo_headers(message: str, reply: FakeReply, recorded: RecordedRequest) -> str:
    """`message`, then the request's headers when the reply asks for them (`FakeReply.echo_headers`)."""
    if not reply.echo_headers:
        return message
    return f"{message} Request headers: {json.dumps(dict(recorded.headers))}"


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_type_name(value: object) -> str:
    """How the providers name a JSON value's type in their error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def truncate_words(text: str, limit: int) -> str:
    """The prefix of `text` that holds its first `limit` words (the fakes count one token per word)."""
    if limit <= 0:
        return ""
    for index, match in enumerate(_WORD.finditer(text), start=1):
        if index == limit:
            return text[: match.end()]
    return text


def stream_pieces(text: str) -> list[str]:
    """Split text into word-sized pieces whose concatenation is exactly `text`."""
    return _PIECE.findall(text)


def fragments(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def fake_id(prefix: str, serial: int, length: int = 24) -> str:
    """A deterministic, realistic-looking id: prefix + `length` base62 characters derived from serial."""
    digest = hashlib.sha256(f"{prefix}:{serial}".encode()).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return prefix + "".join(chars)


def retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Truncate at the earliest stop sequence (excluded from the output, as the providers do)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        at = text.find(stop) if stop else -1
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def example_from_schema(schema: Any, depth: int = 0) -> Any:
    """A deterministic value that satisfies the common parts of a JSON schema (for default tool calls)."""
    if not isinstance(schema, Mapping) or depth > 8:
        return {}
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return example_from_schema(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("properties"), Mapping):
        kind = "object"
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        required = schema.get("required")
        names: Sequence[str] = required if isinstance(required, list) and required else list(props)
        return {name: example_from_schema(props.get(name, {}), depth + 1) for name in names}
    if kind == "array":
        return [example_from_schema(schema.get("items", {"type": "string"}), depth + 1)]
    if kind == "string":
        return "example"
    if kind == "integer":
        minimum = schema.get("minimum")
        return int(minimum) if is_number(minimum) else 1
    if kind == "number":
        minimum = schema.get("minimum")
        return minimum if is_number(minimum) else 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


class EventStreamResponse(Response):
    """A ``text/event-stream`` response of pre-rendered events.

    chunk_delay_s: sleep before each event.  cut_after: after that many events return without finishing
    the response, so uvicorn drops the connection (the client sees an incomplete chunked body).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: Sequence[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        chunk_delay_s: float = 0.0,
        cut_after: int | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.events = list(events)
        self.chunk_delay_s = chunk_delay_s
        self.cut_after = cut_after
        merged = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        merged.update(headers or {})
        self.init_headers(merged)
        # Replace the content-type Starlette derived with the exact one the providers send.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-type"]
        self.raw_headers.append((b"content-type", b"text/event-stream; charset=utf-8"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for sent, event in enumerate(self.events):
            if self.cut_after is not None and sent >= self.cut_after:
                return  # never complete the response: the server closes the connection mid-body
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
