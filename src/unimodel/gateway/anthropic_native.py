"""Claude on the Anthropic surface: the caller's Messages (or count_tokens) body goes to Anthropic as it came — only
the model renamed when it carried the `anthropic/` prefix — and Anthropic's answer comes back as it is: its JSON,
its SSE events (each whole event relayed, in order), its errors with their own status and body.

What the gateway adds is what it adds to every call: the provider key (`provider-key`, a stored key or the
server's; never the caller's `x-api-key`, which is their gateway key), retries before the first byte, keys
redacted from errors, the usage for the ledger (read off `message_start` / `message_delta`), and a stream that
Anthropic cuts, or that breaks or goes quiet, ends with an `error` event instead of just stopping.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from pydantic_core import from_json, to_json
from starlette.responses import Response, StreamingResponse

from ..dialects.anthropic import API_VERSION, merge_usage
from ..frontends.anthropic_messages import stream_error
from ..frontends.anthropic_wire import RequestHead
from ..protocol import UnimodelError, UpstreamProtocolError, UpstreamTimeout, Usage
from ..providers.client import redact_value
from ..upstream.sse import SSEDecoder, SSEMessage
from ..upstream.transport import ReadTimedOut, TransportFailure, UpstreamResponse
from .catalog import Route
from .context import RequestContext
from .metrics import upstream_latency
from .service import Gateway

# The caller's headers Anthropic reads (the API version and opted-in betas); no other header goes upstream.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
# Anthropic's answer headers worth keeping: its request id (the SDK shows it) and its rate-limit state.
_KEPT_PREFIXES = ("request-id", "anthropic-ratelimit-", "retry-after")


async def forward(
    gateway: Gateway,
    route: Route,
    ctx: RequestContext,
    path: str,
    body: bytes,
    head: RequestHead,
    headers: Mapping[str, str],
) -> Response:
    """Send `body` to Anthropic's `path` and answer with what Anthropic answers."""
    client = gateway.client(route.provider)
    key = gateway.provider_key(route, headers, ctx.principal)
    upstream_headers = {
        "content-type": "application/json",
        "x-api-key": key,
        "anthropic-version": gateway.settings.provider(route.provider).api_version or API_VERSION,
    }
    upstream_headers.update({name: value for name in FORWARDED_HEADERS if (value := headers.get(name))})
    if head.model != route.model:  # `anthropic/claude-…`: Anthropic knows the model by its own name
        payload = from_json(body)
        payload["model"] = route.model
        body = to_json(payload)
    started, outcome = time.perf_counter(), "error"
    try:
        response = await client.send_native(path, upstream_headers, body, key)
        outcome = "ok"
    finally:
        upstream_latency(route.provider, outcome).observe(time.perf_counter() - started)
    kept = {k: v for k, v in response.headers.items() if k.lower().startswith(_KEPT_PREFIXES)}
    if head.stream:
        return StreamingResponse(
            _relay(response, ctx, gateway, route.provider),
            status_code=response.status,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **kept},
        )
    raw = await _read(response, gateway, route.provider)
    try:
        answer = from_json(raw)
    except ValueError:
        raise UpstreamProtocolError(
            f"Provider '{route.provider}' answered with a body that is not JSON.", provider=route.provider
        ) from None
    forms = client.secrets(key)
    if any(form.encode() in raw for form in forms):  # an answer echoing a key (rare): shown without it
        raw = to_json(redact_value(answer, forms))
    if isinstance(answer, dict) and isinstance(answer.get("usage"), dict):
        usage = Usage()
        merge_usage(usage, answer["usage"])
        ctx.add_usage(usage)
    return Response(raw, status_code=response.status, media_type="application/json", headers=kept)


async def _read(response: UpstreamResponse, gateway: Gateway, provider: str) -> bytes:
    try:
        return await response.read()
    except ReadTimedOut:
        raise _timed_out(gateway, provider) from None
    except TransportFailure:
        raise UpstreamProtocolError(
            f"The connection to provider '{provider}' broke while reading its answer.", provider=provider
        ) from None
    finally:
        await response.close()


def _timed_out(gateway: Gateway, provider: str) -> UpstreamTimeout:
    seconds = gateway.settings.provider(provider).read_timeout_s
    return UpstreamTimeout(
        f"Provider '{provider}' did not answer within {seconds:g} s (read timeout).", provider=provider
    )


async def _relay(
    response: UpstreamResponse, ctx: RequestContext, gateway: Gateway, provider: str
) -> AsyncIterator[bytes]:
    """Anthropic's events as they come, whole; usage noted for the ledger; a stream that does not reach
    `message_stop` (or Anthropic's own `error`) ends with an `error` event."""
    usage: Usage | None = None
    ended = False
    try:
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            raise UpstreamProtocolError(
                f"Provider '{provider}' answered a stream request with '{kind or 'no content type'}', not an event "
                "stream.",
                provider=provider,
            )
        sse = SSEDecoder()
        async for chunk in _chunks(response):
            out: list[bytes] = []
            for message in sse.feed(chunk) if chunk is not None else sse.flush():
                if message.event in ("message_start", "message_delta"):
                    data = from_json(message.data)
                    usage = usage or Usage()
                    merge_usage(usage, (data.get("message") or {}).get("usage") or data.get("usage"))
                ended = ended or message.event in ("message_stop", "error")
                out.append(_event_bytes(message))
            if out:
                yield b"".join(out)
            if ended:
                break
        if not ended:
            raise UpstreamProtocolError(f"Provider '{provider}' ended its stream before finishing.", provider=provider)
    except ReadTimedOut:
        yield stream_error(_timed_out(gateway, provider))
    except TransportFailure as exc:
        yield stream_error(
            UpstreamProtocolError(f"Provider '{provider}' broke off its stream: {exc}.", provider=provider)
        )
    except UnimodelError as exc:
        yield stream_error(exc)
    except (ValueError, TypeError, AttributeError):
        yield stream_error(
            UpstreamProtocolError(
                f"Provider '{provider}' sent a stream event unimodel could not read.", provider=provider
            )
        )
    finally:
        await response.close()
        if usage is not None:
            ctx.add_usage(usage)


async def _chunks(response: UpstreamResponse) -> AsyncIterator[bytes | None]:
    """The body's chunks, then None for its end."""
    async for chunk in response.chunks():
        yield chunk
    yield None


def _event_bytes(message: SSEMessage) -> bytes:
    data = "".join(f"data: {line}\n" for line in message.data.split("\n"))
    return f"event: {message.event}\n{data}\n".encode()
