"""The OpenAI Responses surface, its answer side: the Response object, and the typed event stream.

    call = ResponseCall(new_id("resp_"), model_id, wire, stored=True)
    body = call.response(output_items(result), status_of(result.finish_reason), result.usage)
    async for chunk in encode_stream(events, call, on_usage, finished): ...

A stream is `response.created`, `response.in_progress`, then per output item `response.output_item.added`, its
content (`response.content_part.added` + `response.output_text.delta`… for text, `response.reasoning_text.delta`…
for reasoning, `response.function_call_arguments.delta`… for a call) and its `….done` events, then
`response.completed` (or `response.incomplete` when the answer was cut short). A failure after the stream began is
an `error` event followed by `response.failed`. Every event carries its `sequence_number`, from 0.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import to_json

from ..protocol import (
    ChatResult,
    Finish,
    FinishReason,
    ReasoningDelta,
    ReasoningPart,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallPart,
    UnimodelError,
    Usage,
    UsageEvent,
)
from .openai_compat import error_body
from .openai_responses import ResponsesRequest
from .openai_responses_items import new_id

Status = Literal["in_progress", "completed", "incomplete", "failed"]
# Canonical finish reasons that cut an answer short, as OpenAI's `incomplete_details.reason`.
INCOMPLETE: dict[FinishReason, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(slots=True)
class ResponseCall:
    """What every Response object of one call shares: its id, the model as the caller named it, and the request's
    settings, echoed as OpenAI echoes them."""

    id: str
    model: str
    wire: ResponsesRequest
    stored: bool
    created_at: int = field(default_factory=lambda: int(time.time()))

    def response(
        self,
        output: list[dict[str, Any]],
        status: Status,
        usage: Usage | None = None,
        *,
        incomplete: str | None = None,
        error: UnimodelError | None = None,
    ) -> dict[str, Any]:
        wire = self.wire
        done = status in ("completed", "incomplete", "failed")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None if error is None else _response_error(error),
            "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
            "instructions": wire.instructions,
            "max_output_tokens": wire.max_output_tokens,
            "max_tool_calls": None,
            "metadata": wire.metadata or {},
            "model": self.model,
            "output": output,
            "parallel_tool_calls": wire.parallel_tool_calls is not False,
            "previous_response_id": wire.previous_response_id,
            "prompt_cache_key": wire.prompt_cache_key,
            "reasoning": {"effort": wire.reasoning.effort if wire.reasoning else None, "summary": None},
            "safety_identifier": wire.safety_identifier,
            "service_tier": wire.service_tier,
            "store": self.stored,
            "temperature": wire.temperature,
            "text": {
                "format": (wire.text.format if wire.text else None) or {"type": "text"},
                "verbosity": wire.text.verbosity if wire.text else None,
            },
            "tool_choice": wire.tool_choice if wire.tool_choice is not None else "auto",
            "tools": [_tool_json(t) for t in wire.tools or ()],
            "top_p": wire.top_p,
            "truncation": "disabled",
            "usage": usage_json(usage) if done and usage is not None else None,
            "user": wire.user,
        }


def _tool_json(tool: dict[str, Any]) -> dict[str, Any]:
    return {"description": None, "parameters": None, "strict": None, **tool}


def _response_error(error: UnimodelError) -> dict[str, Any]:
    return {"code": "server_error" if error.status >= 500 else error.code, "message": error.message}


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens or 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def status_of(reason: FinishReason | None) -> tuple[Status, str | None]:
    """The Response status (and the incomplete reason) for a canonical finish reason."""
    incomplete = INCOMPLETE.get(reason) if reason is not None else None
    return ("incomplete", incomplete) if incomplete is not None else ("completed", None)


# ---- whole answers -------------------------------------------------------------------------------------------


def output_items(result: ChatResult, item_status: str = "completed") -> list[dict[str, Any]]:
    """A finished answer's output items: its reasoning, its text as one message, its calls."""
    items: list[dict[str, Any]] = []
    parts = result.reasoning_parts or ([ReasoningPart(result.reasoning)] if result.reasoning else [])
    items.extend(reasoning_item(new_id("rs_"), p.text, p.signature, p.redacted) for p in parts)
    if result.text or not result.tool_calls:
        items.append(message_item(new_id("msg_"), result.text or "", item_status))
    items.extend(function_call_item(new_id("fc_"), c, item_status) for c in result.tool_calls)
    return items


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [text_part(text)],
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, signature: str | None, redacted: bool = False) -> dict[str, Any]:
    """Reasoning text with its signature in `encrypted_content`; a redacted block is encrypted content alone."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
    if redacted:
        item["encrypted_content"] = text
        return item
    item["content"] = [{"type": "reasoning_text", "text": text}]
    if signature:
        item["encrypted_content"] = signature
    return item


def function_call_item(item_id: str, call: ToolCallPart, status: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": call.arguments,
        "call_id": call.id,
        "name": call.name,
    }
    if call.signature:
        item["extra_content"] = {"google": {"thought_signature": call.signature}}
    return item


def encode_result(call: ResponseCall, result: ChatResult) -> dict[str, Any]:
    status, incomplete = status_of(result.finish_reason)
    output = output_items(result, "incomplete" if status == "incomplete" else "completed")
    return call.response(output, status, result.usage, incomplete=incomplete)


# ---- streams -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """An output item being streamed: its place in `output`, and what has come of it so far."""

    index: int
    item: dict[str, Any]
    text: list[str] = field(default_factory=list)
    where: bytes | None = None  # a delta event's JSON between its sequence number and its delta (text deltas)


class _Events:
    """The stream's state: the output items so far, the ones still open, and the next sequence number."""

    def __init__(self) -> None:
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.message: _Open | None = None
        self.reasoning: _Open | None = None
        self.calls: dict[int, _Open] = {}

    def event(self, kind: str, payload: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + to_json(data) + b"\n\n"

    def _head(self, kind: str) -> bytes:
        """An event's bytes up to its sequence number's end (what `event` writes first), for events whose rest is
        JSON already made: `kind` is a plain event name, which JSON writes as it is."""
        head = b'event: %s\ndata: {"type":"%s","sequence_number":%d' % (kind.encode(), kind.encode(), self.sequence)
        self.sequence += 1
        return head

    def response_event(self, kind: str, response_json: bytes) -> bytes:
        """`event(kind, {"response": …})` with the Response object's JSON made once (created and in_progress share
        it)."""
        return self._head(kind) + b',"response":' + response_json + b"}\n\n"

    def _add(self, item: dict[str, Any]) -> tuple[_Open, bytes]:
        opened = _Open(len(self.output), item)
        self.output.append(item)
        return opened, self.event("response.output_item.added", {"output_index": opened.index, "item": item})

    def text(self, delta: str) -> list[bytes]:
        message = self.message
        if message is None or self.reasoning is not None or self.calls:
            out = [*self.close_reasoning(), *self.close_calls()]
            if message is None:
                message, added = self._add(message_item(new_id("msg_"), "", "in_progress") | {"content": []})
                self.message = message
                where = {"item_id": message.item["id"], "output_index": message.index, "content_index": 0}
                out += [added, self.event("response.content_part.added", {**where, "part": text_part("")})]
        else:
            out = []
        message.text.append(delta)
        if message.where is None:  # `{"item_id":…,"output_index":…,"content_index":0,"delta":`, made once per item
            where = {"item_id": message.item["id"], "output_index": message.index, "content_index": 0}
            message.where = b"," + to_json(where)[1:-1] + b',"delta":'
        event = self._head("response.output_text.delta") + message.where + to_json(delta) + b',"logprobs":[]}\n\n'
        out.append(event)
        return out

    def thought(self, event: ReasoningDelta) -> list[bytes]:
        out = [*self.close_message(), *self.close_calls()]
        if event.redacted:
            out += self.close_reasoning()
            opened, added = self._add(reasoning_item(new_id("rs_"), event.text, None, redacted=True))
            return [
                *out,
                added,
                self.event("response.output_item.done", {"output_index": opened.index, "item": opened.item}),
            ]
        if self.reasoning is None:
            item = {"id": new_id("rs_"), "type": "reasoning", "summary": [], "content": []}
            self.reasoning, added = self._add(item)
            out.append(added)
        if event.text:
            self.reasoning.text.append(event.text)
            where = {"item_id": self.reasoning.item["id"], "output_index": self.reasoning.index, "content_index": 0}
            out.append(self.event("response.reasoning_text.delta", {**where, "delta": event.text}))
        if event.signature:  # a signature closes the block
            self.reasoning.item["encrypted_content"] = event.signature
            out += self.close_reasoning()
        return out

    def call(self, event: ToolCallDelta) -> list[bytes]:
        out = [*self.close_message(), *self.close_reasoning()]
        opened = self.calls.get(event.index)
        if opened is None:
            call = ToolCallPart(event.id or new_id("call_"), event.name or "", "", event.signature)
            opened, added = self._add(function_call_item(new_id("fc_"), call, "in_progress"))
            self.calls[event.index] = opened
            out.append(added)
        elif event.signature:
            opened.item["extra_content"] = {"google": {"thought_signature": event.signature}}
        if event.arguments:
            opened.text.append(event.arguments)
            delta = {"item_id": opened.item["id"], "output_index": opened.index, "delta": event.arguments}
            out.append(self.event("response.function_call_arguments.delta", delta))
        return out

    def close_message(self, status: str = "completed") -> list[bytes]:
        opened, self.message = self.message, None
        if opened is None:
            return []
        text = "".join(opened.text)
        where = {"item_id": opened.item["id"], "output_index": opened.index, "content_index": 0}
        item = self.output[opened.index] = message_item(opened.item["id"], text, status)
        return [
            self.event("response.output_text.done", {**where, "text": text, "logprobs": []}),
            self.event("response.content_part.done", {**where, "part": text_part(text)}),
            self.event("response.output_item.done", {"output_index": opened.index, "item": item}),
        ]

    def close_reasoning(self) -> list[bytes]:
        opened, self.reasoning = self.reasoning, None
        if opened is None:
            return []
        text = "".join(opened.text)
        where = {"item_id": opened.item["id"], "output_index": opened.index, "content_index": 0}
        signature = opened.item.get("encrypted_content")
        item = self.output[opened.index] = reasoning_item(opened.item["id"], text, signature)
        return [
            self.event("response.reasoning_text.done", {**where, "text": text}),
            self.event("response.output_item.done", {"output_index": opened.index, "item": item}),
        ]

    def close_calls(self, status: str = "completed") -> list[bytes]:
        out: list[bytes] = []
        for opened in sorted(self.calls.values(), key=lambda o: o.index):
            item = opened.item | {"arguments": "".join(opened.text), "status": status}
            self.output[opened.index] = item
            where = {"item_id": item["id"], "output_index": opened.index}
            out.append(self.event("response.function_call_arguments.done", {**where, "arguments": item["arguments"]}))
            out.append(self.event("response.output_item.done", {"output_index": opened.index, "item": item}))
        self.calls.clear()
        return out

    def close_all(self, status: str) -> list[bytes]:
        return [*self.close_reasoning(), *self.close_message(status), *self.close_calls(status)]

    def settle(self) -> None:
        """Put the open items into `output` as they stand (incomplete), sending no event: a failed stream."""
        if self.message is not None:
            opened = self.message
            self.output[opened.index] = message_item(opened.item["id"], "".join(opened.text), "incomplete")
        if self.reasoning is not None:
            opened = self.reasoning
            self.output[opened.index] = reasoning_item(opened.item["id"], "".join(opened.text), None)
        for opened in self.calls.values():
            self.output[opened.index] = opened.item | {"arguments": "".join(opened.text), "status": "incomplete"}
        self.message = self.reasoning = None
        self.calls.clear()


Finished = Callable[[dict[str, Any]], Awaitable[bool]]


async def encode_stream(
    events: AsyncIterator[StreamEvent],
    call: ResponseCall,
    on_usage: Callable[[Usage], None],
    finished: Finished,
    *,
    joined: bool = False,
) -> AsyncIterator[bytes]:
    """SSE events for a canonical stream. `finished(response)` hears the final Response object (completed,
    incomplete or failed) before the last event goes out — it stores it — and answers whether it was stored.

    One chunk per event; `joined`: one chunk per canonical event, holding every event it makes (the gateway's
    way: one write to the socket instead of several, the same bytes)."""
    async for group in _event_groups(events, call, on_usage, finished):
        if joined:
            yield group[0] if len(group) == 1 else b"".join(group)
        else:
            for chunk in group:
                yield chunk


async def _event_groups(
    events: AsyncIterator[StreamEvent],
    call: ResponseCall,
    on_usage: Callable[[Usage], None],
    finished: Finished,
) -> AsyncIterator[list[bytes]]:
    """The events of `encode_stream`, in groups: those one canonical event makes (never an empty group)."""
    state = _Events()
    start = to_json(call.response([], "in_progress"))
    yield [state.response_event("response.created", start), state.response_event("response.in_progress", start)]
    usage: Usage | None = None
    finish: Finish | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            if event.text:
                yield state.text(event.text)
        elif isinstance(event, ReasoningDelta):
            group = state.thought(event)
            if group:
                yield group
        elif isinstance(event, ToolCallDelta):
            group = state.call(event)
            if group:
                yield group
        elif isinstance(event, UsageEvent):
            usage = event.usage
            on_usage(usage)
        elif isinstance(event, Finish):
            finish = event
        elif isinstance(event, StreamError):
            state.settle()
            failed = call.response(state.output, "failed", usage, error=event.error)
            call.stored = await finished(failed)
            failed["store"] = call.stored
            body = error_body(event.error)["error"]
            error = {"code": body["code"], "message": body["message"], "param": body["param"]}
            yield [state.event("error", error), state.event("response.failed", {"response": failed})]
            return
    status, incomplete = status_of(finish.reason if finish is not None else None)
    closing = state.close_all("incomplete" if status == "incomplete" else "completed")
    final = call.response(state.output, status, usage or Usage(), incomplete=incomplete)
    call.stored = await finished(final)
    final["store"] = call.stored
    yield [*closing, state.event(f"response.{status}", {"response": final})]
