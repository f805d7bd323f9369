"""The OpenAI Responses surface, its request side: `POST /v1/responses` bodies in, the canonical request out.

    decoded = decode(body)                                   # every field checked; a 400 names the first bad one
    chat = to_chat(decoded.wire, history, decoded.items)     # history: a previous response's items and output

`input` is a string or a list of items (messages, function calls and their outputs, reasoning: see
openai_responses_items.py). Only function tools are served; OpenAI's built-in tools, stored prompts, conversations
and background runs are refused by name. `reasoning.effort` becomes the canonical request's `reasoning_effort`
(forwarded by providers that take an effort, refused by name by the rest). The answer side (Response objects, the event stream) is openai_responses_encode.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from ..protocol import (
    ChatRequest,
    GenerationParams,
    InvalidRequest,
    ResponseFormat,
    Tool,
    ToolChoice,
    UnimodelError,
)
from . import openai_compat
from .openai_responses_items import (
    Item,
    MessageItem,
    Strict,
    field_error,
    parse_item,
    shown,
    stored_form,
    to_messages,
    validated,
)
from .surface import Surface

# The Responses paths under each OpenAI prefix; their own metrics label, OpenAI's error body.
SURFACE = Surface(
    "responses",
    tuple(f"{prefix}/responses" for prefix in openai_compat.SURFACE.prefixes),
    openai_compat.error_body,
    "text/event-stream",
)
MAX_METADATA = 16


class StreamOptions(Strict):
    include_obfuscation: bool | None = None  # unimodel never pads events, so either value is honoured


class ReasoningConfig(Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class TextConfig(Strict):
    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(Strict):
    """A Responses API request body (OpenAI's names and types; unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ResponsesRequest")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    background: bool | None = None
    # OpenAI features unimodel does not serve: declared so that the 400 says why instead of "unknown field".
    conversation: Any = None
    prompt: Any = None
    max_tool_calls: Any = None
    top_logprobs: Any = None
    prompt_cache_retention: Any = None
    prompt_cache_options: Any = None
    context_management: Any = None
    background_options: Any = None
    moderation: Any = None
    image: Any = None
    access_programs: Any = None

    @property
    def stored(self) -> bool:
        return self.store is not False  # OpenAI's default: stored


NOT_SERVED: Mapping[str, str] = {
    "conversation": "conversations are OpenAI-side objects; continue with 'previous_response_id'",
    "prompt": "stored prompt templates live in OpenAI's dashboard; send 'instructions' and 'input'",
    "max_tool_calls": "it limits built-in tools, which unimodel does not run",
    "top_logprobs": "Responses answers carry no log probabilities here",
    "prompt_cache_retention": "prompt cache settings are OpenAI-only; use 'prompt_cache_key'",
    "prompt_cache_options": "prompt cache settings are OpenAI-only; use 'prompt_cache_key'",
    "context_management": "server-side context compaction is an OpenAI feature",
    "background_options": "background responses are not served",
    "moderation": "moderation is an OpenAI feature",
    "image": "image settings belong to OpenAI's built-in image tool",
    "access_programs": "access programs are an OpenAI feature",
}
# Canonical parameter names a provider's error may name → the Responses field the caller sent.
GIVEN_AS: Mapping[str, str] = {
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
    "response_format": "text.format",
    "messages": "input",
}


def parse_request(body: bytes) -> ResponsesRequest:
    """The validated body, or a 400 naming the first field that is wrong and why."""
    try:
        wire = ResponsesRequest.model_validate_json(body)
    except ValidationError as exc:
        raise field_error(exc) from None
    for name, why in NOT_SERVED.items():
        if getattr(wire, name) is not None:
            raise InvalidRequest(f"{name}: not supported by unimodel: {why}.", param=name)
    if wire.background:
        raise InvalidRequest("background: background responses are not supported; stream instead.", param="background")
    if wire.include:
        raise InvalidRequest(
            f"include: '{wire.include[0]}' is not supported: unimodel adds nothing to an answer on request.",
            param="include",
        )
    if wire.truncation == "auto":
        raise InvalidRequest("truncation: 'auto' is not supported; only 'disabled' is.", param="truncation")
    if wire.stream_options is not None and not wire.stream:
        raise InvalidRequest("stream_options: only allowed when 'stream' is true.", param="stream_options")
    if wire.reasoning is not None and (wire.reasoning.summary or wire.reasoning.generate_summary):
        name = "summary" if wire.reasoning.summary else "generate_summary"
        raise InvalidRequest(
            f"reasoning.{name}: reasoning summaries are not produced by unimodel; reasoning text comes back in "
            "'reasoning' items where the model gives it.",
            param=f"reasoning.{name}",
        )
    if wire.input is None and wire.previous_response_id is None:
        raise InvalidRequest("input: this field is required.", param="input")
    if wire.input == "" or wire.input == []:
        raise InvalidRequest("input: must not be empty.", param="input")
    _check_metadata(wire.metadata)
    tools = to_tools(wire)
    to_tool_choice(wire, tools)
    to_response_format(wire)
    return wire


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise InvalidRequest(f"metadata: at most {MAX_METADATA} pairs, got {len(metadata)}.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64:
            raise InvalidRequest("metadata: keys have at most 64 characters.", param="metadata")
        if len(value) > 512:
            raise InvalidRequest(f"metadata.{key[:64]}: values have at most 512 characters.", param="metadata")


@dataclass(slots=True)
class Decoded:
    """A checked request: the body, and this call's input items (`items`) in their stored form (`item_json`: a
    string is one user message, string contents become parts, each item has an id) — what is listed by
    `input_items` and read back by a later `previous_response_id`."""

    wire: ResponsesRequest
    items: list[Item]
    item_json: list[dict[str, Any]]


def decode(body: bytes) -> Decoded:
    """The request, every field and item checked: a 400 names the first that is wrong, before anything is called."""
    wire = parse_request(body)
    if wire.input is None:
        items: list[Item] = []
    elif isinstance(wire.input, str):
        items = [MessageItem(role="user", content=[{"type": "input_text", "text": wire.input}])]
    else:
        items = [parse_item(raw, f"input[{i}]") for i, raw in enumerate(wire.input)]
    return Decoded(wire, items, [stored_form(item) for item in items])


# ---- to the canonical request ----------------------------------------------------------------------------------


def to_chat(wire: ResponsesRequest, history: list[Item], items: list[Item]) -> ChatRequest:
    """The canonical request: `instructions` first (they are never carried over from a previous response, as
    OpenAI does), then the previous conversation (`history`: stored items and output), then this call's items.
    `model` is the caller's model id; the route puts the backend's name in."""
    tools = to_tools(wire)
    messages = to_messages(wire.instructions, history, items, len(history))
    extra: dict[str, Any] = {}
    if wire.reasoning is not None and wire.reasoning.effort is not None:
        extra["reasoning_effort"] = wire.reasoning.effort
    if wire.text is not None and wire.text.verbosity is not None:
        extra["verbosity"] = wire.text.verbosity
    for name in ("safety_identifier", "prompt_cache_key", "service_tier"):
        if getattr(wire, name) is not None:
            extra[name] = getattr(wire, name)
    return ChatRequest(
        model=wire.model,
        messages=messages,
        params=GenerationParams(
            max_tokens=wire.max_output_tokens,
            temperature=wire.temperature,
            top_p=wire.top_p,
            parallel_tool_calls=wire.parallel_tool_calls,
            user=wire.user,
        ),
        tools=tools,
        tool_choice=to_tool_choice(wire, tools),
        response_format=to_response_format(wire),
        stream=bool(wire.stream),
        extra=extra,
    )


def to_tools(wire: ResponsesRequest) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    for i, raw in enumerate(wire.tools or ()):
        where = f"tools[{i}]"
        kind = raw.get("type")
        if kind != "function":
            what = "A tool without a type" if kind is None else f"{shown(kind)} tools"
            raise InvalidRequest(
                f"{where}.type: {what} cannot be served: unimodel runs function tools only (OpenAI's built-in "
                "tools run on OpenAI's side).",
                param=f"{where}.type",
            )
        fn = validated(FunctionTool, raw, where)
        if any(t.name == fn.name for t in tools):
            raise InvalidRequest(f"{where}.name: '{fn.name}' is given twice.", param=f"{where}.name")
        tools.append(Tool(fn.name, fn.description, fn.parameters, fn.strict))
    return tuple(tools)


class FunctionTool(Strict):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


def to_tool_choice(wire: ResponsesRequest, tools: tuple[Tool, ...]) -> ToolChoice | None:
    choice = wire.tool_choice
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest(
                f"tool_choice: {shown(choice)} is not one of 'auto', 'none', 'required'.", param="tool_choice"
            )
        if choice == "required" and not tools:
            raise InvalidRequest("tool_choice: 'required' needs 'tools'.", param="tool_choice")
        return ToolChoice(choice)  # type: ignore[arg-type]  # checked just above
    if choice.get("type") != "function":
        raise InvalidRequest(
            f"tool_choice.type: {shown(choice.get('type'))} is not supported; give a mode ('auto', 'none', "
            "'required') or {'type': 'function', 'name': …}.",
            param="tool_choice.type",
        )
    named = validated(NamedFunction, choice, "tool_choice")
    if named.name not in {t.name for t in tools}:
        raise InvalidRequest(
            f"tool_choice.name: '{named.name[:64]}' is not among the given tools.", param="tool_choice.name"
        )
    return ToolChoice("tool", named.name)


class NamedFunction(Strict):
    type: Literal["function"]
    name: str


class JSONSchemaFormat(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class PlainFormat(Strict):
    type: Literal["text", "json_object"]


def to_response_format(wire: ResponsesRequest) -> ResponseFormat | None:
    fmt = wire.text.format if wire.text is not None else None
    if fmt is None:
        return None
    if fmt.get("type") == "json_schema":
        js = validated(JSONSchemaFormat, fmt, "text.format")
        return ResponseFormat("json_schema", js.schema_, js.name, js.strict)
    if fmt.get("type") not in ("text", "json_object"):
        raise InvalidRequest(
            f"text.format.type: {shown(fmt.get('type'))} is not one of 'text', 'json_object', 'json_schema'.",
            param="text.format.type",
        )
    plain = validated(PlainFormat, fmt, "text.format")
    return ResponseFormat("json") if plain.type == "json_object" else None


def caller_named(error: UnimodelError) -> UnimodelError:
    """`error`, naming the Responses field the caller sent where a provider named the canonical parameter
    (`'max_tokens'` → `'max_output_tokens'`)."""
    given = GIVEN_AS.get(error.param or "")
    if given is not None:
        error.message = error.message.replace(f"'{error.param}'", f"'{given}'")
        error.args = (error.message,)
        error.param = given
    return error
