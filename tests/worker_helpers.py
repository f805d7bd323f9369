"""A worker process for the tests: `python -m unimodel.runtime.worker` on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WorkerProcess:
    """One worker subprocess; its stderr goes to a file the tests read (`stderr`)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "unimodel.runtime.worker", *args, "--port", str(self.port)]
        self._log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.statuses: list[int] = []  # /health statuses seen while waiting, in order, without repeats

    def start(self) -> WorkerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> int | None:
        try:
            return httpx.get(self.url + "/health", timeout=2.0).status_code
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout: float = 120.0) -> WorkerProcess:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.stderr}")
            status = self.health()
            if status is not None and (not self.statuses or self.statuses[-1] != status):
                self.statuses.append(status)
            if status == 200:
                return self
            time.sleep(0.005)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.stderr}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def post(self, path: str, body: dict[str, Any], timeout: float = 120.0) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sse_events(response: httpx.Response) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded; `[DONE]` stays a string."""
    import json

    events: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events
