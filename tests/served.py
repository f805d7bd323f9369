"""`unimodel serve` as a user starts it: a real subprocess with a config file, for tests of what only the real
server does (its HTTP protocol limits, its metrics port, its start-up and shutdown)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

UNIMODEL = [sys.executable, "-m", "unimodel"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str, port: int) -> None:
        self.process = process
        self.url = url
        self.port = port

    def rss_kib(self) -> int:
        """The server process's resident memory."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@contextmanager
def serve(
    tmp_path: Path, config: str = "", *, server: str = "", runtime: str = "", args: tuple[str, ...] = ()
) -> Iterator[Served]:
    """Start `unimodel serve` with `config` (TOML tables, after a port, a private store and no bundled models;
    `server` and `runtime` add lines to those tables) and yield once `/healthz` answers; SIGTERM, then SIGKILL, at
    the end."""
    port = free_port()
    path = tmp_path / "unimodel.toml"
    path.write_text(
        f"[server]\nport = {port}\n{server}\n"
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n[runtime]\ndefault_models = false\n{runtime}\n{config}'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
    process = subprocess.Popen([*UNIMODEL, "serve", "--config", str(path), *args], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"unimodel serve exited with {process.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("unimodel serve did not answer within 60 s")
            time.sleep(0.1)
        yield Served(process, url, port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
