"""Running the server: one process by default, or `--workers N` gateway processes plus one runtime process.

One process (the default) does everything: the HTTP API, keys, limits, the ledger and the open models.

`--workers N` (N > 1): uvicorn's supervisor runs N gateway processes on the one listening socket; they share
keys and usage through the store and rate limits through Redis (`[limits] redis_url`, required). Open models
must stay one controller per machine, so this process first starts a runtime process (the same app, bound to a
loopback port, answering only requests carrying an internal token) and the gateway processes forward open-model
and cluster requests to it (gateway/runtime_link.py). Metrics of all processes are aggregated through
`PROMETHEUS_MULTIPROC_DIR`. docs/architecture.md has the picture.

Several machines (docs/ray.md, "Several gateway machines"): one controller for all of them, in the runtime process
of one machine, which listens where gateways on other machines reach it —
- the runtime machine: `UNIMODEL_RUNTIME_LISTEN=host:port` and `UNIMODEL_INTERNAL_TOKEN=<shared secret>`; its
  runtime process binds that address and takes that token (its own gateway processes use it too);
- each gateway machine: `UNIMODEL_RUNTIME_URL=http://host:port` and the same `UNIMODEL_INTERNAL_TOKEN`; it starts
  no runtime process and no instances: its gateway processes (one or `--workers N`) forward open-model and cluster
  requests there. A token the runtime refuses stops it at start; a runtime that does not answer yet does not (its
  calls get a 503 `runtime_unavailable` until it does).
Either role shares limits through Redis (`[limits] redis_url` is required, as for `--workers N`).
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
_RUNTIME_LISTEN = "UNIMODEL_RUNTIME_LISTEN"  # host:port: the runtime process serves gateways on other machines
_MIN_TOKEN_CHARS = 32
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
    remote, listen = remote_runtime()
    if (remote or listen) and settings.limits.redis_url is None:
        raise StartupRefused(
            f"{_RUNTIME_URL if remote else _RUNTIME_LISTEN} is set: gateways on several machines share this "
            "server's open models, and rate limits must be counted in one place for all of them: set [limits] "
            "redis_url to a Redis every machine reaches."
        )
    Store.open(settings.store, migrate=True).close()


def remote_runtime() -> tuple[str | None, tuple[str, int] | None]:
    """The runtime process of another machine this server's gateways forward to (`UNIMODEL_RUNTIME_URL`), and
    the address this machine's runtime process serves other machines' gateways on (`UNIMODEL_RUNTIME_LISTEN`);
    StartupRefused when they are malformed, set together, or lack a strong enough `UNIMODEL_INTERNAL_TOKEN`."""
    url = os.environ.get(_RUNTIME_URL) or None
    raw = os.environ.get(_RUNTIME_LISTEN) or None
    if url is None and raw is None:
        return None, None
    if url is not None and raw is not None:
        raise StartupRefused(
            f"{_RUNTIME_URL} (forward to another machine's runtime) and {_RUNTIME_LISTEN} (be the runtime for other "
            "machines) are both set; a machine takes one role."
        )
    token = os.environ.get(_INTERNAL_TOKEN, "")
    if len(token) < _MIN_TOKEN_CHARS:
        raise StartupRefused(
            f"{_RUNTIME_URL if url else _RUNTIME_LISTEN} is set, and the runtime process's port is then reachable "
            f"from other machines: set {_INTERNAL_TOKEN} to the same secret of at least {_MIN_TOKEN_CHARS} characters "
            "on every machine (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    if url is not None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise StartupRefused(f"{_RUNTIME_URL}={url!r} is not a URL: give http://host:port of the runtime machine.")
        return url.rstrip("/"), None
    listen = _listen_address()
    if listen is None:
        raise StartupRefused(f"{_RUNTIME_LISTEN}={raw!r} is not host:port (e.g. 10.0.0.5:8090 or 0.0.0.0:8090).")
    return None, listen


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

    remote, listen = remote_runtime()
    if remote is not None:
        _run_remote_gateway(settings, config_path, remote)
        return
    split = settings.server.workers > 1 or listen is not None
    metrics_dir = tempfile.mkdtemp(prefix="unimodel-metrics-") if split else None
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
    runtime = RuntimeProcess(listen)
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


def _run_remote_gateway(settings: Settings, config_path: str | None, url: str) -> None:
    """Gateway processes in front of another machine's runtime process: no runtime process, no instances here."""
    import uvicorn

    _check_token(url, os.environ[_INTERNAL_TOKEN])
    if config_path:
        os.environ["UNIMODEL_CONFIG"] = str(Path(config_path).resolve())
    os.environ["UNIMODEL_SERVER__HOST"] = settings.server.host
    os.environ["UNIMODEL_SERVER__PORT"] = str(settings.server.port)
    os.environ["UNIMODEL_SERVER__WORKERS"] = str(settings.server.workers)
    metrics_dir = tempfile.mkdtemp(prefix="unimodel-metrics-") if settings.server.workers > 1 else None
    if metrics_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    log.info("open models and clusters are forwarded to the runtime process at %s", url)
    try:
        uvicorn.run(
            "unimodel.server:gateway_worker_app",
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=settings.server.workers,
            **_uvicorn_options(settings),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _check_token(url: str, token: str) -> None:
    """StartupRefused when the runtime process at `url` refuses `token`; a runtime that does not answer (yet) is
    logged, not refused: its calls get a 503 until it does."""
    from .gateway.runtime_link import TOKEN_HEADER

    try:
        answer = httpx.get(
            url + "/models/v2/list/clusters", headers={TOKEN_HEADER: token}, timeout=5.0, trust_env=False
        )
    except httpx.HTTPError as exc:
        log.warning(
            "the runtime process at %s does not answer yet (%s); open-model calls get a 503 until it does", url, exc
        )
        return
    if answer.status_code == 403:
        raise StartupRefused(
            f"the runtime process at {url} refused this gateway's {_INTERNAL_TOKEN}: give every machine the runtime "
            "machine's token."
        )


class RuntimeProcess:
    """The one process that runs the open models; restarted if it dies while the server runs. It holds a lifeline
    to this process (runtime/lifeline.py), so it stops, and its instances with it, when this process is killed.

    `listen` (host, port): it also serves gateways on other machines there, with the token of the environment's
    `UNIMODEL_INTERNAL_TOKEN`; else a random loopback port and a token of this run."""

    def __init__(self, listen: tuple[str, int] | None = None) -> None:
        if listen is None:
            self.token = secrets.token_urlsafe(32)
            self.port = _free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        else:
            self.token = os.environ[_INTERNAL_TOKEN]
            host, self.port = listen
            here = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # its own gateways dial it here
            self.url = f"http://[{here}]:{self.port}" if ":" in here else f"http://{here}:{self.port}"
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
    listen = _listen_address()
    app = create_app(settings, store=Store.open(settings.store, migrate=False), internal_token=token)
    _tune_gc()
    host = listen[0] if listen is not None else "127.0.0.1"  # other machines' gateways reach it there
    uvicorn.run(app, host=host, port=port, **_uvicorn_options(settings))


def _listen_address() -> tuple[str, int] | None:
    """`UNIMODEL_RUNTIME_LISTEN` as (host, port); None when unset or malformed (`remote_runtime` says why)."""
    raw = os.environ.get(_RUNTIME_LISTEN) or ""
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


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
