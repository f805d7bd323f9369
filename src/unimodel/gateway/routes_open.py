"""Open models on both surfaces: the v2 run of any task, OpenAI chat/completions/embeddings, and metering."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import from_json, to_json
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..frontends import bytez_v2, openai_compat
from ..frontends.openai_compat import DecodedChat
from ..protocol import InvalidRequest, UnimodelError
from ..runtime.service import CHAT_TASKS, Metered
from .context import RequestContext
from .http import close_after, json_response

if TYPE_CHECKING:
    from .service import Gateway

log = logging.getLogger("unimodel.gateway")

METER = "cpu"  # instances run on this machine's CPUs


def meter_headers(metered: Metered | None) -> dict[str, str]:
    headers = {"inference-meter": METER}
    if metered is not None:
        headers["inference-time"] = f"{metered.seconds:.3f}"
    return headers


def _on_stream_error(model_id: str) -> Callable[[UnimodelError], None]:
    def on_error(error: UnimodelError) -> None:
        log.warning(
            "stream ended early model=%s status=%s code=%s: %s", model_id, error.status, error.code, error.message
        )

    return on_error


async def _admit(gateway: Gateway, ctx: RequestContext, model_id: str) -> Metered:
    """Note the call as an open-model call and take one of the key's concurrent open-model slots."""
    ctx.routed(model_id, "open")
    await gateway.platform.acquire_open_slot(ctx)
    ctx.metered = Metered()
    return ctx.metered


async def forward(gateway: Gateway, request: Request, ctx: RequestContext, model_id: str, body: bytes) -> Response:
    """`serve --workers N`: the runtime process answers open models; the caller's slot is taken here first."""
    assert gateway.link is not None
    ctx.routed(model_id, "open")
    await gateway.platform.acquire_open_slot(ctx)
    return await gateway.link.forward(request, body, ctx)


async def run_v2(gateway: Gateway, ctx: RequestContext, model_id: str, body: bytes) -> Response:
    """`POST /models/v2/{modelId}` for an open model: chat tasks through the canonical form, others as they are."""
    open_models = gateway.open
    if open_models.task(model_id) in CHAT_TASKS:
        chat = bytez_v2.decode_chat(body, model_id)
        metered = await _admit(gateway, ctx, model_id)
        if chat.stream:
            events = await open_models.chat_stream(model_id, chat, metered)
            chunks = bytez_v2.encode_stream(events, _on_stream_error(model_id), ctx.add_usage)
            return StreamingResponse(
                close_after(chunks, events.aclose, model_id),
                media_type="text/plain; charset=utf-8",
                headers=meter_headers(None),
            )
        result = await open_models.chat(model_id, chat, metered)
        ctx.add_usage(result.usage)
        return json_response(bytez_v2.encode_result(result), headers=meter_headers(metered))
    payload = _run_body(body)
    if payload.get("stream"):
        raise InvalidRequest(
            f"'{model_id}' is a {open_models.task(model_id)} model; streaming is for chat models.", param="stream"
        )
    metered = await _admit(gateway, ctx, model_id)
    output = await open_models.run(model_id, payload, metered)
    return json_response(to_json({"error": None, "output": output}), headers=meter_headers(metered))


def _run_body(body: bytes) -> dict[str, Any]:
    try:
        bytez_v2.RunRequest.model_validate_json(body)
        parsed = from_json(body)
    except ValidationError as exc:
        from ..frontends.wire import invalid_request

        raise invalid_request(exc) from None
    assert isinstance(parsed, dict)
    return parsed


async def openai_chat(gateway: Gateway, ctx: RequestContext, decoded: DecodedChat) -> Response:
    open_models = gateway.open
    model_id = decoded.model_id
    task = open_models.task(model_id)
    if task not in CHAT_TASKS:
        raise InvalidRequest(
            f"'{model_id}' is a {task} model, not a chat model"
            + ("; use /v1/embeddings." if "extraction" in task or "similarity" in task else "."),
            param="model",
        )
    chat = replace(decoded.request, model=model_id)
    metered = await _admit(gateway, ctx, model_id)
    if chat.stream:
        events = await open_models.chat_stream(model_id, chat, metered)
        chunks = openai_compat.encode_stream(events, model_id, decoded.include_usage, ctx.add_usage)
        return StreamingResponse(
            close_after(chunks, events.aclose, model_id),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **meter_headers(None)},
        )
    result = await open_models.chat(model_id, chat, metered)
    ctx.add_usage(result.usage)
    return json_response(openai_compat.encode_result(result, model_id), headers=meter_headers(metered))


async def openai_passthrough(
    gateway: Gateway, ctx: RequestContext, path: str, model_id: str, body: dict[str, Any]
) -> Response:
    """`/v1/completions` and `/v1/embeddings` for an open model: the instance speaks them natively."""
    metered = await _admit(gateway, ctx, model_id)
    raw = await gateway.open.openai_passthrough(model_id, path, body, metered)
    ctx.add_openai_usage(from_json(raw))
    return json_response(raw, headers=meter_headers(metered))
