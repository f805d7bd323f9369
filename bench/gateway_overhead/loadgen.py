"""A small closed-loop HTTP/1.1 load generator for the gateway-overhead benchmark.

``--concurrency`` keep-alive connections each send the same ``POST`` back to back for
``--duration`` seconds (raw asyncio protocol on uvloop, responses parsed by httptools, so that
the client stays cheap).  Per request it records the time to the first response-body byte
(TTFB: for a streamed completion, the first SSE bytes) and the time to the end of the response.
Only requests that finish inside the window count.  A request is an error when the status is not
200, or (with ``--stream``) when the body does not end with ``data: [DONE]`` (``--api responses``: when it has no
``response.completed`` event).

It prints one JSON object on stdout:
``{"requests", "errors", "duration_s", "rps", "latency_ms": {p50, p90, p99, max, mean},
"ttfb_ms": {...}, "first_error", "sent"}``; ``sent`` counts every request written, also those that
finished after the window or not at all.

Run: ``python loadgen.py --url http://127.0.0.1:8080/v1/chat/completions --model gpt-4o-mini
--stream --concurrency 16 --duration 10``.  Only loopback URLs are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

_NS_PER_MS = 1_000_000


def build_request(host: str, port: int, path: str, body: bytes, api_key: str, stream: bool) -> bytes:
    accept = "text/event-stream" if stream else "application/json"
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"host: {host}:{port}\r\n"
        "content-type: application/json\r\n"
        f"accept: {accept}\r\n"
        f"authorization: Bearer {api_key}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# The event a complete stream of each API has (a chat completion stream ends with `data: [DONE]` instead).
STREAM_END = {
    "messages": b"event: message_stop",
    "responses": b"event: response.completed",
    "responses-nostore": b"event: response.completed",
}


def chat_body(model: str, stream: bool, api: str = "chat") -> bytes:
    """A chat completion request, or (`api` responses, responses-nostore) a Responses API request, or (`api`
    messages) an Anthropic Messages API request."""
    doc: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    if api == "messages":  # Anthropic's Messages API (max_tokens is required there)
        doc = {**doc, "max_tokens": 64}
    elif api != "chat":
        doc = {"model": model, "input": "Hello", **({"store": False} if api == "responses-nostore" else {})}
    if stream:
        doc["stream"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Stats:
    latencies: list[int] = field(default_factory=list)  # ns
    ttfbs: list[int] = field(default_factory=list)  # ns
    errors: int = 0
    first_error: str | None = None
    sent: int = 0  # requests written, whatever became of them

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    marker = b""  # with --api responses/messages: the event a complete stream has (seen in `completed`)

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.future: asyncio.Future[tuple[int, int, int, bytes]] | None = None
        self.start = 0
        self.first = 0
        self.status = 0
        self.tail = b""
        self.completed = False
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self.future is not None and not self.future.done():
            self.future.set_exception(ConnectionError(f"connection closed: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            if self.future is not None and not self.future.done():
                self.future.set_exception(exc)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter_ns()
        if self.marker and not self.completed:
            self.completed = self.marker in self.tail + body
        self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        end = time.perf_counter_ns()
        if not self.parser.should_keep_alive():
            self.reusable = False
        if self.future is not None and not self.future.done():
            self.future.set_result((self.status, self.first or end, end, self.tail))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, int, int, bytes]]:
        assert self.transport is not None
        self.future = asyncio.get_running_loop().create_future()
        self.first = 0
        self.status = 0
        self.tail = b""
        self.completed = False
        self.start = time.perf_counter_ns()
        self.transport.write(raw)
        return self.future


async def worker(host: str, port: int, raw: bytes, stream: bool, deadline_ns: int, stats: Stats) -> None:
    loop = asyncio.get_running_loop()
    conn: Connection | None = None
    while time.perf_counter_ns() < deadline_ns:
        if conn is None or not conn.reusable or conn.transport is None:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            try:
                _, conn = await loop.create_connection(Connection, host, port)
            except OSError as exc:
                stats.error(f"connect: {exc!r}")
                conn = None
                await asyncio.sleep(0.05)
                continue
        stats.sent += 1
        try:
            status, first, end, tail = await conn.request(raw)
        except (ConnectionError, httptools.HttpParserError) as exc:
            stats.error(repr(exc))
            conn.reusable = False
            continue
        if end > deadline_ns:
            break
        if status != 200:
            stats.error(f"HTTP {status}: {tail[-64:]!r}")
            continue
        complete = conn.completed if Connection.marker else tail.rstrip().endswith(b"[DONE]")
        if stream and not complete:
            stats.error(f"stream did not end with {(Connection.marker or b'[DONE]').decode()}: {tail!r}")
            continue
        stats.latencies.append(end - conn.start)
        stats.ttfbs.append(first - conn.start)
    if conn is not None and conn.transport is not None:
        conn.transport.close()


def percentiles(samples_ns: list[int]) -> dict[str, float] | None:
    if not samples_ns:
        return None
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pct(p: float) -> float:
        rank = max(1, min(n, round(p / 100.0 * n + 0.5)))
        return ordered[rank - 1] / _NS_PER_MS

    return {
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1] / _NS_PER_MS,
        "mean": sum(ordered) / n / _NS_PER_MS,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    body = chat_body(args.model, args.stream, args.api)
    Connection.marker = STREAM_END.get(args.api, b"")
    raw = build_request(host, port, parts.path or "/", body, args.api_key, args.stream)
    stats = Stats()
    start = time.perf_counter_ns()
    deadline = start + int(args.duration * 1e9)
    tasks = [
        asyncio.create_task(worker(host, port, raw, args.stream, deadline, stats)) for _ in range(args.concurrency)
    ]
    # Bounded: whatever is still in flight a timeout after the window is cancelled.
    done, late = await asyncio.wait(tasks, timeout=args.duration + args.timeout)
    for task in done:
        if task.exception() is not None:
            stats.error(f"worker crashed: {task.exception()!r}")
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=5)
        stats.error(f"{len(late)} connection(s) still waiting {args.timeout}s after the window")
    duration = (min(time.perf_counter_ns(), deadline) - start) / 1e9
    return {
        "requests": len(stats.latencies),
        "errors": stats.errors,
        "duration_s": duration,
        "rps": len(stats.latencies) / duration if duration > 0 else 0.0,
        "latency_ms": percentiles(stats.latencies),
        "ttfb_ms": percentiles(stats.ttfbs),
        "first_error": stats.first_error,
        "sent": stats.sent,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="loopback http:// URL of the chat completions endpoint")
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default="sk-bench")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--api",
        choices=("chat", "messages", "responses", "responses-nostore"),
        default="chat",
        help="the request body's API",
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a request may run past the window")
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname or ""
    if urlsplit(args.url).scheme != "http" or not (host.startswith("127.") or host in ("localhost", "::1")):
        sys.exit("loadgen: only http:// loopback URLs are allowed")
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
