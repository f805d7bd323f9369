"""Run an ASGI app on loopback in a background thread (uvicorn), for tests.

    with LiveServer(create_openai_app(script)) as server:
        client = OpenAI(base_url=server.url + "/v1", api_key="sk-test")

The socket is bound before the thread starts (port 0 → a free port chosen by the OS), so `.url` is
known immediately and there is no race on the port; `__enter__` returns once uvicorn accepts connections.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["LiveServer"]


class LiveServer:
    """A uvicorn server for `app` on 127.0.0.1, running in a daemon thread.

    `log_level` is uvicorn's ("warning" by default, so failures inside the app still show up).
    `graceful_shutdown_s` bounds how long `stop()` waits for open connections (e.g. endless streams).
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        startup_timeout_s: float = 10.0,
        graceful_shutdown_s: float = 2.0,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="auto",
            access_log=False,
            timeout_graceful_shutdown=max(1, round(graceful_shutdown_s)),
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self.port: int = 0

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if not self.port:
            raise RuntimeError("LiveServer is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> LiveServer:
        if self._thread is not None:
            raise RuntimeError("LiveServer already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._thread = threading.Thread(target=self._run, name=f"LiveServer:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if self._error is not None:
                raise RuntimeError(f"LiveServer failed to start: {self._error!r}") from self._error
            if not self._thread.is_alive():
                raise RuntimeError("LiveServer thread exited before the server started")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"LiveServer did not start within {self._startup_timeout_s}s")
            time.sleep(0.005)
        self._wait_accepting(deadline)
        return self

    def _wait_accepting(self, deadline: float) -> None:
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _run(self) -> None:
        assert self._sock is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc

    def stop(self, timeout_s: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            self._server.force_exit = True
            thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
