"""The HTTP layer under ProviderClient: one narrow interface, two implementations.

    UpstreamTransport.send(url, headers, body) -> UpstreamResponse (status, headers, read, chunks, close)

- `AiohttpTransport` serves production: aiohttp's connection pool costs a fraction of httpx's per request
  (httpcore checks every pooled connection on each request), which is most of a gateway's own CPU.
- `HttpxTransport` wraps any `httpx.AsyncBaseTransport`, so tests inject `httpx.MockTransport` or an ASGI app
  without monkeypatching.

Failures are raised as the `TransportFailure` classes below, so the client maps one set of errors.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import httpx


class TransportFailure(Exception):
    """The exchange failed below HTTP; the subclass says where."""


class ConnectFailed(TransportFailure):
    """No answer started: connection refused or reset, DNS failure. Safe to retry."""


class ConnectTimedOut(TransportFailure):
    """The connection could not be made in time. Safe to retry."""


class ReadTimedOut(TransportFailure):
    """The server went quiet for longer than the read timeout."""


class ConnectionBroken(TransportFailure):
    """The connection broke while an answer was being read."""


@dataclass(frozen=True, slots=True)
class Limits:
    connect_timeout_s: float
    read_timeout_s: float
    max_connections: int


class UpstreamResponse(ABC):
    status: int
    headers: Mapping[str, str]  # case-insensitive

    @abstractmethod
    async def read(self) -> bytes: ...

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def close(self) -> None: ...


class UpstreamTransport(ABC):
    @abstractmethod
    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        """POST `body`; returns once the status line and headers arrived (the body is read later)."""

    @abstractmethod
    async def aclose(self) -> None: ...


class _AiohttpResponse(UpstreamResponse):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        with _aiohttp_errors(reading=True):
            return await self._response.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        with _aiohttp_errors(reading=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def close(self) -> None:
        self._response.release()


class AiohttpTransport(UpstreamTransport):
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=limits.connect_timeout_s, sock_read=limits.read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limits.max_connections, limit_per_host=0, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False)
        return self._session

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        with _aiohttp_errors(reading=False):
            response = await self._get_session().post(url, data=body, headers=dict(headers), allow_redirects=False)
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _aiohttp_errors:
    """Maps aiohttp's exceptions onto TransportFailure, knowing whether the answer had started."""

    def __init__(self, reading: bool) -> None:
        self._reading = reading

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            raise ConnectTimedOut(str(exc) or "connect timeout") from exc
        if isinstance(exc, aiohttp.SocketTimeoutError | asyncio.TimeoutError):
            raise ReadTimedOut(str(exc) or "read timeout") from exc
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise ConnectFailed(type(exc).__name__) from exc
        if isinstance(exc, aiohttp.ClientError | OSError):
            if self._reading:
                raise ConnectionBroken(type(exc).__name__) from exc
            raise ConnectFailed(type(exc).__name__) from exc


class _HttpxResponse(UpstreamResponse):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = response.headers

    async def read(self) -> bytes:
        with _httpx_errors(reading=True):
            return await self._response.aread()

    async def chunks(self) -> AsyncIterator[bytes]:
        with _httpx_errors(reading=True):
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def close(self) -> None:
        await self._response.aclose()


class HttpxTransport(UpstreamTransport):
    def __init__(self, limits: Limits, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=limits.connect_timeout_s,
                read=limits.read_timeout_s,
                write=limits.read_timeout_s,
                pool=limits.connect_timeout_s,
            ),
            limits=httpx.Limits(max_connections=limits.max_connections),
            follow_redirects=False,
        )

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        request = self._client.build_request("POST", url, content=body, headers=headers)
        with _httpx_errors(reading=False):
            response = await self._client.send(request, stream=True)
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()


class _httpx_errors:
    def __init__(self, reading: bool) -> None:
        self._reading = reading

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        if isinstance(exc, httpx.ConnectTimeout):
            raise ConnectTimedOut(str(exc) or "connect timeout") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise ReadTimedOut(str(exc) or "read timeout") from exc
        if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError) and not self._reading:
            raise ConnectFailed(type(exc).__name__) from exc
        if isinstance(exc, httpx.TransportError):
            raise (ConnectionBroken if self._reading else ConnectFailed)(type(exc).__name__) from exc
