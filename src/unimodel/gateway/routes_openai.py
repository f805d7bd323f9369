"""The OpenAI-compatible routes, served under `/models/v2/openai/v1` and `/v1`."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import openai_compat
from .http import close_after, guarded, json_response, read_body
from .service import Gateway

openai = guarded(openai_compat.error_body)

PREFIXES = ("/models/v2/openai/v1", "/v1")


def routes(gateway: Gateway) -> list[Route]:
    @openai
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions; `model` is a unimodel model id such as `anthropic/claude-sonnet-4-5`."""
        body = await read_body(request, gateway.settings.server.max_body_bytes)
        decoded = openai_compat.decode_chat(body)
        route = gateway.catalog.resolve(decoded.model_id)
        chat = replace(decoded.request, model=route.model)
        key = gateway.provider_key(route, request.headers)
        if chat.stream:
            events = await gateway.stream(route, chat, key)
            chunks = openai_compat.encode_stream(events, decoded.model_id, decoded.include_usage)
            return StreamingResponse(
                close_after(chunks, events.aclose, decoded.model_id),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        result = await gateway.complete(route, chat, key)
        return json_response(openai_compat.encode_result(result, decoded.model_id))

    @openai
    async def list_models(request: Request) -> Response:
        return json_response(openai_compat.encode_models(gateway.catalog.closed_model_ids()))

    out: list[Route] = []
    for prefix in PREFIXES:
        out.append(Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]))
        out.append(Route(f"{prefix}/models", list_models, methods=["GET"]))
    return out
