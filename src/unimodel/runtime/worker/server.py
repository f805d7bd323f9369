"""The worker's HTTP/1.1 server: the standard library only, one thread per connection.

The worker serves one client, the gateway, on loopback: a handful of connections, each request answered by the
thread that reads it (the engine runs in that thread). It was uvicorn and starlette; their imports and start-up
took ~100 ms of CPU, spent while the model loads on the same cores, and so added to every cold start. This
needs no import the engine's library has not made already.

- Requests: any method; the body by `content-length` or chunked; keep-alive (HTTP/1.1), an idle connection
  closed after `KEEP_ALIVE_S`.
- Responses: `Response` (a body of bytes) or `StreamingResponse` (an iterator of byte chunks, sent chunked as
  each comes). A client that goes away is noticed before each chunk (and by a failed write): the iterator is
  closed, so a generation stops there. `Request.gone()` tells a handler the same while it works.
- A handler's exception goes to `on_error`, which answers it (the app turns its errors into JSON).
"""

from __future__ import annotations

import json
import select
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

KEEP_ALIVE_S = 75.0  # an idle keep-alive connection is closed after this long (the gateway's pool keeps fewer)
MAX_LINE = 65536


class Request:
    def __init__(self, method: str, target: str, headers: Any, body: bytes, connection: socket.socket) -> None:
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path or "/"
        self.query = parts.query
        self.headers = headers  # an email.message.Message: case-insensitive `get`
        self.body = body
        self._connection = connection

    def gone(self) -> bool:
        """The client closed the connection (it cannot want the answer any more)."""
        return _peer_closed(self._connection)


class Response:
    def __init__(self, body: bytes = b"", status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = {"content-type": "application/octet-stream", **(headers or {})}


class JSONResponse(Response):
    def __init__(self, content: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        super().__init__(body, status, {"content-type": "application/json", **(headers or {})})


class StreamingResponse:
    """Chunks sent as the iterator yields them; `on_close` runs when the response is over, however it ended."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        status: int = 200,
        media_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = {"content-type": media_type, **(headers or {})}
        self.on_close = on_close


Answer = Response | StreamingResponse
Handler = Callable[[Request], Answer]


class HTTPError(Exception):
    """No handler for this request: 404 (no such path) or 405 (not that method)."""

    def __init__(self, status: int) -> None:
        super().__init__(HTTPStatus(status).phrase)
        self.status = status


class Router:
    """path → method → handler; `on_error` answers what a handler raised (and HTTPError: no such route)."""

    def __init__(self, routes: dict[str, dict[str, Handler]], on_error: Callable[[Request, Exception], Answer]) -> None:
        self.routes = routes
        self.on_error = on_error

    def find(self, request: Request) -> Handler:
        methods = self.routes.get(request.path)
        if methods is None:
            raise HTTPError(404)
        handler = methods.get(request.method) or (methods.get("GET") if request.method == "HEAD" else None)
        if handler is None:
            raise HTTPError(405)
        return handler


class _Connection(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # chunks go out as they come

    def handle_one_request(self) -> None:
        try:
            self.connection.settimeout(KEEP_ALIVE_S)
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            self.connection.settimeout(None)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_LINE:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():  # it answered the error
            return
        try:
            body = self._body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        request = Request(self.command, self.path, self.headers, body, self.connection)
        with self.server.busy():
            try:
                answer = self.server.dispatch(request)
            except Exception as exc:  # the app's on_error failed too: answer something
                self.server.report(request, exc)
                answer = Response(b"internal error", 500, {"content-type": "text/plain"})
            try:
                self._send(request, answer)
            except OSError:  # the client went away
                self.close_connection = True

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline(MAX_LINE).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(MAX_LINE)
        length = int(self.headers.get("content-length") or 0)
        if length < 0:
            raise ValueError("negative content-length")
        return self.rfile.read(length) if length else b""

    def _head(self, status: int, headers: dict[str, str], length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if length is not None:
            lines.append(f"content-length: {length}")
        elif self.request_version == "HTTP/1.1":
            lines.append("transfer-encoding: chunked")
        else:
            self.close_connection = True  # HTTP/1.0: the end of the body is the end of the connection
        if self.close_connection:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, request: Request, answer: Answer) -> None:
        head_only = request.method == "HEAD"
        if isinstance(answer, Response):
            head = self._head(answer.status, answer.headers, len(answer.body))
            self.wfile.write(head if head_only else head + answer.body)
            return
        chunked = False
        chunks = iter(answer.chunks)
        pending: bytes | None = None  # the head, until it goes out with the first chunk
        try:
            head = self._head(answer.status, answer.headers, 0 if head_only else None)
            chunked = not head_only and self.request_version == "HTTP/1.1"
            if head_only:
                self.wfile.write(head)
                return
            pending = head
            for chunk in chunks:
                if not chunk:
                    continue
                if pending is None and _peer_closed(self.connection):
                    self.close_connection = True
                    return
                data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                self.wfile.write(data if pending is None else pending + data)
                pending = None
            self.wfile.write((pending or b"") + (b"0\r\n\r\n" if chunked else b""))
        except OSError:  # the client went away
            self.close_connection = True
        except Exception as exc:
            self.close_connection = True
            if pending is None:  # the body failed after its head was sent: only ending the connection says so
                self.server.report(request, exc)
            else:  # nothing sent yet: answer the error instead
                self._send(request, self.server.router.on_error(request, exc))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a generator stops here (its `finally` runs) when the client went away
            if answer.on_close is not None:
                answer.on_close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log; errors are the app's to print


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Serves `router` on an already bound socket: `activate()` (listen), then `serve_forever()`."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, router: Router) -> None:
        super().__init__(sock.getsockname(), _Connection, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.router = router
        self._active = 0
        self._idle = threading.Condition()

    def activate(self) -> None:
        self.server_activate()  # listen(): connections are accepted (queued) from now on

    def dispatch(self, request: Request) -> Answer:
        try:
            return self.router.find(request)(request)
        except Exception as exc:
            return self.router.on_error(request, exc)

    def report(self, request: Request, exc: Exception) -> None:
        print(f"unimodel worker: {request.path} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def busy(self) -> _Busy:
        return _Busy(self)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Until no request is being answered (True), or `timeout_s` passed (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout_s)


class _Busy:
    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> None:
        with self.server._idle:
            self.server._active += 1

    def __exit__(self, *exc: object) -> None:
        with self.server._idle:
            self.server._active -= 1
            self.server._idle.notify_all()


def _peer_closed(sock: socket.socket) -> bool:
    try:
        poll = select.poll()
        poll.register(sock, select.POLLIN)
        if not poll.poll(0):
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""  # at EOF (data would be a next request: not gone)
    except OSError:
        return True


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
