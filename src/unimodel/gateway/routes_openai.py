"""The OpenAI-compatible routes, served under `/models/v2/openai/v1` and `/v1`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import openai_compat
from ..protocol import InvalidRequest
from ..runtime.service import CHAT_TASKS
from . import dispatch
from .context import context
from .http import close_after, guarded, json_response, read_body
from .model_backends import ClosedBackend, ForwardedBackend
from .service import Gateway

openai = guarded(openai_compat.SURFACE.error_body)


def routes(gateway: Gateway) -> list[Route]:
    @openai
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions; `model` is a unimodel model id such as `anthropic/claude-sonnet-4-5`."""
        body = await read_body(request, gateway.settings.server.max_body_bytes)
        decoded = openai_compat.decode_chat(body)
        ctx = context(request)
        backend = await dispatch.backend_for(gateway, decoded.model_id, ctx, request.headers)
        if isinstance(backend, ForwardedBackend):
            return await backend.forward(request, body)
        if backend.task not in CHAT_TASKS:
            embeds = "extraction" in backend.task or "similarity" in backend.task
            raise InvalidRequest(
                f"'{backend.model_id}' is a {backend.task} model, not a chat model"
                + ("; use /v1/embeddings." if embeds else "."),
                param="model",
            )
        chat = replace(decoded.request, model=backend.name)
        if chat.stream:
            events = await backend.stream(chat)
            chunks = openai_compat.encode_stream(events, backend.model_id, decoded.include_usage, ctx.add_usage)
            return StreamingResponse(
                close_after(chunks, events.aclose, backend.model_id),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", **backend.headers(streaming=True)},
            )
        result = await backend.complete(chat)
        return json_response(openai_compat.encode_result(result, backend.model_id), headers=backend.headers())

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
            backend = await dispatch.backend_for(gateway, model_id, context(request), request.headers)
            if isinstance(backend, ForwardedBackend):
                return await backend.forward(request, body)
            if isinstance(backend, ClosedBackend):
                if path != "/v1/embeddings":
                    raise InvalidRequest(
                        f"'{model_id}' is a closed chat model; {what} are served for open models only; use chat "
                        "completions.",
                        param="model",
                    )
                hint = gateway.catalog.embedding_hint(backend.route.provider)
                if backend.task == "chat" and gateway.catalog.listed(model_id) and hint is not None:
                    raise InvalidRequest(f"'{model_id}' is a chat model, not an embedding model; {hint}", param="model")
                decoded = openai_compat.decode_embeddings({**payload, "model": backend.name})
                result = await backend.embed(decoded.request)
                return json_response(openai_compat.encode_embeddings(result, model_id, decoded.base64))
            raw = await backend.passthrough(path, payload)
            return json_response(raw, headers=backend.headers())

        return endpoint

    completions = native("/v1/completions", "completions")
    embeddings = native("/v1/embeddings", "embeddings")

    out: list[Route] = []
    for prefix in openai_compat.SURFACE.prefixes:
        out.append(Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]))
        out.append(Route(f"{prefix}/models", list_models, methods=["GET"]))
        out.append(Route(f"{prefix}/completions", completions, methods=["POST"]))
        out.append(Route(f"{prefix}/embeddings", embeddings, methods=["POST"]))
    return out
