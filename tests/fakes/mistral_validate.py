"""Request validation of the fake Mistral chat completions API, as the real one does it in two stages:

1. the body's schema (the API is FastAPI + pydantic with extra fields forbidden): failures are a 422
   ``{"detail": [{"type", "loc", "msg", "input"}, …]}``, e.g. ``extra_forbidden`` at
   ``["body", "messages", 0, "user", "name"]``. The models below follow the official ``mistralai`` SDK's
   ``ChatCompletionRequest``;
2. the conversation, by the rules of ``mistral_common``'s request validator (role order, the last role, tool
   calls answered one for one, 9-character alphanumeric tool-call ids, function names): failures are a 400
   ``{"object": "error", "message", "type", "param", "code"}`` with the real API's wording.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

__all__ = ["ChatCompletionRequest", "MistralError", "message_texts", "validate_chat_request"]

CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class MistralError(Exception):
    """An error answer. `body` is the JSON the real API sends for it."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {"object": "error", "message": message, "type": type, "param": None, "code": code}


# ------------------------------------------------------------------------------------------ the schema


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextChunk(_Model):
    type: Literal["text"]
    text: str


class ReferenceChunk(_Model):
    type: Literal["reference"]
    reference_ids: list[int | str]


class ThinkChunk(_Model):
    type: Literal["thinking"]
    thinking: list[Annotated[TextChunk | ReferenceChunk, Field(discriminator="type")]]
    signature: str | None = None
    closed: bool | None = None


class ImageURL(_Model):
    url: str
    detail: Literal["low", "auto", "high"] | None = None


class ImageURLChunk(_Model):
    type: Literal["image_url"]
    image_url: ImageURL | str


class DocumentURLChunk(_Model):
    type: Literal["document_url"]
    document_url: str
    document_name: str | None = None


class AudioChunk(_Model):
    type: Literal["input_audio"]
    input_audio: str


class FileChunk(_Model):
    type: Literal["file"]
    file_id: str


ContentChunk = Annotated[
    TextChunk | ImageURLChunk | DocumentURLChunk | ReferenceChunk | FileChunk | ThinkChunk | AudioChunk,
    Field(discriminator="type"),
]
SystemChunk = Annotated[TextChunk | ThinkChunk, Field(discriminator="type")]


class FunctionCall(_Model):
    name: str
    arguments: dict[str, Any] | str


class ToolCall(_Model):
    id: str = "null"
    type: str = "function"
    function: FunctionCall
    index: int = 0


class SystemMessage(_Model):
    role: Literal["system"]
    content: str | list[SystemChunk]


class UserMessage(_Model):
    role: Literal["user"]
    content: str | list[ContentChunk] | None


class AssistantMessage(_Model):
    role: Literal["assistant"]
    content: str | list[ContentChunk] | None = None
    tool_calls: list[ToolCall] | None = None
    prefix: bool = False


class ToolMessage(_Model):
    role: Literal["tool"]
    content: str | list[ContentChunk] | None
    tool_call_id: str | None = None
    name: str | None = None


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class Function(_Model):
    name: str
    parameters: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class Tool(_Model):
    type: Literal["function"] = "function"
    function: Function


class FunctionName(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"] = "function"
    function: FunctionName


class JSONSchema(_Model):
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JSONSchema | None = None


class Prediction(_Model):
    type: Literal["content"] = "content"
    content: str = ""


class ChatCompletionRequest(_Model):
    model: str
    messages: list[Message]
    temperature: float | None = Field(default=None, ge=0, le=1.5)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=0)
    stream: bool = False
    stop: str | list[str] | None = None
    random_seed: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: NamedToolChoice | Literal["auto", "none", "any", "required"] = "auto"
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    min_tokens: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = None
    top_k: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    prompt_logprobs: bool | None = None
    top_prompt_logprobs: int | None = None
    n: int | None = Field(default=None, ge=1)
    prediction: Prediction | None = None
    parallel_tool_calls: bool = True
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    prompt_mode: Literal["reasoning"] | None = None
    guardrails: list[dict[str, Any]] | None = None
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    safe_prompt: bool = False


