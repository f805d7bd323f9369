"""A deliberately cheap mock OpenAI upstream for the gateway-overhead benchmark.

Raw asyncio protocol on uvloop, HTTP/1.1 parsed by httptools, keep-alive, and canned bytes built
once at start-up, so that the upstream costs as little CPU as possible and the benchmark measures
the gateway rather than the mock.

Every ``POST`` whose path ends in ``/chat/completions`` gets a canned ``chat.completion`` JSON
(``Content-Length``), or, when the JSON body has ``"stream": true``, a canned Server-Sent-Events
stream of ``chat.completion.chunk`` events and ``data: [DONE]`` (``Transfer-Encoding: chunked``).
``GET /v1/models`` and ``GET /health`` answer too, and ``GET /stats`` gives
``{"chat_completions": N, "by_path": {path: n}}``, the chat requests answered so far, in all and by
request path (the benchmark gives each gateway its own path prefix and compares the counts with
the gateways' usage ledgers); anything else is a 404.

Run: ``python mock_upstream.py --port 9100`` (binds 127.0.0.1 only).  It prints ``READY <port>`` on
stdout once it listens.  ``--stream-interval-ms`` spaces the SSE events out (default 0: the whole
stream is written at once, in one event per HTTP chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from typing import Any, cast

import httptools

MODEL = "gpt-4o-mini"
CREATED = 1_700_000_000
COMPLETION_ID = "chatcmpl-bench0000000000000000000000"
STREAM_WORDS = ("Hello", "!", " How", " can", " I", " help", "?")
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"content-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def completion_body() -> bytes:
    doc: dict[str, Any] = {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": 7, "total_tokens": 15},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def stream_events() -> list[bytes]:
    """The SSE events (each ``data: ...\\n\\n``) of one canned streamed completion."""

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    docs = [chunk({"role": "assistant", "content": ""}, None)]
    docs += [chunk({"content": word}, None) for word in STREAM_WORDS]
    docs.append(chunk({}, "stop"))
    events = [b"data: " + json.dumps(d, separators=(",", ":")).encode() + b"\n\n" for d in docs]
    events.append(b"data: [DONE]\n\n")
    return events


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"connection: keep-alive\r\n\r\n"
)
EVENTS = stream_events()
# Default: the whole streamed response in one write (one HTTP chunk per SSE event).
STREAM_ALL = STREAM_HEAD + b"".join(_http_chunk(e) for e in EVENTS) + b"0\r\n\r\n"
COMPLETION = _response("200 OK", "application/json", completion_body())
MODELS = _response(
    "200 OK",
    "application/json",
    json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "bench"}]}
    ).encode(),
)
HEALTH = _response("200 OK", "application/json", b'{"status":"ok"}')
NOT_FOUND = _response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')
COUNTS = {"chat_completions": 0}  # chat requests answered since start (GET /stats)
BY_PATH: dict[bytes, int] = {}  # the same by request path


class MockProtocol(asyncio.Protocol):
    """One client connection; requests on it are answered in order (HTTP/1.1 keep-alive)."""

    def __init__(self, stream_interval: float) -> None:
        self.stream_interval = stream_interval
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.busy = False  # a spaced-out stream is being written
        self.pending: list[tuple[bytes, bytes, bytes, bool]] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response("400 Bad Request", "text/plain", b"bad request"))
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method: bytes = self.parser.get_method()
        keep_alive: bool = self.parser.should_keep_alive()
        item = (method, self.url.split(b"?", 1)[0], b"".join(self.body), keep_alive)
        if self.busy:
            self.pending.append(item)
        else:
            self.answer(*item)

    # responses
    def answer(self, method: bytes, path: bytes, body: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if method == b"POST" and path.endswith(b"/chat/completions"):
            COUNTS["chat_completions"] += 1
            BY_PATH[path] = BY_PATH.get(path, 0) + 1
            if _STREAM_RE.search(body):
                if self.stream_interval > 0:
                    self.busy = True
                    asyncio.get_running_loop().create_task(self.spaced_stream(keep_alive))
                    return
                transport.write(STREAM_ALL)
            else:
                transport.write(COMPLETION)
        elif method == b"GET" and path.endswith(b"/models"):
            transport.write(MODELS)
        elif method == b"GET" and path in (b"/health", b"/"):
            transport.write(HEALTH)
        elif method == b"GET" and path == b"/stats":
            stats = {**COUNTS, "by_path": {k.decode(errors="replace"): v for k, v in BY_PATH.items()}}
            transport.write(_response("200 OK", "application/json", json.dumps(stats).encode()))
        else:
            transport.write(NOT_FOUND)
        if not keep_alive:
            transport.close()

    async def spaced_stream(self, keep_alive: bool) -> None:
        try:
            if self.transport is None:
                return
            self.transport.write(STREAM_HEAD + _http_chunk(EVENTS[0]))
            for event in EVENTS[1:]:
                await asyncio.sleep(self.stream_interval)
                if self.transport is None:
                    return
                self.transport.write(_http_chunk(event))
            self.transport.write(b"0\r\n\r\n")
            if not keep_alive:
                self.transport.close()
        finally:
            self.busy = False
        while self.pending and not self.busy:
            self.answer(*self.pending.pop(0))


async def serve(host: str, port: int, stream_interval: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(stream_interval), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--stream-interval-ms", type=float, default=0.0, help="gap between SSE events")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        sys.exit("mock_upstream: only loopback addresses are allowed")
    coro = serve(args.host, args.port, args.stream_interval_ms / 1000.0)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
