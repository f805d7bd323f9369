"""The OpenAI-compatible surface: chat completions in, `chat.completion` JSON or SSE chunks out."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json, to_json

from ..protocol import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    Finish,
    FinishReason,
    InvalidRequest,
    ReasoningDelta,
    ReasoningPart,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UnimodelError,
    Usage,
    UsageEvent,
)
from .surface import Surface
from .wire import (
    ChatParams,
    WireMessage,
    assistant_json,
    invalid_request,
    thinking_block_json,
    to_generation_params,
    to_messages,
    to_response_format,
    to_tool_choice,
    to_tools,
)


class StreamOptions(BaseModel):
    include_usage: bool | None = None


class ChatCompletionRequest(ChatParams):
    model_config = ConfigDict(extra="allow", title="ChatCompletionRequest", strict=True)

    model: str = Field(min_length=1)
    messages: list[WireMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None


@dataclass(slots=True, frozen=True)
class DecodedChat:
    model_id: str
    request: ChatRequest
    include_usage: bool


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON object body, or a 400 saying what is wrong with it."""
    try:
        value = from_json(body)
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", param="body") from None
    if not isinstance(value, dict):
        raise InvalidRequest("body: expected a JSON object.", param="body")
    return value


def decode_chat(body: bytes) -> DecodedChat:
    """Validate an OpenAI chat completions body and build the canonical request (with the full model id)."""
    try:
        wire = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    if wire.stream_options is not None and not wire.stream:
        raise InvalidStreamOptions()
    request = ChatRequest(
        model=wire.model,
        messages=to_messages(wire.messages),
        params=to_generation_params(wire),
        tools=to_tools(wire),
        tool_choice=to_tool_choice(wire),
        response_format=to_response_format(wire),
        stream=wire.stream,
        extra=dict(wire.model_extra or {}),
    )
    include_usage = bool(wire.stream_options and wire.stream_options.include_usage)
    return DecodedChat(model_id=wire.model, request=request, include_usage=include_usage)


class InvalidStreamOptions(UnimodelError):
    status = 400
    code = "invalid_request"

    def __init__(self) -> None:
        super().__init__("'stream_options' is only allowed when 'stream' is true.", param="stream_options")


_OPENAI_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "error": "stop",
    "other": "stop",
}


def usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_input_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_input_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def encode_result(result: ChatResult, model_id: str) -> bytes:
    message = assistant_json(result.text, result.tool_calls, result.reasoning, result.reasoning_parts)
    message["refusal"] = None
    return to_json(
        {
            "id": _completion_id(result.id),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _OPENAI_FINISH[result.finish_reason],
                }
            ],
            "usage": usage_json(result.usage),
        }
    )


async def encode_stream(
    events: AsyncIterator[StreamEvent],
    model_id: str,
    include_usage: bool,
    on_usage: Callable[[Usage], None] | None = None,
) -> AsyncIterator[bytes]:
    """SSE `chat.completion.chunk` lines ending in `data: [DONE]`; an error mid-stream ends it with an error.
    `on_usage` hears the stream's usage (the ledger), whether or not the client asked for it."""
    created = int(time.time())
    completion_id = _completion_id("")
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + to_json(body) + b"\n\n"

    usage: Usage | None = None
    sent_role = False
    async for event in events:
        if isinstance(event, StreamStart):
            if event.id:
                completion_id = _completion_id(event.id)
            yield chunk({"role": "assistant", "content": ""})
            sent_role = True
            continue
        if not sent_role:
            yield chunk({"role": "assistant", "content": ""})
            sent_role = True
        if isinstance(event, TextDelta):
            yield chunk({"content": event.text})
        elif isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            fn: dict[str, Any] = {"arguments": event.arguments}
            if event.name is not None:
                fn["name"] = event.name
            call["function"] = fn
            if event.signature:
                call["extra_content"] = {"google": {"thought_signature": event.signature}}
            yield chunk({"tool_calls": [call]})
        elif isinstance(event, ReasoningDelta):
            if event.redacted:
                yield chunk({"thinking_blocks": [thinking_block_json(ReasoningPart(event.text, redacted=True))]})
            elif event.text:
                yield chunk({"reasoning_content": event.text})
            if event.signature:  # closes the reasoning block streamed so far
                yield chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": event.signature}]})
        elif isinstance(event, UsageEvent):
            usage = event.usage
            if on_usage is not None:
                on_usage(usage)
        elif isinstance(event, Finish):
            yield chunk({}, _OPENAI_FINISH[event.reason])
        elif isinstance(event, StreamError):
            yield b"data: " + to_json(error_body(event.error)) + b"\n\n"
            return
    if include_usage:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "choices": [],
            "usage": usage_json(usage or Usage()),
        }
        yield b"data: " + to_json(body) + b"\n\n"
    yield b"data: [DONE]\n\n"


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(error: UnimodelError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
    return {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}


SURFACE = Surface("openai", ("/models/v2/openai/v1", "/v1"), error_body, "text/event-stream")


class EmbeddingsBody(BaseModel):
    """OpenAI's embeddings request, as the OpenAI SDK sends it (it asks for base64 unless told otherwise)."""

    model_config = ConfigDict(extra="allow", strict=True, title="EmbeddingsRequest")

    model: str = Field(min_length=1)
    input: str | list[str] = Field(min_length=1)
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


@dataclass(frozen=True, slots=True)
class DecodedEmbeddings:
    model_id: str
    request: EmbeddingRequest
    base64: bool


def decode_embeddings(payload: dict[str, Any]) -> DecodedEmbeddings:
    """An embeddings body for a closed model (open models take it as it is), as the canonical request."""
    try:
        wire = EmbeddingsBody.model_validate(payload)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    inputs = (wire.input,) if isinstance(wire.input, str) else tuple(wire.input)
    if any(not text for text in inputs):
        raise InvalidRequest("input: every text must be non-empty.", param="input")
    extra = dict(wire.model_extra or {})
    if wire.user is not None:
        extra["user"] = wire.user
    request = EmbeddingRequest(model=wire.model, inputs=inputs, dimensions=wire.dimensions, extra=extra)
    return DecodedEmbeddings(wire.model, request, wire.encoding_format == "base64")


def encode_embeddings(result: EmbeddingResult, model_id: str, base64_vectors: bool) -> bytes:
    """OpenAI's embeddings answer; `base64_vectors`: each vector as little-endian float32 bytes in base64, as the
    OpenAI SDK asks by default and decodes."""

    def vector(values: list[float]) -> list[float] | str:
        if not base64_vectors:
            return values
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")

    return to_json(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": vector(v)} for i, v in enumerate(result.vectors)],
            "model": model_id,
            "usage": {"prompt_tokens": result.usage.input_tokens, "total_tokens": result.usage.input_tokens},
        }
    )


def encode_models(model_ids: list[str]) -> bytes:
    return to_json(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": m.split("/", 1)[0]} for m in model_ids],
        }
    )


def _completion_id(upstream_id: str) -> str:
    if upstream_id.startswith("chatcmpl-"):
        return upstream_id
    return "chatcmpl-" + (upstream_id or uuid.uuid4().hex)
