"""What a backend answers: a whole result, or a stream of events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import UnimodelError
from .messages import ReasoningPart, ToolCallPart

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResult:
    """A finished chat completion in canonical form.

    `raw_finish_reason` is the provider's own word (kept when it maps to `other`); `raw` is the provider's
    whole response body, returned to v2 clients as `provider`. `reasoning` is the reasoning text for display;
    `reasoning_parts` are the blocks with their signatures, which a client sends back on its next turn.
    """

    id: str
    model: str
    text: str | None
    tool_calls: list[ToolCallPart] = field(default_factory=list)
    reasoning: str | None = None
    reasoning_parts: list[ReasoningPart] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    raw_finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    raw: Any = None


# Stream events. A stream is: zero or more deltas, then at most one Usage, then one Finish (or an Error).


@dataclass(slots=True, frozen=True)
class StreamStart:
    id: str
    model: str


@dataclass(slots=True, frozen=True)
class TextDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ReasoningDelta:
    """Reasoning text. A delta with a `signature` closes the current reasoning block; `redacted` carries a
    redacted block's opaque data in `text`."""

    text: str
    signature: str | None = None
    redacted: bool = False


@dataclass(slots=True, frozen=True)
class ToolCallDelta:
    """A piece of the tool call at `index`: `id` and `name` come with its first piece, argument text after."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    signature: str | None = None


@dataclass(slots=True, frozen=True)
class UsageEvent:
    usage: Usage


@dataclass(slots=True, frozen=True)
class Finish:
    reason: FinishReason
    raw_reason: str | None = None


@dataclass(slots=True, frozen=True)
class StreamError:
    error: UnimodelError


StreamEvent = StreamStart | TextDelta | ReasoningDelta | ToolCallDelta | UsageEvent | Finish | StreamError
