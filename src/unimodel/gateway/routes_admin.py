"""Key administration (an admin key required) and each key's own usage.

GET    /models/v2/admin/keys                              every key (never a secret)
POST   /models/v2/admin/keys                              {name, rps?, concurrency?, admin?} → the key, shown once
GET    /models/v2/admin/keys/{id}
PATCH  /models/v2/admin/keys/{id}                         {rps?, concurrency?}; null returns to the default
DELETE /models/v2/admin/keys/{id}                         revoke
PUT    /models/v2/admin/keys/{id}/providers/{provider}    {key}: a provider key the gateway key holds
DELETE /models/v2/admin/keys/{id}/providers/{provider}
GET    /models/v2/admin/usage?from=&to=&model=&key=&limit=   every key's records and totals
GET    /models/v2/usage?from=&to=&model=&limit=              the calling key's records and totals
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..frontends import bytez_v2
from ..frontends.wire import invalid_request
from ..protocol import AuthenticationError, InvalidRequest, NotFound, PermissionDenied
from ..store import ANY_KEY, KeyNotFound, StoreError
from ..store.times import parse_iso, shown
from ..store.views import key_view, record_view, totals_view
from .context import context
from .http import guarded, json_response, read_body
from .platform import Platform, StoreUnreachable

v2 = guarded(bytez_v2.ADMIN.error_body)

_MAX_LIMIT = 10_000


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    rps: float | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=0)
    admin: bool = False


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rps: float | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=0)


class ProviderKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(min_length=1, max_length=4096)


def _ok(output: object, status: int = 200) -> Response:
    return json_response(to_json({"error": None, "output": output}), status)


def parse_time(value: str | None, name: str) -> datetime | None:
    """ISO 8601 (a date, or a time with or without a zone — UTC when none) or Unix seconds, as aware UTC. Anything
    else, a moment outside the years 1-9999 in UTC included, is a 400 `invalid_request` naming the parameter."""
    if value is None or value == "":
        return None
    unix = value.replace(".", "", 1).isdigit()
    try:
        return datetime.fromtimestamp(float(value), UTC) if unix else parse_iso(value)
    except (ValueError, OverflowError, OSError) as exc:  # from Unix seconds, each of them means "too far"
        reason = f"{shown(value)} Unix seconds is past the year 9999" if unix else str(exc)
    raise InvalidRequest(
        f"{name}: {reason}. Give an ISO 8601 time (2026-11-25T10:00:00Z) or Unix seconds, within the years 1-9999.",
        param=name,
    )


def _time_range(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """`from` and `to`; `from` later than `to` is a 400 rather than an empty answer: it is almost always a swap."""
    start = parse_time(query.get("from"), "from")
    end = parse_time(query.get("to"), "to")
    if start is not None and end is not None and start > end:
        raise InvalidRequest(
            f"from: {start.isoformat()} is later than to ({end.isoformat()}), so no record can match; swap them.",
            param="from",
        )
    return start, end


def _text_filter(query: Mapping[str, str], name: str) -> str | None:
    """A text filter; NUL is refused here, as the store never holds it and PostgreSQL refuses it in a query."""
    value = query.get(name) or None
    if value is not None and "\x00" in value:
        raise InvalidRequest(f"{name}: {shown(value)} contains a NUL character, which no record can hold.", param=name)
    return value


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise InvalidRequest(f"limit: a whole number from 1 to {_MAX_LIMIT}.", param="limit")
    return int(raw)


def _body(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise invalid_request(exc) from None


def routes(platform: Platform, provider_names: list[str], max_body_bytes: int) -> list[Route]:
    store = platform.store

    def admin_only(request: Request) -> None:
        principal = context(request).principal
        if principal.key_id is None:
            raise AuthenticationError(
                "The admin API needs an admin key in 'Authorization' (create one with "
                "`unimodel keys create --name NAME --admin`).",
                code="missing_api_key",
            )
        if not principal.admin:
            raise PermissionDenied("This key is not an admin key; the admin API needs one.")

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except KeyNotFound:
            raise NotFound(f"No key has the id '{args[0]}'.", param="id") from None
        except StoreError as exc:
            raise StoreUnreachable(f"The store cannot answer right now: {exc}") from None

    async def after_change() -> None:
        await platform.keys.refresh()  # this process sees its own change at once; others within cache_ttl_s

    @v2
    async def list_keys(request: Request) -> Response:
        admin_only(request)
        keys = await call(store.list_keys)
        return _ok([key_view(k) for k in keys])

    @v2
    async def create_key(request: Request) -> Response:
        admin_only(request)
        body: NewKey = _body(NewKey, await read_body(request, max_body_bytes))
        created = await call(store.create_key, body.name, rps=body.rps, concurrency=body.concurrency, admin=body.admin)
        return _ok({**key_view(created.key), "key": created.secret}, status=201)

    @v2
    async def get_key(request: Request) -> Response:
        admin_only(request)
        return _ok(key_view(await call(store.get_key, request.path_params["key_id"])))

    @v2
    async def patch_key(request: Request) -> Response:
        admin_only(request)
        body: KeyLimits = _body(KeyLimits, await read_body(request, max_body_bytes))
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        key = await call(store.update_limits, request.path_params["key_id"], **changes)
        await after_change()
        return _ok(key_view(key))

    @v2
    async def revoke_key(request: Request) -> Response:
        admin_only(request)
        key = await call(store.revoke_key, request.path_params["key_id"])
        await after_change()
        return _ok(key_view(key))

    def provider_of(request: Request) -> str:
        provider: str = request.path_params["provider"]
        if provider not in provider_names:
            raise InvalidRequest(
                f"provider: '{provider}' is not a provider of this server ({', '.join(provider_names)}).",
                param="provider",
            )
        return provider

    @v2
    async def put_provider_key(request: Request) -> Response:
        admin_only(request)
        key_id, provider = request.path_params["key_id"], provider_of(request)
        body: ProviderKey = _body(ProviderKey, await read_body(request, max_body_bytes))
        await call(store.set_provider_key, key_id, provider, body.key)
        await after_change()
        return _ok(key_view(await call(store.get_key, key_id)))

    @v2
    async def delete_provider_key(request: Request) -> Response:
        admin_only(request)
        key_id, provider = request.path_params["key_id"], provider_of(request)
        if not await call(store.delete_provider_key, key_id, provider):
            raise NotFound(f"Key '{key_id}' holds no {provider} key.", param="provider")
        await after_change()
        return _ok(key_view(await call(store.get_key, key_id)))

    async def usage_for(request: Request, key_id: object) -> Response:
        query = request.query_params
        start, end = _time_range(query)
        model = _text_filter(query, "model")
        limit = _limit(request)
        with contextlib.suppress(StoreError):
            await platform.ledger.flush()  # this process's records so far are in the answer
        filters: dict[str, Any] = {"key_id": key_id, "start": start, "end": end, "model": model}
        records = await call(store.query_usage, limit=limit, **filters)
        totals = await call(store.usage_totals, **filters)
        return _ok(
            {
                "records": [record_view(r) for r in records],
                "totals": totals_view(totals),
                "truncated": len(records) >= limit,
            }
        )

    @v2
    async def own_usage(request: Request) -> Response:
        """The calling key's usage (anonymous calls' usage in open mode without a key)."""
        return await usage_for(request, context(request).principal.key_id)

    @v2
    async def all_usage(request: Request) -> Response:
        admin_only(request)
        key = _text_filter(request.query_params, "key")
        return await usage_for(request, key if key else ANY_KEY)

    prefix = "/models/v2/admin"
    return [
        Route(f"{prefix}/keys", list_keys, methods=["GET"]),
        Route(f"{prefix}/keys", create_key, methods=["POST"]),
        Route(f"{prefix}/keys/{{key_id}}", get_key, methods=["GET"]),
        Route(f"{prefix}/keys/{{key_id}}", patch_key, methods=["PATCH"]),
        Route(f"{prefix}/keys/{{key_id}}", revoke_key, methods=["DELETE"]),
        Route(f"{prefix}/keys/{{key_id}}/providers/{{provider}}", put_provider_key, methods=["PUT"]),
        Route(f"{prefix}/keys/{{key_id}}/providers/{{provider}}", delete_provider_key, methods=["DELETE"]),
        Route(f"{prefix}/usage", all_usage, methods=["GET"]),
        Route("/models/v2/usage", own_usage, methods=["GET"]),
    ]