def validate_chat_request(body: Any) -> ChatCompletionRequest:
    """The parsed request, or `MistralError` (422 for the schema, 400 for the conversation)."""
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    _validate_structure(request.messages)
    _validate_content(request.messages)
    for tool in request.tools or []:
        _check_function_name(tool.function.name, "invalid_tool")
    return request


def validation_error(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> MistralError:
    detail = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {"type": err["type"], "loc": [*prefix, *err["loc"]], "msg": err["msg"]}
        item["input"] = to_jsonable_python(err.get("input"), fallback=str)
        if err.get("ctx"):
            item["ctx"] = to_jsonable_python(err["ctx"], fallback=str)
        detail.append(item)
    return MistralError(detail[0]["msg"], status=422, body={"detail": detail})


# ------------------------------------------------------------------------------------ the conversation


def _structure_error(message: str) -> MistralError:
    return MistralError(message, type="invalid_request_message_order", code="3230")


def _validate_structure(messages: Sequence[Any]) -> None:
    if not messages:
        raise _structure_error("Conversation must have at least one message")
    if len(messages) == 1 and messages[0].role not in ("user", "system"):
        raise _structure_error("Conversation must start with a user message or system message")
    last = messages[-1]
    if len(messages) > 1 and last.role not in ("user", "tool") and not getattr(last, "prefix", False):
        raise _structure_error(
            f"Expected last role User or Tool (or Assistant with prefix True) for serving but got {last.role}"
        )
    allowed = {
        "system": {"user", "assistant", "system"},
        "user": {"assistant", "system", "user"},
        "assistant": {"assistant", "user", "tool"},
        "tool": {"assistant", "tool"},
    }
    for previous, current in itertools.pairwise(messages):
        if current.role not in allowed[previous.role]:
            raise _structure_error(f"Unexpected role '{current.role}' after role '{previous.role}'")
    expected: set[str] = set()
    observed: set[str] = set()
    mismatch = MistralError("Not the same number of function calls and responses")
    for message in messages[1:]:
        if message.role == "tool":
            if message.tool_call_id in observed:
                raise MistralError(f"Duplicate tool call id {message.tool_call_id} in tool results")
            if message.tool_call_id not in expected:
                raise MistralError(f"Unexpected tool call id {message.tool_call_id} in tool results")
            observed.add(message.tool_call_id)
        elif message.role == "assistant":
            if len(expected) != len(observed):
                raise mismatch
            expected, observed = set(), set()
            for call in message.tool_calls or []:
                if call.id in expected:
                    raise MistralError(f"Duplicate tool call id {call.id} in assistant message")
                expected.add(call.id)
    if len(expected) != len(observed):
        raise mismatch


def _validate_content(messages: Sequence[Any]) -> None:
    for index, message in enumerate(messages):
        if message.role == "assistant":
            if message.prefix and index != len(messages) - 1:
                raise MistralError("Assistant message with prefix True must be last message")
            for call in message.tool_calls or []:
                if call.id == "null":
                    raise MistralError("Tool call id has to be defined in serving mode.", type="invalid_function_call")
                if not CALL_ID.match(call.id):
                    raise MistralError(
                        f"Tool call id was {call.id} but must be a-z, A-Z, 0-9, with a length of 9.",
                        type="invalid_function_call",
                        code="3280",
                    )
                _check_function_name(call.function.name, "invalid_function_call")
        elif message.role == "tool":
            if message.name is not None:
                _check_function_name(message.name, "invalid_tool_message")
            if message.tool_call_id is None:
                raise MistralError("Tool call id has to be defined.")
            if not CALL_ID.match(message.tool_call_id):
                raise MistralError(
                    f"Tool call id was {message.tool_call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                    type="invalid_tool_message",
                )


def _check_function_name(name: str, kind: str) -> None:
    if not FUNCTION_NAME.match(name):
        raise MistralError(
            f"Function name was {name} but must be a-z, A-Z, 0-9, or contain underscores and dashes, "
            "with a maximum length of 64.",
            type=kind,
        )


def message_texts(messages: Sequence[Any]) -> list[str]:
    """All text in parsed messages (string contents and text chunks)."""
    texts: list[str] = []
    for message in messages:
        content = message.content
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(c.text for c in content if isinstance(c, TextChunk))
    return texts
