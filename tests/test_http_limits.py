"""The real server's limits on request heads: size, number of lines and time, so that no connection can grow
the server or hold it without sending a whole request (gateway/http_limits.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from .served import Served, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("limits"), server="header_timeout_s = 1.5") as served:
        yield served


def _exchange(served: Served, data: bytes, *, wait_s: float = 10.0) -> tuple[bytes, float]:
    """Send raw bytes; return what the server answers until it closes the connection, and how long that took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.port), timeout=wait_s) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks), time.monotonic() - started


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a content-length (its head, then as many body bytes as it says)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_huge_header_is_a_431_before_it_is_buffered(server: Served) -> None:
    before = server.rss_kib()
    stop = threading.Event()
    health_s: list[float] = []

    def watch_health() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
            health_s.append(time.monotonic() - started)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    sent_mb = 0
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ")
            try:
                for _ in range(100):  # up to 100 MB, until the server answers and hangs up
                    sock.sendall(b"x" * (1 << 20))
                    sent_mb += 1
            except (BrokenPipeError, ConnectionResetError):
                pass
            with contextlib.suppress(ConnectionResetError):  # the close can overtake the 431 (unread bytes)
                answer = sock.recv(65536)
    finally:
        stop.set()
        watcher.join()
    assert sent_mb < 100
    assert not answer or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert server.rss_kib() - before < 30 * 1024
    assert max(health_s) < 2.0, max(health_s)


def test_the_431_names_the_limit(server: Served) -> None:
    answer, _ = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"y" * 70_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"max_header_bytes" in answer


def test_a_head_just_under_the_limit_is_served(server: Served) -> None:
    assert httpx.get(server.url + "/healthz", headers={"x-padding": "p" * 60_000}).status_code == 200


def test_too_many_header_lines_are_a_431(server: Served) -> None:
    lines = b"".join(b"x-h%d: v\r\n" % i for i in range(150))
    answer, _ = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"max_headers" in answer
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_head_sent_too_slowly_is_a_408(server: Served) -> None:
    answer, took = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"header_timeout_s" in answer and took < 8


def test_a_connection_that_sends_nothing_is_closed(server: Served) -> None:
    answer, took = _exchange(server, b"")
    assert took < 8 and (answer == b"" or answer.startswith(b"HTTP/1.1 408"))


def test_a_slow_second_request_on_a_kept_alive_connection_is_closed(server: Served) -> None:
    first = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(first)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")  # all of it: head and body may come apart
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = b""
        for _ in range(6):  # a byte every half second: each arrives before any idle timeout, the head never ends
            time.sleep(0.5)
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
        with contextlib.suppress(ConnectionResetError):
            answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:200]
    assert time.monotonic() - started < 8


def test_many_slow_connections_do_not_stay_open(server: Served) -> None:
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(200)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(3.5)  # twice the head timeout and a margin
        closed = 0
        for sock in socks:
            sock.settimeout(0.5)
            try:
                data = sock.recv(65536)
                closed += data.startswith(b"HTTP/1.1 408") or data == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass  # still open
        assert closed == len(socks)
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(server.url + "/healthz").status_code == 200
