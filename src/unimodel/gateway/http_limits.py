"""Limits on a request's head — its request line and headers — enforced while they arrive, before the app runs.

uvicorn's httptools protocol buffers a header of any size (a 100 MB `Authorization` grew the server by 400 MB and
stalled the event loop while it was re-copied chunk by chunk), takes any number of header lines, and gives a
connection unlimited time to send its head (thousands of slow connections stay open for good). This subclass adds
three checks and otherwise leaves the protocol as it is:

- `[server] max_header_bytes`: the bytes of one head, counted as they are read; past it a 431 and the connection
  ends, before the parser buffers more;
- `[server] max_headers`: header lines; past it a 431;
- `[server] header_timeout_s`: from a connection's start (or the first byte of a keep-alive request) until its head
  is complete; past it a 408 and the connection ends.

The limits are class attributes set by `configure` before uvicorn creates connections: in `serve --workers N` each
gateway process imports this class by name and configures it from its settings in the app factory.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic_core import to_json
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import ServerConfig

IMPORT_NAME = "unimodel.gateway.http_limits:LimitedHttpToolsProtocol"


def _response(status: bytes, message: str) -> bytes:
    body = to_json({"error": message, "output": None})
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes: ClassVar[int] = 64 * 1024
    max_headers: ClassVar[int] = 100
    head_timeout_s: ClassVar[float] = 10.0

    @classmethod
    def configure(cls, server: ServerConfig) -> None:
        cls.max_head_bytes = server.max_header_bytes
        cls.max_headers = server.max_headers
        cls.head_timeout_s = server.header_timeout_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers (not a body, not idle between requests)
        self._head_bytes = 0
        self._header_lines = 0
        self._refusal: bytes | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    # -- connection --------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a whole head is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_bytes + len(data) > self.max_head_bytes:
            room = max(0, self.max_head_bytes - self._head_bytes)
            super().data_received(data[:room])  # the head may end inside the room left
            if self._in_head and not self.transport.is_closing():
                self._refuse(
                    b"431 Request Header Fields Too Large",
                    f"The request's headers are larger than this server's limit of {self.max_head_bytes} bytes "
                    "(server.max_header_bytes).",
                )
                return
            data = data[room:]
            if not data or self.transport.is_closing():
                return
        elif self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)

    # -- parser callbacks --------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_lines = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self.max_headers:
            self._refusal = _response(
                b"431 Request Header Fields Too Large",
                f"The request has more than {self.max_headers} header lines, this server's limit (server.max_headers).",
            )
            raise _HeadRefused  # the parser stops; uvicorn answers through send_400_response below
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # whatever the client sends next starts another head: count it from its first byte
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self.transport.write(self._refusal)
            self.transport.close()
            return
        super().send_400_response(msg)

    # -- internals ---------------------------------------------------------------------------------------------

    def _refuse(self, status: bytes, message: str) -> None:
        self._cancel_head_timer()
        self.transport.write(_response(status, message))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head waits behind an answer still being sent
            return
        self._refuse(
            b"408 Request Timeout",
            f"The request's headers did not arrive within {self.head_timeout_s:g} s (server.header_timeout_s).",
        )


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a head that broke a limit."""
