"""Conversation messages and their parts, independent of any wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True, frozen=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True, frozen=True)
class ImagePart:
    """An image given by URL (http(s) or data:) or by base64 data with its mime type."""

    url: str | None = None
    data: str | None = None
    mime_type: str | None = None
    detail: str | None = None
    type: Literal["image"] = "image"


@dataclass(slots=True, frozen=True)
class ToolCallPart:
    """A call the assistant made. `arguments` is the JSON text of the arguments object.

    `signature` is an opaque token some providers attach to a call and need back on the next turn
    (Gemini's `thoughtSignature`).
    """

    id: str
    name: str
    arguments: str
    signature: str | None = None
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True, frozen=True)
class ToolResultPart:
    """The result of a tool call, answered by the caller in the next turn."""

    tool_call_id: str
    content: tuple[TextPart | ImagePart, ...]
    is_error: bool = False
    name: str | None = None
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True, frozen=True)
class ReasoningPart:
    """A model's reasoning (Anthropic thinking, Gemini thoughts); `signature` must be sent back verbatim.

    A redacted block (Anthropic `redacted_thinking`) carries its opaque data in `text` with `redacted=True`.
    """

    text: str
    signature: str | None = None
    redacted: bool = False
    type: Literal["reasoning"] = "reasoning"


Part = TextPart | ImagePart | ToolCallPart | ToolResultPart | ReasoningPart


@dataclass(slots=True, frozen=True)
class Message:
    role: Role
    parts: tuple[Part, ...] = field(default_factory=tuple)
    name: str | None = None

    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCallPart))
