"""Between gateway processes and the one process that runs the open models (`serve --workers N`).

With several gateway processes, the open-model controller still runs once per machine — in a runtime process
listening on a loopback port — so instances, queues and autoscaling see all the traffic. A gateway process
authenticates and limits the caller as usual, then forwards open-model and cluster requests here unchanged and
streams the answer back. The runtime process trusts only requests carrying the internal token, takes the caller's
key id and request id from them, and writes their usage records itself (it is the one that sees tokens and
instance-seconds).

The runtime process may be on another machine (server.py, `UNIMODEL_RUNTIME_URL` / `UNIMODEL_RUNTIME_LISTEN`):
gateway machines behind a load balancer forward to the one runtime process that owns every model's instances, so
two gateways never start a model's instances twice. The link is the same; the token is then a secret shared by
the machines (put the runtime port on a private network, or behind TLS: the URL may be https).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..protocol import UnimodelError
from .context import RequestContext

log = logging.getLogger("unimodel.gateway")

TOKEN_HEADER = "x-unimodel-internal"
KEY_ID_HEADER = "x-unimodel-key-id"
KEY_NAME_HEADER = "x-unimodel-key-name"
KEY_ADMIN_HEADER = "x-unimodel-key-admin"  # the caller's key is an admin key (the cluster API's changes need one)
BASE_URL_HEADER = "x-unimodel-base-url"  # where the caller reached the gateway (the URLs of generated media)
_FORWARDED_REQUEST = ("content-type", "accept", "x-request-id")
_DROPPED_RESPONSE = frozenset({"content-length", "transfer-encoding", "connection", "x-request-id", "date", "server"})


class RuntimeUnavailable(UnimodelError):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"The open-model runtime process is not answering ({why}); try again shortly.",
            status=503,
            code="runtime_unavailable",
            retry_after=2,
        )


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class RuntimeLink:
    """The gateway process's side: forwards a request to the runtime process and streams its answer."""

    def __init__(self, url: str, token: str) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=5.0, read=None, write=60.0, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            trust_env=False,
        )

    async def forward(self, request: Request, body: bytes, ctx: RequestContext) -> Response:
        ctx.record = False  # the runtime process writes this request's usage record
        headers = {name: value for name in _FORWARDED_REQUEST if (value := request.headers.get(name)) is not None}
        headers["x-request-id"] = ctx.request_id
        headers[TOKEN_HEADER] = self._token
        headers[BASE_URL_HEADER] = str(request.base_url).rstrip("/")
        if ctx.principal.key_id is not None:
            headers[KEY_ID_HEADER] = ctx.principal.key_id
            if ctx.principal.admin:
                headers[KEY_ADMIN_HEADER] = "1"
        url = self._url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream = self._client.build_request(request.method, url, headers=headers, content=body)
        try:
            response = await self._client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            raise RuntimeUnavailable(type(exc).__name__) from None
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED_RESPONSE}
        return StreamingResponse(_relay(response), status_code=response.status_code, headers=kept)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("the runtime process's answer broke off: %s", type(exc).__name__)
    finally:
        await response.aclose()
