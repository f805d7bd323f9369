"""The canonical chat request every frontend produces and every backend consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .messages import Message


@dataclass(slots=True, frozen=True)
class GenerationParams:
    """Sampling and length controls, under one name each whatever the wire format called them.

    `None` means "not given": a provider table only sees the parameters the caller set.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None

    def given(self) -> dict[str, Any]:
        """The parameters the caller set, by canonical name."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out


@dataclass(slots=True, frozen=True)
class Tool:
    """A function the model may call; `parameters` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(slots=True, frozen=True)
class ToolChoice:
    """`auto`, `none`, `required` (some tool), or `tool` with the tool's `name`."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(slots=True, frozen=True)
class ResponseFormat:
    """`text`, `json` (any JSON object) or `json_schema` (an object matching `schema`)."""

    type: Literal["text", "json", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True, frozen=True)
class ChatRequest:
    """One call of a chat model.

    `model` is the provider's own model name (the gateway strips the `provider/` prefix);
    `extra` holds provider-specific parameters by their wire name, which a provider's table either forwards
    or refuses by name.
    """

    model: str
    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
