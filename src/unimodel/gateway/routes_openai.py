"""The OpenAI-compatible routes, served under `/models/v2/openai/v1` and `/v1`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import openai_compat
from ..protocol import InvalidRequest
from . import dispatch, routes_open
from .context import context
from .dispatch import ForwardTarget, OpenTarget
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
        ctx = context(request)
        route = await dispatch.resolve(gateway, decoded.model_id, ctx.principal)
        if isinstance(route, ForwardTarget):
            return await routes_open.forward(gateway, request, ctx, route.model_id, body)
        if isinstance(route, OpenTarget):
            return await routes_open.openai_chat(gateway, ctx, replace(decoded, model_id=route.model_id))
        ctx.routed(decoded.model_id, "closed", route.provider)
        chat = replace(decoded.request, model=route.model)
        key = gateway.provider_key(route, request.headers, ctx.principal)
        if chat.stream:
            events = await gateway.stream(route, chat, key)
            chunks = openai_compat.encode_stream(events, decoded.model_id, decoded.include_usage, ctx.add_usage)
            return StreamingResponse(
                close_after(chunks, events.aclose, decoded.model_id),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        result = await gateway.complete(route, chat, key)
        ctx.add_usage(result.usage)
        return json_response(openai_compat.encode_result(result, decoded.model_id))

    @openai
    async def list_models(request: Request) -> Response:
        models = [*gateway.open.catalog.tasks(), *gateway.catalog.closed_model_ids()]
        return json_response(openai_compat.encode_models(models))

    def native(path: str, what: str) -> Callable[[Request], Awaitable[Response]]:
        @openai
        async def endpoint(request: Request) -> Response:
            """OpenAI completions or embeddings; open models serve them natively."""
            body = await read_body(request, gateway.settings.server.max_body_bytes)
            payload = openai_compat.decode_object(body)
            model_id = payload.get("model")
            if not isinstance(model_id, str) or not model_id:
                raise InvalidRequest("model: this field is required.", param="model")
            if payload.get("stream"):
                raise InvalidRequest(f"Streaming {what} is not supported yet; use chat completions.", param="stream")
            ctx = context(request)
            route = await dispatch.resolve(gateway, model_id, ctx.principal)
            if isinstance(route, ForwardTarget):
                return await routes_open.forward(gateway, request, ctx, route.model_id, body)
            if isinstance(route, OpenTarget):
                return await routes_open.openai_passthrough(gateway, ctx, path, route.model_id, payload)
            raise InvalidRequest(
                f"'{model_id}' is a closed chat model; {what} are served for open models only.", param="model"
            )

        return endpoint

    completions = native("/v1/completions", "completions")
    embeddings = native("/v1/embeddings", "embeddings")

    out: list[Route] = []
    for prefix in PREFIXES:
        out.append(Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]))
        out.append(Route(f"{prefix}/models", list_models, methods=["GET"]))
        out.append(Route(f"{prefix}/completions", completions, methods=["POST"]))
        out.append(Route(f"{prefix}/embeddings", embeddings, methods=["POST"]))
    return out
