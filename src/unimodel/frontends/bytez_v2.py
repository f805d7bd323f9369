"""The Bytez `/models/v2` surface: both body shapes in, the `{error, output, provider}` envelope or raw text out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from ..protocol import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    InvalidRequest,
    Message,
    StreamError,
    StreamEvent,
    TextDelta,
    TextPart,
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
    to_generation_params,
    to_messages,
    to_response_format,
    to_tool_choice,
    to_tools,
)

# Hugging Face `generate` names and other aliases, translated to the canonical (OpenAI) names.
PARAM_ALIASES = {
    "max_new_tokens": "max_tokens",
    "stop_sequences": "stop",
    "num_return_sequences": "n",
}


class RunRequest(BaseModel):
    """A run body: the SDK shape (`input`) or the HTTP shape (`messages`/`text` at the top level)."""

    model_config = ConfigDict(extra="allow", title="RunRequest", strict=True)

    input: str | list[WireMessage] | dict[str, Any] | None = None
    messages: list[WireMessage] | None = None
    text: str | None = None
    params: dict[str, Any] | None = None
    stream: bool = False
    json_: bool | None = Field(default=None, alias="json")


def decode_chat(body: bytes, model: str) -> ChatRequest:
    """A v2 run body for a chat model, as the canonical request."""
    try:
        wire = RunRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    messages = _messages(wire)
    params = dict(wire.params or {})
    given_as: dict[str, str] = {}  # canonical name → the caller's, for errors
    for alias, name in PARAM_ALIASES.items():
        if alias in params:
            if name in params:
                raise InvalidRequest(f"params: give '{alias}' or '{name}', not both.", param=f"params.{alias}")
            params[name] = params.pop(alias)
            given_as[name] = alias
    try:
        p = ChatParams.model_validate(params)
    except ValidationError as exc:
        raise invalid_request(exc, prefix="params", given_as=given_as) from None
    return ChatRequest(
        model=model,
        messages=messages,
        params=to_generation_params(p),
        tools=to_tools(p),
        tool_choice=to_tool_choice(p),
        response_format=to_response_format(p),
        stream=wire.stream,
        extra=dict(p.model_extra or {}),
    )


class EmbeddingsRunRequest(BaseModel):
    """A run body for an embedding model: the text(s) in `input` or `text`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str | list[str] | None = None
    text: str | None = None
    params: dict[str, Any] | None = None
    json_: bool | None = Field(default=None, alias="json")


def decode_embeddings(body: bytes, model: str) -> tuple[EmbeddingRequest, bool]:
    """A v2 run body for a closed embedding model: `input` (or `text`) a string or a list of strings; `params` may
    ask `dimensions`. With it, whether the caller gave one string (the output is then one vector, not a list)."""
    try:
        wire = EmbeddingsRunRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    source = wire.input if wire.input is not None else wire.text
    if isinstance(source, str) and source:
        inputs: tuple[str, ...] = (source,)
    elif isinstance(source, list) and source and all(source):
        inputs = tuple(source)
    else:
        raise InvalidRequest("input: an embedding model takes a non-empty string or a list of them.", param="input")
    params = dict(wire.params or {})
    dimensions = params.pop("dimensions", None)
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise InvalidRequest("params.dimensions: a whole number from 1.", param="params.dimensions")
    return EmbeddingRequest(model=model, inputs=inputs, dimensions=dimensions, extra=params), isinstance(source, str)


def encode_embeddings(result: EmbeddingResult, single: bool) -> bytes:
    """The envelope with one vector (`number[]`, PROTOCOL.md's feature-extraction output), or one per input."""
    output = result.vectors[0] if single else result.vectors
    return to_json({"error": None, "output": output, "provider": result.raw})


def _messages(wire: RunRequest) -> tuple[Message, ...]:
    source = wire.input if wire.input is not None else (wire.messages if wire.messages is not None else wire.text)
    if source is None:
        raise InvalidRequest(
            "The body needs the model's input: 'input' (a string or a messages array), 'messages' or 'text'.",
            param="input",
        )
    if isinstance(source, str):
        if not source:
            raise InvalidRequest("'input' must not be empty.", param="input")
        return (Message("user", (TextPart(source),)),)
    if isinstance(source, dict):
        text = source.get("text")
        if isinstance(text, str) and text:
            return (Message("user", (TextPart(text),)),)
        raise InvalidRequest("A chat model takes 'input' as a string or a messages array.", param="input")
    return to_messages(source)


def encode_result(result: ChatResult) -> bytes:
    output = assistant_json(result.text, result.tool_calls, result.reasoning, result.reasoning_parts)
    return to_json({"error": None, "output": output, "provider": result.raw})


def error_body(error: UnimodelError) -> dict[str, Any]:
    return {"error": error.message, "output": None, "code": error.code}


SURFACE = Surface("v2", ("/models/v2/",), error_body, "text/plain; charset=utf-8")
ADMIN = Surface("admin", ("/models/v2/admin/",), error_body)  # the admin API: the v2 envelope, its own label
OTHER = Surface("other", ("/",), error_body)  # /, /healthz, /metrics …: answered in the v2 shape


async def encode_stream(
    events: AsyncIterator[StreamEvent],
    on_error: Callable[[UnimodelError], None],
    on_usage: Callable[[Usage], None] | None = None,
) -> AsyncIterator[bytes]:
    """Raw UTF-8 text chunks. An error after the first byte can only end the stream: `on_error` logs it.
    `on_usage` hears the stream's usage (the ledger)."""
    async for event in events:
        if isinstance(event, TextDelta):
            if event.text:
                yield event.text.encode()
        elif isinstance(event, UsageEvent):
            if on_usage is not None:
                on_usage(event.usage)
        elif isinstance(event, StreamError):
            on_error(event.error)
            return
