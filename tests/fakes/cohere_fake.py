"""A faithful fake of the Cohere v2 Chat API (``POST /v2/chat``, ``Authorization: Bearer``).

Requests are validated as the real API does (see `cohere_validate`) and answered with realistic chat responses
(``{id, finish_reason, message: {role, content, tool_plan, tool_calls}, usage: {billed_units, tokens}}``) or the
typed server-sent events of a streamed one (``message-start`` … ``message-end``). What to answer comes from a
`FakeScript` (see `script.FakeReply`); Cohere's finish reasons are ``COMPLETE``, ``MAX_TOKENS``,
``STOP_SEQUENCE``, ``TOOL_CALL``, ``ERROR`` and ``TIMEOUT``. Specific to this fake:

- a reply with tool calls says its plan as ``tool_plan`` (``FakeReply.text``, or a default sentence), except
  when thinking is on: a reasoning model plans in a ``thinking`` content block instead;
- ``thinking`` blocks come when the request has ``thinking: {type: enabled}`` or the reply sets ``thinking``;
- ``stream_error`` ends the stream with ``message-end`` whose ``finish_reason`` is ``ERROR`` and whose
  ``delta.error`` is the message (Cohere reports in-stream failures that way).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .cohere_validate import CohereError, thinking_enabled, validate_chat_request
from .common import (
    EventStreamResponse,
    cut_at_stop,
    example_from_schema,
    fragments,
    record_request,
    retry_after_value,
    stream_pieces,
    truncate_words,
    word_count,
)
from .script import FakeReply, FakeScript, RecordedRequest

__all__ = ["DEFAULT_MODELS", "create_cohere_app"]

DEFAULT_MODELS = (
    "command-a-03-2025",
    "command-a-reasoning-08-2025",
    "command-a-vision-07-2025",
    "command-r7b-12-2024",
    "command-r-plus-08-2024",
)
DEFAULT_THINKING = "The user asked a question; I will answer it directly."
TEMPLATE_TOKENS = 64  # the prompt template Cohere adds: counted in `tokens`, never billed

_SCRIPTED_ERRORS: Mapping[int, str] = {
    400: "invalid request: Bad request.",
    401: "invalid api token",
    402: "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue",
    403: "Forbidden: your API key does not have access to this resource.",
    404: "model '{model}' not found, make sure the correct model ID was used and that you have access to the model.",
    422: "unprocessable entity",
    429: "You are past the per minute request limit, please wait and try again later.",
    498: "blocked input: please adjust your prompt and try again, as it may be a potential violation of our Usage Guidelines.",
    499: "request cancelled",
    500: "internal server error, this has been reported to our developers.",
    501: "not implemented",
    503: "service unavailable",
    504: "gateway timeout",
}


def create_cohere_app(script: FakeScript | None = None) -> Starlette:
    """The fake Cohere API as a Starlette app; the script is also reachable as ``app.state.script``."""
    the_script = script if script is not None else FakeScript()

    async def chat(request: Request) -> Response:
        recorded = await record_request(request, the_script)
        return await _handle_chat(recorded, the_script)

    async def not_found(request: Request) -> Response:
        await record_request(request, the_script)
        return PlainTextResponse("404 page not found", status_code=404)

    all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/v2/chat", chat, methods=["POST"]),
            Route("/{path:path}", not_found, methods=all_methods),
        ]
    )
    app.state.script = the_script
    return app


# ------------------------------------------------------------------------------------------- handling


def _uuid(script: FakeScript) -> str:
    digest = hashlib.sha256(f"cohere:{script.next_serial()}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _headers(script: FakeScript, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"x-debug-trace-id": hashlib.sha256(str(script.next_serial()).encode()).hexdigest()[:32]}
    headers.update(extra or {})
    return headers


def _error_response(exc: CohereError, script: FakeScript, extra: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(
        {"id": _uuid(script), "message": exc.message}, status_code=exc.status, headers=_headers(script, extra)
    )


def _check_auth(recorded: RecordedRequest, script: FakeScript) -> None:
    header = recorded.header("authorization") or ""
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise CohereError("no api key supplied", status=401)
    if script.api_key is not None and key != script.api_key:
        raise CohereError("invalid api token", status=401)


async def _handle_chat(recorded: RecordedRequest, script: FakeScript) -> Response:
    try:
        _check_auth(recorded, script)
        if recorded.json is None:
            raise CohereError("invalid json syntax: the request body is not valid JSON")
        body = recorded.json
        validate_chat_request(body)
        if script.models is not None and body["model"] not in script.models:
            raise CohereError(_SCRIPTED_ERRORS[404].format(model=body["model"]), status=404)
    except CohereError as exc:
        return _error_response(exc, script)

    reply = script.next_reply()
    if reply is not None and reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    if reply is not None and reply.status != 200:
        return _scripted_error(reply, body["model"], script)
    chosen = reply if reply is not None else default_reply(body)
    plan = plan_chat(body, chosen, script)
    extra = {"num_tokens": str(plan.input_tokens + plan.output_tokens), **chosen.headers}
    if chosen.retry_after is not None:
        extra["retry-after"] = retry_after_value(chosen.retry_after)
    if body.get("stream"):
        return EventStreamResponse(
            _stream_events(plan, chosen),
            headers=_headers(script, extra),
            chunk_delay_s=chosen.chunk_delay_s,
            cut_after=chosen.cut_stream_after,
        )
    return JSONResponse(_chat_object(plan), headers=_headers(script, extra))


def _scripted_error(reply: FakeReply, model: str, script: FakeScript) -> Response:
    message = reply.error_message or _SCRIPTED_ERRORS.get(reply.status, "internal server error").format(model=model)
    extra = dict(reply.headers)
    if reply.retry_after is not None:
        extra["retry-after"] = retry_after_value(reply.retry_after)
    return _error_response(CohereError(message, status=reply.status), script, extra)


# -------------------------------------------------------------------------------------------- planning


@dataclass
class Plan:
    response_id: str
    thinking: str | None = None
    text: str | None = None
    tool_plan: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "COMPLETE"
    input_tokens: int = 0
    output_tokens: int = 0
    logprobs: bool = False


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for block in content or []:
        if block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "document":
            data = block["document"]["data"]
            texts.append(data if isinstance(data, str) else json.dumps(data))
    return " ".join(texts)


def last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            return _text_of(message["content"])
    return ""


def default_reply(body: Mapping[str, Any]) -> FakeReply:
    """What the fake answers when the script has no reply queued."""
    tools = body.get("tools") or []
    if tools and body.get("tool_choice") == "REQUIRED":
        fn = tools[0]["function"]
        return FakeReply(tool_calls=[(fn["name"], example_from_schema(fn["parameters"]))])
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        return FakeReply(text=json.dumps(example_from_schema(fmt.get("json_schema") or {"type": "object"})))
    return FakeReply(text=last_user_text(body) or "Hello!")


def call_id(name: str, serial: int) -> str:
    """Cohere's tool-call ids: the tool name, an underscore and 12 lowercase letters and digits."""
    digest = int.from_bytes(hashlib.sha256(f"{name}:{serial}".encode()).digest(), "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    chars = []
    for _ in range(12):
        digest, rest = divmod(digest, 36)
        chars.append(alphabet[rest])
    return f"{name}_{''.join(chars)}"


def _input_tokens(body: Mapping[str, Any]) -> int:
    words = sum(word_count(_text_of(m.get("content"))) + 3 for m in body["messages"])
    if body.get("tools"):
        words += word_count(json.dumps(body["tools"]).replace('"', " "))
    return max(1, words)


def plan_chat(body: Mapping[str, Any], reply: FakeReply, script: FakeScript) -> Plan:
    plan = Plan(response_id=_uuid(script), logprobs=bool(body.get("logprobs")))
    thinking = thinking_enabled(body) or reply.thinking is not None
    disabled = (body.get("thinking") or {}).get("type") == "disabled"
    if thinking and not disabled:
        plan.thinking = reply.thinking if reply.thinking is not None else DEFAULT_THINKING
    calls = list(reply.tool_calls) if body.get("tool_choice") != "NONE" else []
    text = reply.text if calls or reply.text is not None else "Hello!"
    finish: str | None = None
    if calls:
        if plan.thinking is None:
            names = " and ".join(dict.fromkeys(name for name, _ in calls))
            plan.tool_plan = text if text else f"I will use the {names} tool to answer the question."
        text = None
        finish = "TOOL_CALL"
    elif text is not None:
        text, stop = cut_at_stop(text, body.get("stop_sequences") or [])
        if stop is not None:
            finish = "STOP_SEQUENCE"
        limit = body.get("max_tokens")
        if limit is not None and word_count(text) > limit:
            text, finish = truncate_words(text, limit), "MAX_TOKENS"
    plan.text = text
    for name, args in calls:
        function = {"name": name, "arguments": json.dumps(args)}
        plan.calls.append({"id": call_id(name, script.next_serial()), "type": "function", "function": function})
    plan.finish_reason = reply.finish or finish or "COMPLETE"
    plan.input_tokens = reply.input_tokens if reply.input_tokens is not None else _input_tokens(body)
    out = word_count(" ".join(filter(None, [plan.thinking, plan.text, plan.tool_plan])))
    out += sum(word_count(c["function"]["arguments"].replace('"', " ")) + 3 for c in plan.calls)
    plan.output_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, out)
    return plan


