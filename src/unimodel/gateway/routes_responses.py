"""The OpenAI Responses API, under `/v1` and `/models/v2/openai/v1`, for every model.

    POST   …/responses                      decode → previous response → dispatch.backend_for → complete/stream →
                                            encode; kept in the store (`store`, the default) before the answer's
                                            last byte goes out, so its id works at once from any gateway process
    GET    …/responses/{id}                 a stored response
    DELETE …/responses/{id}
    GET    …/responses/{id}/input_items     the items the model was given (the conversation so far)

A stored response belongs to the gateway key that made it: another key gets a 404, as for an id that never
existed; anonymous callers (open mode, which serves only this machine) share one scope. It is gone after
`[responses] retention_days`. Every model answers through the canonical chat request, OpenAI's too (README,
"The Responses API").
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import from_json, to_json
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..frontends import openai_responses
from ..frontends.openai_responses import ResponsesRequest, caller_named, to_chat
from ..frontends.openai_responses_encode import ResponseCall, encode_result, encode_stream
from ..frontends.openai_responses_items import Item, new_id, stored_items
from ..protocol import InvalidRequest, NotFound, UnimodelError
from ..runtime.service import CHAT_TASKS
from ..store import Store, StoredResponse, StoreError
from . import dispatch
from .context import RequestContext, context
from .http import close_after, guarded, json_response, read_body
from .model_backends import ForwardedBackend
from .platform import StoreUnreachable
from .service import Gateway

log = logging.getLogger("unimodel.gateway")

guard = guarded(openai_responses.SURFACE.error_body)
_ID = re.compile(r"resp_[A-Za-z0-9_-]{1,64}")
PURGE_EVERY_S = 600.0  # expired responses are deleted (in the background) at most this often per process
MAX_LISTED = 100


class ResponsesAPI:
    """The endpoints, as methods reading the gateway (its settings, its store); `routes` wraps each in the
    surface's error boundary."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._purged_at = float("-inf")
        self._purging: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> Store:
        return self.gateway.platform.store

    async def create(self, request: Request) -> Response:
        """OpenAI's `POST /v1/responses`; `model` is a unimodel model id (`anthropic/claude-sonnet-4-5`)."""
        body = await read_body(request, self.gateway.settings.server.max_body_bytes)
        decoded = openai_responses.decode(body)
        wire = decoded.wire
        ctx = context(request)
        backend = await dispatch.backend_for(self.gateway, wire.model, ctx, request.headers)
        if isinstance(backend, ForwardedBackend):  # the runtime process answers (and stores) it
            return await backend.forward(request, body)
        if backend.task not in CHAT_TASKS:
            raise InvalidRequest(f"'{backend.model_id}' is a {backend.task} model, not a chat model.", param="model")
        history_json, history = await self._history(wire, ctx)
        chat = replace(to_chat(wire, history, decoded.items), model=backend.name)
        call = ResponseCall(new_id("resp_"), backend.model_id, wire, stored=wire.stored)
        items = [*history_json, *decoded.item_json]

        async def keep(response: dict[str, Any]) -> bool:
            return await self._keep(call, ctx, response, items)

        try:
            if chat.stream:
                events = await backend.stream(chat)
                chunks = encode_stream(events, call, ctx.add_usage, keep, joined=True)  # one write per upstream event
                return StreamingResponse(
                    close_after(chunks, events.aclose, backend.model_id),
                    media_type="text/event-stream",
                    headers={"cache-control": "no-cache", **backend.headers(streaming=True)},
                )
            result = await backend.complete(chat)
        except UnimodelError as exc:
            raise caller_named(exc) from None
        answer = encode_result(call, result)
        answer["store"] = await keep(answer)
        return json_response(to_json(answer), headers=backend.headers())

    async def retrieve(self, request: Request) -> Response:
        """A stored response, to the key that made it."""
        if request.query_params.get("stream", "false").lower() not in ("false", "0"):
            raise InvalidRequest(
                "stream: streaming a stored response is for background responses, which are not served.",
                param="stream",
            )
        stored = await self._find(request)
        return json_response(stored.response.encode())

    async def delete(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        key_id = context(request).principal.key_id
        if not _ID.fullmatch(response_id) or not await self._call(
            self.store.delete_response, response_id, key_id=key_id
        ):
            raise _not_found(response_id)
        return json_response(to_json({"id": response_id, "object": "response", "deleted": True}))

    async def input_items(self, request: Request) -> Response:
        """The items the model was given for a stored response, newest first (`order=asc`: oldest first)."""
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("order: expected 'asc' or 'desc'.", param="order")
        limit_text = query.get("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LISTED:
            raise InvalidRequest(f"limit: expected an integer from 1 to {MAX_LISTED}.", param="limit")
        stored = await self._find(request)
        items: list[dict[str, Any]] = from_json(stored.input_items)
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after is not None:
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[: int(limit_text)]
        listed = {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > len(page),
        }
        return json_response(to_json(listed))

    # ---- the store ---------------------------------------------------------------------------------------------

    async def _history(self, wire: ResponsesRequest, ctx: RequestContext) -> tuple[list[Any], list[Item]]:
        """The conversation `previous_response_id` continues: its items and its output (a 400 when the caller has no
        such response: unknown, expired, deleted, or another key's)."""
        previous_id = wire.previous_response_id
        if previous_id is None:
            return [], []
        stored = None
        if _ID.fullmatch(previous_id):
            stored = await self._call(self.store.get_response, previous_id, key_id=ctx.principal.key_id)
        if stored is None:
            raise InvalidRequest(
                f"previous_response_id: no response {_shown_id(previous_id)} was found for this key.",
                param="previous_response_id",
            )
        history = [*from_json(stored.input_items), *from_json(stored.response)["output"]]
        return history, stored_items(history)

    async def _keep(self, call: ResponseCall, ctx: RequestContext, response: dict[str, Any], items: list[Any]) -> bool:
        """Store a finished response when the caller asked to (the default); whether it is stored. A store that fails
        does not fail the answer the model already gave: it says `"store": false`, and the server log says why."""
        if not call.stored:
            return False
        now = datetime.now(UTC)
        row = StoredResponse(
            id=call.id,
            key_id=ctx.principal.key_id,
            model=call.model,
            status=response["status"],
            created_at=now,
            expires_at=now + timedelta(days=self.gateway.settings.responses.retention_days),
            previous_response_id=call.wire.previous_response_id,
            response=to_json(response).decode(),
            input_items=to_json(items).decode(),
        )
        try:
            await asyncio.to_thread(self.store.save_response, row)
        except StoreError as exc:
            log.warning("response %s was answered but not stored: %s", call.id, exc)
            return False
        self._purge_now_and_then()
        return True

    def _purge_now_and_then(self) -> None:
        """Delete expired responses in the background, at most every PURGE_EVERY_S (reads skip them meanwhile)."""
        now = time.monotonic()
        if now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now

        async def purge() -> None:
            try:
                deleted = await asyncio.to_thread(self.store.purge_responses)
            except StoreError as exc:
                log.warning("deleting expired responses failed: %s", exc)
                return
            if deleted:
                log.info("deleted %d expired responses", deleted)

        task = asyncio.create_task(purge(), name="unimodel-responses-purge")
        self._purging.add(task)
        task.add_done_callback(self._purging.discard)

    async def _find(self, request: Request) -> StoredResponse:
        response_id = request.path_params["response_id"]
        stored: StoredResponse | None = None
        if _ID.fullmatch(response_id):
            stored = await self._call(self.store.get_response, response_id, key_id=context(request).principal.key_id)
        if stored is None:
            raise _not_found(response_id)
        return stored

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except StoreError as exc:
            log.warning("the store failed a Responses API call: %s", exc)
            raise StoreUnreachable("The store cannot answer right now; try again shortly.") from None


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id {_shown_id(response_id)} not found.", param="response_id")


def _shown_id(response_id: str) -> str:
    return ascii(response_id[:80])


def routes(gateway: Gateway) -> list[Route]:
    api = ResponsesAPI(gateway)
    out: list[Route] = []
    for path in openai_responses.SURFACE.prefixes:
        out.append(Route(path, guard(api.create), methods=["POST"]))
        out.append(Route(path + "/{response_id}", guard(api.retrieve), methods=["GET"]))
        out.append(Route(path + "/{response_id}", guard(api.delete), methods=["DELETE"]))
        out.append(Route(path + "/{response_id}/input_items", guard(api.input_items), methods=["GET"]))
    return out
