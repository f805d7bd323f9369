"""Input items of the Responses API: their wire types, their checks, their stored form, and the canonical
messages they make.

Items are messages (`input_text`/`input_image` parts; an assistant's `output_text`/`refusal` parts),
`function_call` and `function_call_output` items, and `reasoning` items (whose `encrypted_content` carries a
provider's reasoning signature back). A 400 names the item and field as the caller sent it (`input[2].call_id`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from ..protocol import (
    ImagePart,
    InvalidRequest,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


# ---- items ---------------------------------------------------------------------------------------------------


class InputText(Strict):
    type: Literal["input_text"]
    text: str


class InputImage(Strict):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] | None = None


class OutputText(Strict):
    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(Strict):
    type: Literal["refusal"]
    refusal: str


_ItemStatus = Literal["in_progress", "completed", "incomplete"]


class MessageItem(Strict):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[dict[str, Any]]
    id: str | None = None
    status: _ItemStatus | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCallItem(Strict):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: _ItemStatus | None = None
    # Gemini's thought signature for the call, as the chat surface carries it (Google's OpenAI-compatible field).
    extra_content: dict[str, Any] | None = None


class FunctionCallOutputItem(Strict):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[dict[str, Any]]
    id: str | None = None
    status: _ItemStatus | None = None


class SummaryText(Strict):
    type: Literal["summary_text"]
    text: str


class ReasoningText(Strict):
    type: Literal["reasoning_text"]
    text: str


class ReasoningItem(Strict):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: _ItemStatus | None = None


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem
ITEMS: Mapping[str, type[Item]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "reasoning": ReasoningItem,
}
ID_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}
USER_PARTS: Mapping[str, type[Strict]] = {"input_text": InputText, "input_image": InputImage}
ASSISTANT_PARTS: Mapping[str, type[Strict]] = {"output_text": OutputText, "refusal": Refusal, "input_text": InputText}


def parse_item(raw: Any, where: str) -> Item:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: expected a JSON object.", param=where)
    kind = raw.get("type", "message" if "role" in raw else None)
    if kind is None:
        raise InvalidRequest(f"{where}.type: this field is required.", param=f"{where}.type")
    model = ITEMS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidRequest(
            f"{where}.type: {shown(kind)} items are not supported; unimodel takes message, function_call, "
            "function_call_output and reasoning items.",
            param=f"{where}.type",
        )
    item = validated(model, raw, where)
    if isinstance(item, MessageItem):
        parts = ASSISTANT_PARTS if item.role == "assistant" else USER_PARTS
        _parts(item.content, parts, f"{where}.content")
    elif isinstance(item, FunctionCallOutputItem):
        _parts(item.output, USER_PARTS, f"{where}.output")
    return item


def _parts(content: str | list[dict[str, Any]], allowed: Mapping[str, type[Strict]], where: str) -> None:
    if isinstance(content, str):
        return
    for j, part in enumerate(content):
        kind = part.get("type")
        model = allowed.get(kind) if isinstance(kind, str) else None
        if model is None:
            if "type" not in part:
                raise InvalidRequest(f"{where}[{j}].type: this field is required.", param=f"{where}[{j}].type")
            raise InvalidRequest(
                f"{where}[{j}].type: {shown(kind)} is not supported here; use one of {', '.join(allowed)}.",
                param=f"{where}[{j}].type",
            )
        value = validated(model, part, f"{where}[{j}]")
        if isinstance(value, InputImage) and (value.file_id is not None or not value.image_url):
            raise InvalidRequest(
                f"{where}[{j}]: an image needs 'image_url' (http(s) or a data: URL); uploaded files ('file_id') are "
                "not supported.",
                param=f"{where}[{j}].image_url",
            )


def stored_form(item: Item) -> dict[str, Any]:
    out = item.model_dump(exclude_none=True)
    out.setdefault("id", new_id(ID_PREFIXES[item.type]))
    if isinstance(item, MessageItem) and isinstance(item.content, str):
        kind = "output_text" if item.role == "assistant" else "input_text"
        part: dict[str, Any] = {"type": kind, "text": item.content}
        if kind == "output_text":
            part["annotations"] = []
        out["content"] = [part]
    return out


def stored_items(items: list[Any]) -> list[Item]:
    """Items read back from the store (written by `decode` or the encoder, so valid)."""
    return [parse_item(raw, f"stored[{i}]") for i, raw in enumerate(items)]


# ---- to canonical messages --------------------------------------------------------------------------------------


def to_messages(instructions: str | None, history: list[Item], items: list[Item], offset: int) -> tuple[Message, ...]:
    """Canonical messages. An assistant's consecutive items (reasoning, text, calls) become one assistant message;
    each function output becomes a tool message and must answer a call made before it."""
    out: list[Message] = []
    if instructions:
        out.append(Message("system", (TextPart(instructions),)))
    turn: list[Part] = []
    calls: set[str] = set()

    def end_turn() -> None:
        if turn:
            out.append(Message("assistant", tuple(turn)))
            turn.clear()

    for i, item in enumerate([*history, *items]):
        where = f"input[{i - offset}]"
        if isinstance(item, ReasoningItem):
            turn.extend(_reasoning_part(item))
        elif isinstance(item, FunctionCallItem):
            signature = (item.extra_content or {}).get("google", {}).get("thought_signature")
            turn.append(ToolCallPart(item.call_id, item.name, item.arguments, signature))
            calls.add(item.call_id)
        elif isinstance(item, MessageItem) and item.role == "assistant":
            turn.extend(p for p in _content(item.content, where) if not isinstance(p, TextPart) or p.text)
        elif isinstance(item, FunctionCallOutputItem):
            end_turn()
            if item.call_id not in calls:
                raise InvalidRequest(
                    f"{where}.call_id: no function_call with call_id '{item.call_id[:64]}' comes before this output.",
                    param=f"{where}.call_id",
                )
            out.append(Message("tool", (ToolResultPart(item.call_id, _content(item.output, where)),)))
        else:
            end_turn()
            parts = _content(item.content, where)
            if not any(not isinstance(p, TextPart) or p.text for p in parts):
                raise InvalidRequest(f"{where}.content: must not be empty.", param=f"{where}.content")
            out.append(Message("system" if item.role in ("system", "developer") else "user", parts))
    end_turn()
    if not any(m.role != "system" for m in out):
        raise InvalidRequest("input: give at least one message besides instructions.", param="input")
    return tuple(out)


def _content(content: str | list[dict[str, Any]], where: str) -> tuple[TextPart | ImagePart, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[TextPart | ImagePart] = []
    for part in content:
        kind = part["type"]
        if kind == "input_image":
            parts.append(ImagePart(url=part["image_url"], detail=part.get("detail")))
        else:
            parts.append(TextPart(part["refusal"] if kind == "refusal" else part["text"]))
    return tuple(parts)


def _reasoning_part(item: ReasoningItem) -> list[ReasoningPart]:
    """A reasoning item's text with its signature (`encrypted_content`); one with no text but encrypted content is
    a redacted block (the encoder writes both so)."""
    text = "".join(c.text for c in item.content or ())
    if text:
        return [ReasoningPart(text, item.encrypted_content)]
    if item.encrypted_content:
        return [ReasoningPart(item.encrypted_content, redacted=True)]
    return []  # a summary alone cannot be replayed to any provider


# ---- errors ----------------------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)
_KINDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def validated(model: type[M], value: Any, where: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise field_error(exc, where) from None


def field_error(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """A 400 naming the most specific offending field (`input[0].content[1].text`); where a value may be one of
    several types, the message lists them ("expected a string or an array")."""
    errors = exc.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        detail = errors[0].get("ctx", {}).get("error", errors[0]["msg"])
        return InvalidRequest(f"The request body is not valid JSON: {detail}.", param="body")
    located = [(_path(e["loc"], prefix), e) for e in errors]
    where, best = max(located, key=lambda pair: pair[0].count(".") + pair[0].count("["))
    same = [e for path, e in located if path == where]
    kinds = [_KINDS[e["type"]] for e in same if e["type"] in _KINDS]
    if len(same) > 1 and len(kinds) == len(same):
        message = "expected " + " or ".join(dict.fromkeys(kinds))
    else:
        message = _message(best)
    where = where or "body"
    return InvalidRequest(f"{where}: {message}.", param=where)


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_branch(part):
            out += f".{part}" if out else part
    return out


def _is_branch(label: str) -> bool:
    """A union branch's label in pydantic's error location (`str`, `list[dict[str,any]]`), not a field."""
    return any(c in label for c in "[(-") or label in ("str", "int", "float", "bool", "none", "dict", "list")


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a JSON object"
    if kind == "missing":
        return "this field is required"
    if kind == "extra_forbidden":
        return "unknown field"
    return error["msg"]


def shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text[:64] + ("…" if len(text) > 64 else "")
