"""Talking to one provider: timeouts, retries before the first byte, streams, and error conversion.

The bytes go through an `UpstreamTransport` (transport.py); its failures, and the provider's error answers,
are converted into the protocol's error tree here and nowhere else — and every error that leaves (raised, or
ending a stream) has the known secrets (the request's provider key, every server-held key) replaced by `***`
in its message and `provider_body`, since a provider or a proxy in front of it may echo request headers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from secrets import token_hex
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic_core import from_json, to_json
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..protocol import (
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    StreamEvent,
    TranscriptionRequest,
    TranscriptionResult,
    UnimodelError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..upstream.events import stream_events
from ..upstream.transport import (
    AiohttpTransport,
    ConnectFailed,
    ConnectionBroken,
    ConnectTimedOut,
    HttpxTransport,
    Limits,
    ReadTimedOut,
    TransportFailure,
    UpstreamResponse,
    UpstreamTransport,
)
from .base import ProviderAdapter, StreamDecoder, UpstreamRequest
from .media import MediaFetcher

log = logging.getLogger("unimodel.upstream")
T = TypeVar("T")

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
REDACTED = "***"
_TEXT_BODY_CHARS = 500  # of an error body that is not JSON, kept in the error
_LIFT_CHARS = 64 * 1024  # strings this long (inline images) are encoded one by one, see encode_taking_strings
# Shorter strings are no provider's key; replacing them everywhere would garble messages for nothing.
MIN_SECRET_LENGTH = 8


class _Retryable(Exception):
    """Wraps an error that may be retried because no byte of an answer was produced yet."""

    def __init__(self, error: UnimodelError) -> None:
        super().__init__(error.message)
        self.error = error


class ProviderClient:
    """Sends canonical requests to one provider through its adapter.

    For a provider that takes images only inline (`info.inline_images`), `media` fetches http(s) image URLs
    into base64 first. The gateway always gives one (shared by its clients); without one no URL is fetched and
    the adapter sees image URLs as they are — a client never does network I/O it was not handed.

    `transport` replaces the production HTTP stack (aiohttp) with any httpx transport — tests pass
    `httpx.MockTransport` or an ASGI app. `secrets` are keys never to show in an error besides the request's
    own key and this provider's server-held key (the gateway passes every server-held key).
    """

    def __init__(
        self,
        adapter: ProviderAdapter,
        transport: httpx.AsyncBaseTransport | None = None,
        media: MediaFetcher | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.adapter = adapter
        self._media = media
        cfg = adapter.config
        self._cfg = cfg
        own = cfg.api_key.get_secret_value() if cfg.api_key is not None else ""
        self._secrets = (own, *secrets)
        self._secret_bytes = tuple(secret.strip().encode() for secret in self._secrets)
        limits = Limits(cfg.connect_timeout_s, cfg.read_timeout_s, cfg.max_connections)
        self._http: UpstreamTransport = (
            AiohttpTransport(limits) if transport is None else HttpxTransport(limits, transport)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, request: ChatRequest, api_key: str) -> ChatResult:
        try:
            return await self._complete(request, api_key)
        except UnimodelError as exc:
            self._redact(exc, api_key)
            raise

    async def stream(self, request: ChatRequest, api_key: str) -> AsyncGenerator[StreamEvent, None]:
        """Open the upstream stream (errors before the first byte raise here) and return its events."""
        try:
            decoder = self.adapter.stream_decoder(request)
            response = await self._post(request, api_key)
        except UnimodelError as exc:
            self._redact(exc, api_key)
            raise
        return self._events(decoder, response, api_key)

    async def send_native(self, path: str, headers: Mapping[str, str], body: bytes, api_key: str) -> UpstreamResponse:
        """A body already in the provider's own format (a surface that speaks it: Claude on the Anthropic Messages
        surface), sent to `base_url + path` with the retries, error mapping and key redaction of any call. The
        caller reads the answer and closes it; the transport's failures while reading are the caller's to map."""
        try:
            return await self._send(self.adapter.base_url + path, headers, body)
        except UnimodelError as exc:
            self._redact(exc, api_key)
            raise

    def secrets(self, api_key: str) -> list[str]:
        """The forms of the request's key and the server-held keys that must never be shown (for `redact_value`)."""
        return secret_forms((api_key, *self._secrets))

    async def _post(self, request: ChatRequest, api_key: str) -> UpstreamResponse:
        """Send the request; for a provider that takes only inline images, fetch its image URLs first.

        The fetched images count against `[media] max_inflight_bytes` until the request has gone (its answer
        started, or it failed), and live in one place at a time: the request until it is encoded, then the body.
        """
        if self._media is None or not self.adapter.info.inline_images:
            return await self._send(*self._encode(request, api_key))
        with self._media.hold() as hold:
            request = await self._media.inline_images(request, keep=self.adapter.reads_url, hold=hold)
            upstream = self.adapter.build_request(request, api_key)
            del request  # the caller's request has the URLs: the fetched data now lives in `upstream` alone
            headers = {"content-type": "application/json", **upstream.headers}
            body = encode_taking_strings(upstream)
            return await self._send(upstream.url, headers, body)

    def _encode(self, request: ChatRequest, api_key: str) -> tuple[str, dict[str, str], bytes]:
        upstream = self.adapter.build_request(request, api_key)
        headers = {"content-type": "application/json", **upstream.headers}
        return upstream.url, headers, to_json(upstream.body)

    def _redact(self, error: UnimodelError, api_key: str) -> UnimodelError:
        """`error`, with every known secret in its message and provider body replaced (in place)."""
        redact_error(error, secret_forms((api_key, *self._secrets)))
        if isinstance(error.provider_body, str):  # a body that is not JSON: bounded once redacted, never before
            error.provider_body = error.provider_body[:_TEXT_BODY_CHARS]
        return error

    async def embed(self, request: EmbeddingRequest, api_key: str) -> EmbeddingResult:
        """One vector per input, through the provider's embeddings API (a 400 for a provider without one)."""
        try:
            upstream = self.adapter.build_embeddings_request(request, api_key)
            headers = {"content-type": "application/json", **upstream.headers}
            response = await self._send(upstream.url, headers, to_json(upstream.body))
            body = await self._answer_body(response, api_key)
            try:
                result = self.adapter.parse_embeddings_response(body, request)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise self._unreadable(exc) from exc
            result.raw = body
            return result
        except UnimodelError as exc:
            self._redact(exc, api_key)
            raise

    async def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult:
        """Images through the provider's image generation API (a 400 for a provider without one)."""

        async def call() -> ImageResult:
            upstream = self.adapter.build_image_request(request, api_key)
            body = await self._answer_body(await self._send_upstream(upstream), api_key)
            return self._parsed(lambda: self.adapter.parse_image_response(body, request))

        return await self._redacting(call(), api_key)

    async def transcribe(self, request: TranscriptionRequest, api_key: str) -> TranscriptionResult:
        """The text of an audio file, through the provider's speech-to-text API (a multipart upload)."""

        async def call() -> TranscriptionResult:
            upstream = self.adapter.build_transcription_request(request, api_key)
            response = await self._send_upstream(upstream)
            content_type = response.headers.get("content-type", "")
            raw = await self._answer_bytes(response)
            forms = secret_forms((api_key, *self._secrets))
            if any(form.encode() in raw for form in forms):  # an answer echoing a key (rare): text, so redactable
                raw = redact_text(raw.decode("utf-8", "replace"), forms).encode()
            return self._parsed(lambda: self.adapter.parse_transcription_response(raw, content_type, request))

        return await self._redacting(call(), api_key)

    async def speak(self, request: SpeechRequest, api_key: str) -> SpeechResult:
        """Audio for a text, through the provider's text-to-speech API: the answer's bytes as they are."""

        async def call() -> SpeechResult:
            upstream = self.adapter.build_speech_request(request, api_key)
            response = await self._send_upstream(upstream)
            content_type = response.headers.get("content-type", "")
            raw = await self._answer_bytes(response)
            return self._parsed(lambda: self.adapter.parse_speech_response(raw, content_type, request))

        return await self._redacting(call(), api_key)

    async def _redacting(self, call: Awaitable[T], api_key: str) -> T:
        try:
            return await call
        except UnimodelError as exc:
            self._redact(exc, api_key)
            raise

    def _parsed(self, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except UnimodelError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._unreadable(exc) from exc

    async def _send_upstream(self, upstream: UpstreamRequest) -> UpstreamResponse:
        if upstream.content is not None:  # the adapter's headers carry its content type
            return await self._send(upstream.url, upstream.headers, upstream.content)
        return await self._send(
            upstream.url, {"content-type": "application/json", **upstream.headers}, to_json(upstream.body)
        )

    async def _answer_bytes(self, response: UpstreamResponse) -> bytes:
        """A successful answer's body, read whole and closed."""
        try:
            return await response.read()
        except ReadTimedOut as exc:
            raise self._timeout() from exc
        except TransportFailure as exc:
            raise UpstreamProtocolError(
                f"The connection to provider '{self.adapter.name}' broke while reading its answer.",
                provider=self.adapter.name,
            ) from exc
        finally:
            await response.close()

    async def _answer_body(self, response: UpstreamResponse, api_key: str) -> Any:
        """A successful answer's JSON, read whole and closed; a key it echoes (rare) is redacted."""
        raw = await self._answer_bytes(response)
        body = self._decode(raw)
        if any(secret in raw for secret in (api_key.encode(), *self._secret_bytes) if len(secret) >= MIN_SECRET_LENGTH):
            body = redact_value(body, secret_forms((api_key, *self._secrets)))
        return body

    def _unreadable(self, exc: Exception) -> UpstreamProtocolError:
        return UpstreamProtocolError(
            f"Provider '{self.adapter.name}' sent an answer unimodel could not read ({type(exc).__name__}: {exc}).",
            provider=self.adapter.name,
        )

    async def _complete(self, request: ChatRequest, api_key: str) -> ChatResult:
        response = await self._post(request, api_key)
        body = await self._answer_body(response, api_key)
        try:
            result = self.adapter.parse_response(body)
        except UnimodelError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._unreadable(exc) from exc
        if result.tool_calls and result.finish_reason == "stop":
            result.finish_reason = "tool_calls"  # some providers say "stop" after a forced call
        return result

    async def _events(
        self, decoder: StreamDecoder, response: UpstreamResponse, api_key: str
    ) -> AsyncGenerator[StreamEvent, None]:
        name = self.adapter.name
        try:
            async for event in stream_events(
                response,
                decoder,
                who=f"Provider '{name}'",
                provider=name,
                timed_out=self._timeout,
                shown=lambda error: self._redact(error, api_key),
            ):
                yield event
        finally:
            await response.close()

    async def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        try:  # the first attempt stays off tenacity: most requests need no retry, and it costs per request
            return await self._send_once(url, headers, body)
        except _Retryable as exc:
            if self._cfg.max_retries == 0:
                raise exc.error from None
            await asyncio.sleep(self._delay(exc.error, 1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._cfg.max_retries),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(url, headers, body)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = exc.error if isinstance(exc, _Retryable) else None
        return self._delay(error, state.attempt_number + 1)

    def _delay(self, error: UnimodelError | None, retry: int) -> float:
        """Before retry number `retry` (1-based): the provider's Retry-After, else jittered exponential backoff."""
        if error is not None and error.retry_after is not None:
            return error.retry_after
        base = self._cfg.retry_backoff_s * (2 ** (retry - 1))
        return float(base * (0.5 + random.random() / 2))

    async def _send_once(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        name = self.adapter.name
        try:
            response = await self._http.send(url, headers, body)
        except ConnectTimedOut as exc:
            raise _Retryable(
                UpstreamTimeout(
                    f"Could not connect to provider '{name}' within {self._cfg.connect_timeout_s:g} s.",
                    provider=name,
                )
            ) from exc
        except ReadTimedOut as exc:
            raise self._timeout() from exc
        except ConnectFailed as exc:
            raise _Retryable(
                UpstreamUnavailable(
                    f"Could not connect to provider '{name}' at {self.adapter.base_url}: {exc}.", provider=name
                )
            ) from exc
        except ConnectionBroken as exc:
            raise UpstreamUnavailable(f"The connection to provider '{name}' failed: {exc}.", provider=name) from exc
        if response.status < 400:
            return response
        try:
            raw = await response.read()
        except TransportFailure:
            raw = b""
        finally:
            await response.close()
        error = self.adapter.map_error(response.status, _try_json(raw), response.headers)
        log.warning(
            "upstream error provider=%s status=%s code=%s answered_status=%s",
            name,
            response.status,
            error.code,
            error.status,
        )
        if response.status in _RETRY_STATUSES and (
            error.retry_after is None or error.retry_after <= self._cfg.retry_max_wait_s
        ):
            raise _Retryable(error)
        raise error

    def _timeout(self) -> UpstreamTimeout:
        name = self.adapter.name
        return UpstreamTimeout(
            f"Provider '{name}' did not answer within {self._cfg.read_timeout_s:g} s (read timeout).",
            provider=name,
        )

    def _decode(self, raw: bytes) -> Any:
        try:
            return from_json(raw)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"Provider '{self.adapter.name}' answered with a body that is not JSON.",
                provider=self.adapter.name,
            ) from exc


def encode_taking_strings(upstream: UpstreamRequest) -> bytes:
    """`upstream.body` as JSON, the body taken out of `upstream` (left empty), freeing each long string (image
    data) as soon as it is encoded: the strings, pieces and result are never all held at once, as `to_json` of
    the whole tree would (it also holds its buffer and the result: over twice the body besides the strings)."""
    token = token_hex(8)
    long: list[str | None] = []

    def lift(value: Any) -> Any:  # a copy of the tree with each long string swapped for a numbered token
        if isinstance(value, str) and len(value) >= _LIFT_CHARS:
            long.append(value)
            return f"{token}:{len(long) - 1}"
        if isinstance(value, dict):
            return {key: lift(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [lift(item) for item in value]
        return value

    skeleton = to_json(lift(upstream.body))
    upstream.body = {}  # now only `long` holds the long strings
    parts: list[bytes] = []
    at = 0
    for index in range(len(long)):
        marker = f'"{token}:{index}"'.encode()
        found = skeleton.index(marker, at)  # to_json keeps key and item order, so the tokens come in order
        parts.append(skeleton[at:found])
        parts.append(to_json(long[index]))
        long[index] = None
        at = found + len(marker)
    parts.append(skeleton[at:])
    return b"".join(parts)


def _try_json(raw: bytes) -> Any:
    try:
        return from_json(raw) if raw else None
    except ValueError:
        # Cut to length only after redaction (ProviderClient._redact): a cut here could keep half a key.
        return raw.decode("utf-8", "replace")


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """The secrets as they may appear in upstream text — as given, percent-encoded, JSON-escaped — longest
    first, so that a key containing another is replaced whole."""
    forms: set[str] = set()
    for secret in secrets:
        secret = secret.strip()
        if len(secret) >= MIN_SECRET_LENGTH:
            forms.update((secret, quote(secret, safe=""), to_json(secret).decode()[1:-1]))
    return sorted(forms, key=len, reverse=True)


def redact_text(text: str, forms: list[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_value(value: Any, forms: list[str]) -> Any:
    """A JSON-like value with the secrets replaced in every string, keys of objects included."""
    if isinstance(value, str):
        return redact_text(value, forms)
    if isinstance(value, dict):
        return {redact_value(k, forms): redact_value(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, forms) for v in value]
    return value


def redact_error(error: UnimodelError, forms: list[str]) -> None:
    """Replace the secrets in what an error shows: its message, param and provider body (in place)."""
    if not forms:
        return
    message = redact_text(error.message, forms)
    if message != error.message:
        error.message = message
        error.args = (message,)
    if error.param is not None:
        error.param = redact_text(error.param, forms)
    error.provider_body = redact_value(error.provider_body, forms)
