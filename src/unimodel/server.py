"""Running the server: one process by default, or `--workers N` gateway processes plus one runtime process.

One process (the default) does everything: the HTTP API, keys, limits, the ledger and the open models.

`--workers N` (N > 1): uvicorn's supervisor runs N gateway processes on the one listening socket; they share
keys and usage through the store and rate limits through Redis (`[limits] redis_url`, required). Open models
must stay one controller per machine, so this process first starts a runtime process (the same app, bound to a
loopback port, answering only requests carrying an internal token) and the gateway processes forward open-model
and cluster requests to it (gateway/runtime_link.py). Metrics of all processes are aggregated through
`PROMETHEUS_MULTIPROC_DIR`. docs/architecture.md has the picture.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .config import Settings, load_settings
from .gateway.logs import configure_logging
from .gateway.platform import StartupRefused, auth_mode
from .runtime.lifeline import LIFELINE_FD_ENV, open_lifeline, watch_parent
from .store import Store

log = logging.getLogger("unimodel.server")

_RUNTIME_URL = "UNIMODEL_RUNTIME_URL"
_INTERNAL_TOKEN = "UNIMODEL_INTERNAL_TOKEN"
_RUNTIME_START_S = 60.0
_ORPHAN_EXIT_S = 30.0  # an orphaned runtime process's longest orderly shutdown


def prepare(settings: Settings) -> None:
    """Checks that must pass before anything listens: the auth mode is allowed here, the store is reachable and
    migrated. Raises StartupRefused or StoreUnavailable with a message for the operator."""
    auth_mode(settings)
    if settings.server.workers > 1 and settings.limits.redis_url is None:
        raise StartupRefused(
            f"--workers {settings.server.workers} runs several gateway processes, and rate limits must be counted "
            "in one place for all of them: set [limits] redis_url (e.g. redis://127.0.0.1:6379/0), or run "
            "with --workers 1."
        )
    Store.open(settings.store, migrate=True).close()


def _tune_gc() -> None:
    # Everything allocated so far lives for the whole process: keep the collector from rescanning it, and let
    # the young generation grow before a collection, which keeps request tail latency down.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    from .gateway.http_limits import IMPORT_NAME, LimitedHttpToolsProtocol

    LimitedHttpToolsProtocol.configure(settings.server)  # this process; other processes in their app factory
    return {
        "log_level": settings.server.log_level.lower(),
        "access_log": False,  # the platform middleware writes the access log (with request ids) when asked
        "log_config": None,  # keep our JSON logging
        "loop": "auto",
        "http": IMPORT_NAME,  # httptools, with limits on request heads (gateway/http_limits.py)
    }


def run(settings: Settings, config_path: str | None) -> None:
    """Serve until interrupted (after `prepare`)."""
    import uvicorn

    metrics_dir = tempfile.mkdtemp(prefix="unimodel-metrics-") if settings.server.workers > 1 else None
    if metrics_dir is not None:  # every process writes its samples here; /metrics in any of them sums them
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    if settings.metrics.port is not None:
        from .gateway.metrics import serve_port

        try:
            serve_port(settings.metrics.host, settings.metrics.port)
        except OSError as exc:
            raise StartupRefused(
                f"cannot serve metrics on {settings.metrics.host}:{settings.metrics.port} ([metrics] port): "
                f"{exc.strerror or exc}."
            ) from None
    if metrics_dir is None:
        from .gateway import create_app

        app = create_app(settings, store=Store.open(settings.store, migrate=False))
        _tune_gc()
        uvicorn.run(app, host=settings.server.host, port=settings.server.port, **_uvicorn_options(settings))
        return

    if config_path:
        os.environ["UNIMODEL_CONFIG"] = str(Path(config_path).resolve())
    # The processes read the same settings: the file and the environment, plus what the command line set.
    os.environ["UNIMODEL_SERVER__HOST"] = settings.server.host
    os.environ["UNIMODEL_SERVER__PORT"] = str(settings.server.port)
    os.environ["UNIMODEL_SERVER__WORKERS"] = str(settings.server.workers)
    runtime = RuntimeProcess()
    try:
        runtime.start()
        os.environ[_RUNTIME_URL] = runtime.url
        os.environ[_INTERNAL_TOKEN] = runtime.token
        uvicorn.run(
            "unimodel.server:gateway_worker_app",
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=settings.server.workers,
            **_uvicorn_options(settings),
        )
    finally:
        runtime.stop(settings.runtime.drain_timeout_s)
        shutil.rmtree(metrics_dir, ignore_errors=True)


class RuntimeProcess:
    """The one process that runs the open models; restarted if it dies while the server runs. It holds a lifeline
    to this process (runtime/lifeline.py), so it stops, and its instances with it, when this process is killed."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None  # the write end; the process's end of the line reads EOF when it closes
        self._stopping = threading.Event()

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="unimodel-runtime-watch", daemon=True).start()

    def _spawn(self) -> None:
        read_end, write_end = open_lifeline()
        env = {**os.environ, _INTERNAL_TOKEN: self.token, LIFELINE_FD_ENV: str(read_end)}
        command = [sys.executable, "-m", "unimodel", "runtime-process", "--port", str(self.port)]
        try:
            process = subprocess.Popen(command, env=env, pass_fds=(read_end,))
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._cut_lifeline()  # the previous process's, if this is a restart
        self._process, self._lifeline = process, write_end
        deadline = time.monotonic() + _RUNTIME_START_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StartupRefused(f"the open-model runtime process exited at start (code {process.returncode}).")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise StartupRefused(f"the open-model runtime process did not answer within {_RUNTIME_START_S:.0f} s.")

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            process = self._process
            if process is not None and process.poll() is not None and not self._stopping.is_set():
                log.error("the open-model runtime process exited (code %s); starting it again", process.returncode)
                try:
                    self._spawn()
                except StartupRefused as exc:
                    log.error("restarting the runtime process failed: %s", exc)

    def stop(self, grace_s: float) -> None:
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            self._cut_lifeline()
            return
        process.terminate()
        try:
            process.wait(timeout=grace_s + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            self._cut_lifeline()

    def _cut_lifeline(self) -> None:
        fd, self._lifeline = self._lifeline, None
        if fd is not None:
            os.close(fd)


def run_runtime_process(port: int) -> None:
    """The runtime process of `--workers N`: the same app on a loopback port, open to internal calls only."""
    import uvicorn

    from .gateway import create_app

    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    watch_parent(_serve_process_gone)
    token = os.environ.pop(_INTERNAL_TOKEN)
    app = create_app(settings, store=Store.open(settings.store, migrate=False), internal_token=token)
    _tune_gc()
    uvicorn.run(app, host="127.0.0.1", port=port, **_uvicorn_options(settings))


def _serve_process_gone() -> None:
    """The `serve` process is gone (killed): shut down as on SIGTERM (instances stopped, usage flushed), and
    exit regardless after `_ORPHAN_EXIT_S` (the instances' own lifelines then stop them)."""
    log.error("the serve process that started this process is gone; shutting down")
    backstop = threading.Timer(_ORPHAN_EXIT_S, os._exit, args=(1,))
    backstop.daemon = True  # an orderly shutdown that finishes in time exits without waiting for it
    backstop.start()
    os.kill(os.getpid(), signal.SIGTERM)


def gateway_worker_app() -> Any:
    """uvicorn's factory for each gateway process of `--workers N` (it imports this in a fresh interpreter)."""
    from .gateway import create_app
    from .gateway.http_limits import LimitedHttpToolsProtocol
    from .gateway.runtime_link import RuntimeLink

    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    parent = multiprocessing.parent_process()  # uvicorn's supervisor, i.e. `serve`
    if parent is not None:  # its sentinel reads EOF when it is gone, SIGKILL included: a lifeline of its own
        watch_parent(_serve_process_gone, fd=parent.sentinel)
    LimitedHttpToolsProtocol.configure(settings.server)
    link = RuntimeLink(os.environ[_RUNTIME_URL], os.environ[_INTERNAL_TOKEN])
    app = create_app(settings, store=Store.open(settings.store, migrate=False), runtime=link)
    _tune_gc()
    return app


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
