"""A real redis-server for the limit tests: started once per session when first asked for, on a free loopback port.

The limits are tested against a real Redis, not a mock, because what matters is what a mock would fake: the Lua
scripts, Redis's clock, atomicity across clients, and what the client library does when the server goes away.
CI must have `redis-server` (`.ci/run` installs it); set UNIMODEL_TEST_NO_REDIS=1 to skip these tests instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("UNIMODEL_TEST_NO_REDIS") == "1":
            pytest.skip("redis-server is not installed and UNIMODEL_TEST_NO_REDIS=1")
        pytest.fail(
            "redis-server is not installed: the limit tests need a real Redis "
            "(apt-get install redis-server), or set UNIMODEL_TEST_NO_REDIS=1 to skip them",
            pytrace=False,
        )
    return binary


def _answers(port: int) -> bool:
    """True when something on the port answers PING like Redis (+PONG, or -NOAUTH when a password is set)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


class RedisServer:
    """One redis-server process: no persistence, loopback only, its files in a temp dir; restartable on its port."""

    def __init__(self, *, password: str | None = None, port: int | None = None) -> None:
        self.binary = _redis_binary()
        self.password = password
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="unimodel-test-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self._dir.name]
        if self.password:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self._dir.name)
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}: {err[-500:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL: the tests want a Redis that vanishes, not one that says goodbye)."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait(timeout=10)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
    except RuntimeError:  # the free port was taken between probing and binding: try once more on another
        server.close()
        server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """`redis://127.0.0.1:P/0` of the session's server."""
    return redis_server.url


@pytest.fixture
def clean_redis_url(redis_url: str) -> str:
    """The session server's URL, with its database emptied first so no test sees another's keys."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    return redis_url
