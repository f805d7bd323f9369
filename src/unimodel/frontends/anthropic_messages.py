"""The Anthropic Messages surface: `/v1/messages` bodies in, `message` objects or Anthropic's named SSE events out.

Claude's requests go to Anthropic as they came (gateway/routes_anthropic.py); every other model's request is
decoded here into the canonical form (anthropic_wire.py) and its answer encoded back as Claude would answer:
content blocks (thinking with its signature, text, tool_use), Anthropic's stop reasons and usage, its error
body `{"type": "error", "error": {"type", "message"}}` with its statuses, and when streaming the exact event
sequence — `message_start`, `ping`, per block `content_block_start` / `content_block_delta` (`text_delta`,
`thinking_delta`, `signature_delta`, `input_json_delta`) / `content_block_stop`, then `message_delta` (stop
reason, usage) and `message_stop`; a failure mid-stream ends it with an `error` event, which the SDK raises.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from pydantic_core import from_json, to_json

from ..dialects.anthropic import ANTHROPIC_STOP_REASONS, ERROR_STATUSES, error_type, usage_json
from ..protocol import (
    ChatRequest,
    ChatResult,
    Finish,
    FinishReason,
    ImagePart,
    ReasoningDelta,
    ReasoningPart,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
    UnimodelError,
    Usage,
    UsageEvent,
)
from .anthropic_wire import CountTokensRequest, Decoded, MessagesRequest, RequestHead, to_chat_request, validate
from .surface import Surface

# The provider whose own API this surface is: its models' requests are forwarded as they are.
NATIVE_PROVIDER = "anthropic"
# Raw stop reasons (the provider's own word) that mean a stop sequence ended the answer.
_STOP_SEQUENCE_REASONS = frozenset({"stop_sequence", "STOP_SEQUENCE"})
# count_tokens for a model other than Claude: about 4 characters a token, 3 tokens a message, and an image as
# Claude counts its largest (1.15 megapixels / 750).
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
TOKENS_PER_IMAGE = 1600


def decode_head(body: bytes) -> RequestHead:
    """The model and `stream`, read before the backend is known (a 400 naming the field otherwise)."""
    return validate(RequestHead, body)


def decode_messages(body: bytes, model: str) -> Decoded:
    """A Messages body for a model other than Claude, as the canonical request for `model`."""
    return to_chat_request(validate(MessagesRequest, body), model)


def decode_count_tokens(body: bytes, model: str) -> Decoded:
    return to_chat_request(validate(CountTokensRequest, body), model)


def estimate_tokens(request: ChatRequest) -> int:
    """The input tokens of a model whose provider has no counting endpoint: an estimate (see CHARS_PER_TOKEN)."""
    chars = 0
    images = 0
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, ImagePart):
                images += 1
            elif isinstance(part, ToolCallPart):
                chars += len(part.name) + len(part.arguments)
            elif isinstance(part, ReasoningPart) and not part.redacted:
                chars += len(part.text)
            elif isinstance(part, ToolResultPart):
                chars += sum(len(p.text) for p in part.content if isinstance(p, TextPart))
                images += sum(1 for p in part.content if isinstance(p, ImagePart))
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(to_json(tool.parameters or {}))
    text_tokens = math.ceil(chars / CHARS_PER_TOKEN)
    return max(1, text_tokens + TOKENS_PER_MESSAGE * len(request.messages) + TOKENS_PER_IMAGE * images)


# ------------------------------------------------------------------------------------------------ answers


def encode_result(result: ChatResult, model_id: str, stop_sequences: tuple[str, ...] = ()) -> bytes:
    content: list[dict[str, Any]] = [_thinking_block(p) for p in _reasoning(result)]
    if result.text:
        content.append({"type": "text", "text": result.text})
    for call in result.tool_calls:
        if call.signature:
            content.append({"type": "thinking", "thinking": "", "signature": call.signature})
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)})
    reason, sequence = _stop(result.finish_reason, result.raw_finish_reason, stop_sequences)
    return to_json(
        {
            "id": message_id(result.id),
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": usage_json(result.usage),
        }
    )


def message_id(upstream_id: str) -> str:
    if upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + (upstream_id or uuid.uuid4().hex)


def _reasoning(result: ChatResult) -> list[ReasoningPart]:
    if result.reasoning_parts:
        return result.reasoning_parts
    return [ReasoningPart(result.reasoning)] if result.reasoning else []


def _thinking_block(part: ReasoningPart) -> dict[str, Any]:
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.text}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}


def _arguments(arguments: str) -> dict[str, Any]:
    """A call's arguments as `input` (an object); text a model left unparsable is kept under `arguments`."""
    if not arguments.strip():
        return {}
    try:
        value = from_json(arguments)
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def _stop(reason: FinishReason, raw: str | None, stop_sequences: tuple[str, ...]) -> tuple[str, str | None]:
    """Anthropic's stop reason and stop sequence; which sequence matched is known only when one was given."""
    if reason == "stop" and raw in _STOP_SEQUENCE_REASONS:
        return "stop_sequence", stop_sequences[0] if len(stop_sequences) == 1 else None
    return ANTHROPIC_STOP_REASONS[reason], None


# -------------------------------------------------------------------------------------------------- streams


def sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + to_json(payload) + b"\n\n"


PING = sse("ping", {"type": "ping"})


