"""A faithful fake of the Anthropic Messages API (``POST /v1/messages``, ``POST /v1/messages/count_tokens``,
``GET /v1/models``).

Requests are validated as the real API does (see `anthropic_validate`) and answered with realistic
``message`` objects or the named server-sent events of a streamed message. What to answer comes from a
`FakeScript`; see `script.FakeReply`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .anthropic_validate import (
    AnthropicError,
    merge_turns,
    thinking_enabled,
    validate_count_tokens_request,
    validate_messages_request,
)
from .common import (
    EventStreamResponse,
    cut_at_stop,
    echo_headers,
    example_from_schema,
    fake_id,
    fragments,
    record_request,
    retry_after_value,
    stream_pieces,
    truncate_words,
    word_count,
)
from .script import FakeReply, FakeScript, RecordedRequest

__all__ = ["API_VERSIONS", "DEFAULT_MODELS", "create_anthropic_app"]

API_VERSIONS = ("2023-06-01", "2023-01-01")  # documented; later dated versions (SDK 2.x) are accepted too
_DATED = re.compile(r"^20\d\d-[01]\d-[0-3]\d$")
DEFAULT_MODELS = ("claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5")
DEFAULT_THINKING = "Let me think about how to answer this."

_SCRIPTED_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Bad request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. For details, "
        "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage.",
    ),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def create_anthropic_app(script: FakeScript | None = None) -> Starlette:
    """The fake Anthropic API as a Starlette app; the script is also reachable as ``app.state.script``."""
    the_script = script if script is not None else FakeScript()

    async def messages(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        return await _handle_messages(recorded, the_script)

    async def count_tokens(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        try:
            _check_headers(recorded, the_script)
            if recorded.json is None:
                raise AnthropicError("There was an error parsing the body of your request: the body is not valid JSON")
            validate_count_tokens_request(recorded.json)
        except AnthropicError as exc:
            return _error_response(exc, the_script)
        reply = the_script.next_reply()
        if reply is not None and reply.status != 200:
            return _scripted_error(reply, recorded.json["model"], the_script, recorded)
        counted = reply.input_tokens if reply is not None and reply.input_tokens is not None else None
        return JSONResponse({"input_tokens": counted or _input_tokens(recorded.json)}, headers=_headers(the_script))

    async def list_models(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        try:
            _check_headers(recorded, the_script)
        except AnthropicError as exc:
            return _error_response(exc, the_script)
        names = sorted(the_script.models or DEFAULT_MODELS)
        data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-02-19T00:00:00Z"} for n in names]
        page = {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}
        return JSONResponse(page, headers=_headers(the_script))

    async def not_found(request: Request) -> Response:
        await record_request(request, the_script)
        return _error_response(AnthropicError("Not Found", status=404, type="not_found_error"), the_script)

    all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/{path:path}", not_found, methods=all_methods),
        ]
    )
    app.state.script = the_script
    return app


# ------------------------------------------------------------------------------------------- handling


def _check_headers(recorded: RecordedRequest, script: FakeScript) -> None:
    """``x-api-key`` (documented) or ``Authorization: Bearer`` (what SDK 2.x sends), then the version."""
    key = recorded.header("x-api-key")
    bearer = recorded.header("authorization") or ""
    if not key and bearer.startswith("Bearer "):
        key = bearer[7:].strip()
    if not key:
        raise AnthropicError("x-api-key header is required", status=401, type="authentication_error")
    if script.api_key is not None and key != script.api_key:
        raise AnthropicError("invalid x-api-key", status=401, type="authentication_error")
    version = recorded.header("anthropic-version")
    if not version:
        raise AnthropicError("anthropic-version: header is required")
    if version not in API_VERSIONS and not (_DATED.match(version) and version > API_VERSIONS[0]):
        raise AnthropicError(f"anthropic-version: invalid version '{version}'")


def _headers(script: FakeScript, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {
        "request-id": fake_id("req_011C", script.next_serial(), 20),
        "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
    }
    headers.update(extra or {})
    return headers


def _error_response(exc: AnthropicError, script: FakeScript, extra: Mapping[str, str] | None = None) -> Response:
    headers = _headers(script, extra)
    body = {
        "type": "error",
        "error": {"type": exc.type, "message": exc.message},
        "request_id": headers["request-id"],
    }
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _handle_messages(recorded: RecordedRequest, script: FakeScript) -> Response:
    try:
        _check_headers(recorded, script)
        if recorded.json is None:
            raise AnthropicError("There was an error parsing the body of your request: the body is not valid JSON")
        body = recorded.json
        validate_messages_request(body)
        if script.models is not None and body["model"] not in script.models:
            raise AnthropicError(f"model: {body['model']}", status=404, type="not_found_error")
    except AnthropicError as exc:
        return _error_response(exc, script)

    reply = script.next_reply()
    if reply is not None and reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    if reply is not None and reply.status != 200:
        return _scripted_error(reply, body["model"], script, recorded)
    chosen = reply if reply is not None else default_reply(body)
    plan = plan_message(body, chosen, script)
    extra = dict(chosen.headers)
    if chosen.retry_after is not None:
        extra["retry-after"] = retry_after_value(chosen.retry_after)
    if body.get("stream"):
        return EventStreamResponse(
            _stream_events(plan, chosen, recorded),
            headers=_headers(script, extra),
            chunk_delay_s=chosen.chunk_delay_s,
            cut_after=chosen.cut_stream_after,
        )
    return JSONResponse(_message_object(plan), headers=_headers(script, extra))


def _scripted_error(reply: FakeReply, model: str, script: FakeScript, recorded: RecordedRequest) -> Response:
    kind, message = _SCRIPTED_ERRORS.get(
        reply.status, ("api_error" if reply.status >= 500 else "invalid_request_error", "Error")
    )
    extra = dict(reply.headers)
    if reply.retry_after is not None:
        extra["retry-after"] = retry_after_value(reply.retry_after)
    if reply.status == 429:
        extra.setdefault("anthropic-ratelimit-requests-limit", "50")
        extra.setdefault("anthropic-ratelimit-requests-remaining", "0")
        extra.setdefault("anthropic-ratelimit-requests-reset", "2025-01-01T00:00:00Z")
    text = echo_headers(reply.error_message or message.format(model=model), reply, recorded)
    exc = AnthropicError(text, status=reply.status, type=reply.error_type or kind)
    return _error_response(exc, script, extra)


# -------------------------------------------------------------------------------------------- planning


@dataclass
class Plan:
    message_id: str
    model: str
    blocks: list[dict[str, Any]] = field(default_factory=list)  # final content blocks
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def _block_texts(blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    texts: list[str] = []
    for block in blocks:
        if block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(_block_texts(content))
    return texts


def last_user_text(body: Mapping[str, Any]) -> str:
    turns = merge_turns(body["messages"])
    for turn in reversed(turns):
        if turn.role == "user":
            return " ".join(b["text"] for _, _, b in turn.blocks if b["type"] == "text")
    return ""


def default_reply(body: Mapping[str, Any]) -> FakeReply:
    """What the fake answers when the script has no reply queued."""
    tools = [t for t in body.get("tools") or [] if t.get("type") in (None, "custom")]
    choice = body.get("tool_choice") or {}
    target: Mapping[str, Any] | None = None
    if tools and choice.get("type") == "any":
        target = tools[0]
    elif choice.get("type") == "tool":
        target = next((t for t in tools if t["name"] == choice["name"]), None)
    if target is not None:
        return FakeReply(tool_calls=[(target["name"], example_from_schema(target["input_schema"]))])
    return FakeReply(text=last_user_text(body) or "Hello!")


def _input_tokens(body: Mapping[str, Any]) -> int:
    words = 0
    system = body.get("system")
    if isinstance(system, str):
        words += word_count(system)
    elif isinstance(system, list):
        words += sum(word_count(b["text"]) for b in system)
    for turn in merge_turns(body["messages"]):
        words += sum(word_count(t) for t in _block_texts([b for _, _, b in turn.blocks])) + 3
    if body.get("tools"):
        words += word_count(json.dumps(body["tools"]).replace('"', " "))
    return max(1, words)


def plan_message(body: Mapping[str, Any], reply: FakeReply, script: FakeScript) -> Plan:
    plan = Plan(message_id=fake_id("msg_01", script.next_serial(), 22), model=body["model"])
    text = reply.resolved_text()
    calls = list(reply.tool_calls)
    stop_reason: str | None = None
    if text is not None:
        text, plan.stop_sequence = cut_at_stop(text, body.get("stop_sequences") or [])
        if plan.stop_sequence is not None:
            stop_reason, calls = "stop_sequence", []
        if word_count(text) > body["max_tokens"]:
            text, stop_reason, calls = truncate_words(text, body["max_tokens"]), "max_tokens", []
    if thinking_enabled(body):
        thought = reply.thinking if reply.thinking is not None else DEFAULT_THINKING
        signature = fake_id("EqQBCkgIARABGAIiQ", script.next_serial(), 48)
        plan.blocks.append({"type": "thinking", "thinking": thought, "signature": signature})
    if text is not None and (text or not calls):
        plan.blocks.append({"type": "text", "text": text})
    for name, args in calls:
        call_id = fake_id("toolu_01", script.next_serial(), 22)
        plan.blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
    plan.stop_reason = reply.finish or stop_reason or ("tool_use" if calls else "end_turn")
    if plan.stop_reason != "stop_sequence":
        plan.stop_sequence = None
    plan.input_tokens = reply.input_tokens if reply.input_tokens is not None else _input_tokens(body)
    out = sum(word_count(b.get("text", "") + " " + b.get("thinking", "")) for b in plan.blocks)
    out += sum(word_count(json.dumps(b["input"]).replace('"', " ")) + 3 for b in plan.blocks if "input" in b)
    plan.output_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, out)
    return plan


# ------------------------------------------------------------------------------------------- rendering


def _usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message_object(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.message_id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": plan.blocks,
        "stop_reason": plan.stop_reason,
        "stop_sequence": plan.stop_sequence,
        "usage": _usage(plan, plan.output_tokens),
    }


def _event(payload: Mapping[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def _stream_events(plan: Plan, reply: FakeReply, recorded: RecordedRequest) -> list[bytes]:
    start = {**_message_object(plan), "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = _usage(plan, 1)
    events = [_event({"type": "message_start", "message": start})]
    for index, block in enumerate(plan.blocks):
        kind = block["type"]
        if kind == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in stream_pieces(block["text"])]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in stream_pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            partial = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *fragments(partial)]]
        events.append(_event({"type": "content_block_start", "index": index, "content_block": opening}))
        if index == 0:
            events.append(_event({"type": "ping"}))
        events.extend(_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
        events.append(_event({"type": "content_block_stop", "index": index}))
    if not plan.blocks:
        events.append(_event({"type": "ping"}))
    usage = _usage(plan, plan.output_tokens)
    del usage["cache_creation"], usage["service_tier"]
    delta = {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence}
    events.append(_event({"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(_event({"type": "message_stop"}))
    if reply.stream_error is not None:
        message = echo_headers(reply.error_message or _default_message(reply.stream_error), reply, recorded)
        error = {"type": reply.stream_error, "message": message}
        events = [*events[: reply.stream_error_after], _event({"type": "error", "error": error})]
    return events


def _default_message(error_type: str) -> str:
    for kind, message in _SCRIPTED_ERRORS.values():
        if kind == error_type:
            return message
    return "Internal server error"
