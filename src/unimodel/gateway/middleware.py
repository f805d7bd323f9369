"""The platform middleware (pure ASGI, so streaming answers pass through untouched and cheaply).

For each HTTP request: a request id (the caller's `x-request-id` when it is sane, else a new one) in the log
context and echoed in the answer; the caller's gateway key checked; the key's rate counted, with `ratelimit-*`
headers on the answer and a 429 past the limit; and when the last byte has gone (or the client left), metrics,
the usage record and any slots the request held released.
"""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import UTC, datetime

from pydantic_core import to_json
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..console import is_console_path
from ..frontends.surface import surface_of
from ..protocol import PermissionDenied, RateLimited, UnimodelError
from .context import SCOPE_KEY, RequestContext
from .keycache import Principal
from .limits import RateDecision, rate_headers
from .logs import request_id_var
from .origins import OpenModeGuard
from .platform import Platform
from .runtime_link import BASE_URL_HEADER, KEY_ADMIN_HEADER, KEY_ID_HEADER, TOKEN_HEADER, token_matches

log = logging.getLogger("unimodel.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json"})


class PlatformMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        platform: Platform,
        *,
        access_log: bool = False,
        internal_token: str | None = None,
        guard: OpenModeGuard | None = None,
    ) -> None:
        self.app = app
        self.platform = platform
        self.access_log = access_log
        self.internal_token = internal_token  # set in the runtime process of `serve --workers N`
        self.guard = guard  # open mode: the Host and Origin checks (origins.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        ctx = RequestContext(request_id, datetime.now(UTC), time.perf_counter(), surface_of(path).name)
        ctx.method, ctx.path = scope["method"], path
        scope[SCOPE_KEY] = ctx
        rate: RateDecision | None = None
        done = False

        async def send_wrapper(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if rate is not None:
                    extra.extend(rate_headers(rate))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not done:
                done = True
                await self._finish(ctx)

        try:
            if self.guard is not None and (refusal := self.guard.problem(headers, scope.get("scheme", "http"))):
                await self._refuse(refusal, path, send_wrapper)
                return
            if self.internal_token is not None and path not in PUBLIC_PATHS:
                if not token_matches(headers.get(TOKEN_HEADER), self.internal_token):
                    await self._refuse(
                        PermissionDenied("This is unimodel's internal runtime port; call the gateway's port."),
                        path,
                        send_wrapper,
                    )
                    return
                # the gateway process authenticated and limited the caller and counts the request in its metrics
                ctx.principal = Principal(
                    key_id=headers.get(KEY_ID_HEADER), name="forwarded", admin=headers.get(KEY_ADMIN_HEADER) == "1"
                )
                ctx.counted = False
                ctx.base_url = headers.get(BASE_URL_HEADER)
            elif path not in PUBLIC_PATHS and not is_console_path(path):  # the console's files hold no data
                try:
                    ctx.principal = await self.platform.authenticate(headers)
                    rate = await self.platform.check_rate(ctx.principal)
                    if rate is not None and not rate.allowed:
                        raise RateLimited(
                            f"This key's limit is {ctx.principal.rps:g} requests per second; retry after "
                            f"{rate.retry_after_s:.2f} s.",
                            code="rate_limit_exceeded",
                        )  # Retry-After comes with the ratelimit headers
                except UnimodelError as error:
                    await self._refuse(error, path, send_wrapper)
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            if not done:  # the client went away, or the app failed before answering
                done = True
                await self._finish(ctx)
            request_id_var.reset(token)

    async def _refuse(self, error: UnimodelError, path: str, send: Send) -> None:
        body = to_json(surface_of(path).error_body(error))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if error.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(error.retry_after + 0.499))).encode()))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _finish(self, ctx: RequestContext) -> None:
        latency = time.perf_counter() - ctx.started
        for release in ctx.on_finish:
            try:
                await release()
            except Exception:
                log.exception("releasing a request's slot failed")
        try:
            self.platform.finish(ctx, latency)
        except Exception:
            log.exception("recording a request's usage failed")
        if self.access_log:
            log.info(
                "%s %s %s",
                ctx.method,
                ctx.path,
                ctx.status,
                extra={
                    "status": ctx.status,
                    "latency_ms": round(latency * 1000, 3),
                    "model": ctx.model,
                    "key_id": ctx.principal.key_id,
                },
            )