# ------------------------------------------------------------------------------------------- rendering


def _usage(plan: Plan) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": plan.input_tokens, "output_tokens": plan.output_tokens},
        "tokens": {"input_tokens": plan.input_tokens + TEMPLATE_TOKENS, "output_tokens": plan.output_tokens},
        "cached_tokens": 0,
    }


def _token_logprob(piece: str, serial: int) -> dict[str, Any]:
    return {"text": piece, "token_ids": [1000 + serial], "logprobs": [-0.01 * (serial % 7 + 1)]}


def _chat_object(plan: Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    content: list[dict[str, Any]] = []
    if plan.thinking is not None:
        content.append({"type": "thinking", "thinking": plan.thinking})
    if plan.text is not None:
        content.append({"type": "text", "text": plan.text})
    if plan.tool_plan is not None:
        message["tool_plan"] = plan.tool_plan
    if plan.calls:
        message["tool_calls"] = plan.calls
    if content:
        message["content"] = content
    out: dict[str, Any] = {
        "id": plan.response_id,
        "message": message,
        "finish_reason": plan.finish_reason,
        "usage": _usage(plan),
    }
    if plan.logprobs and plan.text:
        out["logprobs"] = [_token_logprob(p, i) for i, p in enumerate(stream_pieces(plan.text))]
    return out


def _event(payload: Mapping[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _stream_events(plan: Plan, reply: FakeReply) -> list[bytes]:
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events = [_event({"id": plan.response_id, "type": "message-start", "delta": {"message": start}})]
    index = 0
    for kind, value in (("thinking", plan.thinking), ("text", plan.text)):
        if value is None:
            continue
        opening = {"type": kind, kind: ""}
        events.append(_event({"type": "content-start", "index": index, "delta": {"message": {"content": opening}}}))
        for serial, piece in enumerate(stream_pieces(value)):
            delta: dict[str, Any] = {
                "type": "content-delta",
                "index": index,
                "delta": {"message": {"content": {kind: piece}}},
            }
            if plan.logprobs and kind == "text":
                delta["logprobs"] = _token_logprob(piece, serial)
            events.append(_event(delta))
        events.append(_event({"type": "content-end", "index": index}))
        index += 1
    for piece in stream_pieces(plan.tool_plan or ""):
        events.append(_event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}))
    for i, call in enumerate(plan.calls):
        opening = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append(_event({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": opening}}}))
        for frag in fragments(call["function"]["arguments"]):
            piece_delta = {"message": {"tool_calls": {"function": {"arguments": frag}}}}
            events.append(_event({"type": "tool-call-delta", "index": i, "delta": piece_delta}))
        events.append(_event({"type": "tool-call-end", "index": i}))
    end = {"finish_reason": plan.finish_reason, "usage": _usage(plan)}
    events.append(_event({"type": "message-end", "delta": end}))
    if reply.stream_error is not None:
        error = reply.error_message or f"{reply.stream_error}: internal server error"
        failed = {"type": "message-end", "delta": {"error": error, "finish_reason": "ERROR", "usage": _usage(plan)}}
        events = [*events[: reply.stream_error_after], _event(failed)]
    return events