class _StreamEncoder:
    """Canonical events → Anthropic's events. Blocks open and close in order, as Claude streams them."""

    def __init__(self, model_id: str, stop_sequences: tuple[str, ...]) -> None:
        self.model_id = model_id
        self.stop_sequences = stop_sequences
        self.started = False
        self.index = -1  # the last block opened
        self.open: str | None = None  # its kind, while open
        self.calls: dict[int, int] = {}  # canonical tool call index → block index
        self.usage = Usage()

    def start(self, upstream_id: str = "") -> list[bytes]:
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(upstream_id),
            "type": "message",
            "role": "assistant",
            "model": self.model_id,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},  # known at the end: sent with message_delta
        }
        return [sse("message_start", {"type": "message_start", "message": message})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        out.append(sse("content_block_start", start))
        if self.index == 0:  # Claude pings once, after its first block opens
            out.append(PING)
        return out

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        at = self.index if index is None else index
        return sse("content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta})

    def text(self, text: str) -> list[bytes]:
        out = [] if self.open == "text" else self._open("text", {"type": "text", "text": ""})
        if text:
            out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def reasoning(self, event: ReasoningDelta) -> list[bytes]:
        if event.redacted:
            out = self._open("redacted_thinking", {"type": "redacted_thinking", "data": event.text})
            return out + self._close()
        out = (
            []
            if self.open == "thinking"
            else self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        )
        if event.text:
            out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
        if event.signature:  # the signature closes the block
            out.append(self._delta({"type": "signature_delta", "signature": event.signature}))
            out += self._close()
        return out

    def tool_call(self, event: ToolCallDelta) -> list[bytes]:
        out: list[bytes] = []
        block = self.calls.get(event.index)
        if block is None:
            if event.signature:  # a call's own signature rides in a signed empty thinking block before it
                out += self.reasoning(ReasoningDelta("", signature=event.signature))
            opening = {"type": "tool_use", "id": event.id or f"toolu_{uuid.uuid4().hex[:24]}", "name": event.name or ""}
            out += self._open("tool_use", {**opening, "input": {}})
            block = self.calls[event.index] = self.index
        if event.arguments:  # a late piece of an earlier call keeps its own index (the SDK accumulates by index)
            out.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}, block))
        return out

    def finish(self, event: Finish) -> list[bytes]:
        reason, sequence = _stop(event.reason, event.raw_reason, self.stop_sequences)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage_json(self.usage),
        }
        ping = [PING] if self.index < 0 else []  # an answer without blocks still pings once
        return [*self._close(), *ping, sse("message_delta", delta), sse("message_stop", {"type": "message_stop"})]


async def encode_stream(
    events: AsyncIterator[StreamEvent],
    model_id: str,
    stop_sequences: tuple[str, ...] = (),
    on_usage: Callable[[Usage], None] | None = None,
) -> AsyncIterator[bytes]:
    """Anthropic's SSE events for a canonical stream; `on_usage` hears its usage (the ledger)."""
    encoder = _StreamEncoder(model_id, stop_sequences)
    async for event in events:
        out: list[bytes] = []
        if isinstance(event, StreamStart):
            if not encoder.started:
                yield b"".join(encoder.start(event.id))
            continue
        if isinstance(event, StreamError):  # ends the stream, as Anthropic ends a failed one; the SDK raises it
            yield stream_error(event.error)
            return
        if not encoder.started:
            out += encoder.start()
        if isinstance(event, TextDelta):
            out += encoder.text(event.text)
        elif isinstance(event, ReasoningDelta):
            out += encoder.reasoning(event)
        elif isinstance(event, ToolCallDelta):
            out += encoder.tool_call(event)
        elif isinstance(event, UsageEvent):
            encoder.usage = event.usage
            if on_usage is not None:
                on_usage(event.usage)
        elif isinstance(event, Finish):
            out += encoder.finish(event)
        if out:
            yield b"".join(out)


def stream_error(error: UnimodelError) -> bytes:
    return sse("error", error_body(error))


# --------------------------------------------------------------------------------------------------- errors


def native_error(error: UnimodelError) -> dict[str, Any] | None:
    """Anthropic's own error body, when the error is Anthropic's answer to a forwarded request."""
    body = error.provider_body
    if error.provider != NATIVE_PROVIDER or not isinstance(body, dict) or body.get("type") != "error":
        return None
    inner = body.get("error")
    return body if isinstance(inner, dict) and inner.get("type") in ERROR_STATUSES else None


def error_body(error: UnimodelError) -> dict[str, Any]:
    native = native_error(error)
    if native is not None:
        if native["error"]["type"] == "authentication_error":  # the provider key, not the gateway key in x-api-key
            return {**native, "error": {**native["error"], "message": error.message}}
        return native
    return {"type": "error", "error": {"type": error_type(error.status), "message": error.message}}


def error_status(error: UnimodelError) -> int:
    """The status Anthropic gives the error's type: Anthropic's own for its answers; an unavailable upstream or a
    full queue is 529 `overloaded_error`, other server-side failures 500 `api_error`, a timeout 504."""
    native = native_error(error)
    if native is not None:
        return ERROR_STATUSES[native["error"]["type"]]
    return ERROR_STATUSES[error_type(error.status)] if error.status >= 500 or error.status == 422 else error.status


SURFACE = Surface("anthropic", ("/v1/messages", "/models/v2/anthropic/v1"), error_body, "text/event-stream")


# --------------------------------------------------------------------------------------------------- models


def model_json(model_id: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "1970-01-01T00:00:00Z",  # unknown: the epoch, as Anthropic's API allows
        "lifecycle": "active",
    }


def encode_models(
    model_ids: Iterable[str], limit: int = 20, after_id: str | None = None, before_id: str | None = None
) -> bytes:
    """One page of Anthropic's model list (`limit`, and a cursor: `after_id` or `before_id`)."""
    ids = list(model_ids)
    start, end = 0, len(ids)
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        end = min(len(ids), start + limit)
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        start = max(0, end - limit)
    else:
        end = min(len(ids), limit)
    page = ids[start:end]
    more = end < len(ids) if before_id is None else start > 0
    return to_json(
        {
            "data": [model_json(m) for m in page],
            "has_more": more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )
