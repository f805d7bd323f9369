"""`WorkerHost`, the Ray actor that holds one instance's worker process on the node Ray placed it on.

The gateway makes one detached, named actor per instance (runtime/backends/ray/backend.py) with the resources the
model needs; Ray places it on a node. There the actor:
- has the model's files on this node (weights.py: a snapshot of the gateway's Hugging Face cache is looked up, or
  pulled, in this node's own cache), then starts the worker — the command line the gateway built (the local
  backend's), on this node's address and a free port here — as a subprocess in its own process group, with the
  same ready pipe and lifeline as a local instance: when the actor's process dies (killed, or its node lost), the
  worker reads EOF on its lifeline and kills its group;
- answers the gateway: `wait_ready` (the worker wrote "ready"), `wait_exit` (its exit code), `ping` (the owner's
  heartbeat, and the log written since the last one), `stop`, `kill`, `describe`, `claim` (a restarted gateway
  adopts the instance);
- stops its worker and exits when no owner has pinged it for `orphan_timeout_s` (its gateway is gone for good).

Threaded (`max_concurrency`): blocking calls (`wait_exit`) run beside pings. Standard library only, and light
at import (this package's docstring says why).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..instance_env import instance_environment
from ..lifeline import LIFELINE_FD_ENV, open_lifeline
from .weights import on_this_node

__all__ = ["LOG_CHUNK", "WORKER_PROGRAM", "WorkerHost"]

READY_FD_ENV = "UNIMODEL_READY_FD"
LOG_CHUNK = 256 * 1024  # the most log bytes one ping carries
WORKER_PROGRAM = "{python}"  # an argv's first item that stands for this node's interpreter


class WorkerHost:
    """One instance's worker on this node (module docstring). `meta` says what it is (model, fingerprint, name)."""

    def __init__(self, meta: dict[str, Any], owner: str, orphan_timeout_s: float) -> None:
        self._meta = dict(meta)
        self._owner = owner
        self._pinged = time.monotonic()
        self._orphan_timeout_s = orphan_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._life_w: int | None = None
        self._ready = threading.Event()
        self._exited = threading.Event()
        self._log_path: Path | None = None
        self._where: dict[str, Any] = {}
        threading.Thread(target=self._watchdog, name="unimodel-orphan-watch", daemon=True).start()

    # ── the worker ──────────────────────────────────────────────────────────

    def where(self) -> dict[str, Any]:
        """This node (answered as soon as the actor is placed): its address and id, this process's pid."""
        ray: Any = importlib.import_module("ray")  # on the node, inside Ray: there is one
        node_id = ray.get_runtime_context().get_node_id()
        return {"node_ip": ray.util.get_node_ip_address(), "node_id": node_id, "actor_pid": os.getpid()}

    def launch(
        self, argv: list[str], slots: dict[str, int], model: dict[str, Any], env: dict[str, str], hub: Any
    ) -> dict[str, Any]:
        """Start the worker and return where it listens. `argv`: its command line as the gateway built it, with
        WORKER_PROGRAM for this node's interpreter; `slots`: where in it the port and the model's path go (they
        are this node's); `model`: its `id`, `path` and `file` (the path as the gateway's machine has it);
        `env`: what the gateway allows the instance, laid over this node's own allow-listed environment; `hub`:
        the gateway's `[hub]` settings, less its token and cache (for a pull here)."""
        if self._proc is not None:
            raise RuntimeError("this actor already runs a worker")
        where = self.where()
        host = str(where["node_ip"])
        path = on_this_node(str(model["id"]), model.get("path"), model.get("file"), hub)
        port = _free_port(host)
        argv = [sys.executable, *argv[1:]] if argv and argv[0] == WORKER_PROGRAM else list(argv)
        argv[slots["port"]] = str(port)
        if "path" in slots and path is not None:
            argv[slots["path"]] = path
        argv += ["--host", host]
        logs = Path(tempfile.gettempdir()) / "unimodel-ray"
        logs.mkdir(parents=True, exist_ok=True)
        self._log_path = logs / f"{self._meta.get('name', 'instance').replace('/', '_')}.log"
        full_env = instance_environment(os.environ) | env
        ready_r, ready_w = os.pipe()
        life_r, life_w = open_lifeline()
        full_env |= {"PYTHONUNBUFFERED": "1", READY_FD_ENV: str(ready_w), LIFELINE_FD_ENV: str(life_r)}
        try:
            with open(self._log_path, "ab") as out:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=full_env,
                    pass_fds=(ready_w, life_r),
                )
        except BaseException:
            os.close(ready_r)
            os.close(life_w)
            raise
        finally:
            os.close(ready_w)
            os.close(life_r)
        self._proc, self._life_w = proc, life_w
        threading.Thread(target=self._read_ready, args=(ready_r,), daemon=True).start()
        threading.Thread(target=self._reap, daemon=True).start()
        self._where = {**where, "address": f"http://{host}:{port}", "pid": proc.pid, "path": path}
        return dict(self._where)

    def _read_ready(self, fd: int) -> None:
        received = b""
        with contextlib.suppress(OSError):
            while b"ready" not in received:
                data = os.read(fd, 64)
                if not data:
                    break
                received += data
        if b"ready" in received:
            self._ready.set()
        with contextlib.suppress(OSError):
            os.close(fd)

    def _reap(self) -> None:
        assert self._proc is not None
        self._proc.wait()
        _signal_group(self._proc.pid, signal.SIGKILL)  # what the worker left in its group (an engine's server)
        fd, self._life_w = self._life_w, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._exited.set()

    def wait_ready(self) -> bool:
        """True once the worker wrote "ready"; False when it exited first (or writes none: the gateway polls)."""
        while not self._ready.wait(0.5):
            if self._exited.is_set() or self._proc is None:
                return False
        return True

    def wait_exit(self) -> int | None:
        """The worker's exit code, once it has exited (negative: killed by that signal)."""
        self._exited.wait()
        return None if self._proc is None else self._proc.returncode

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM the worker's group, SIGKILL it after `grace_s`; its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if not self._exited.is_set():
            _signal_group(proc.pid, signal.SIGTERM)
            if not self._exited.wait(grace_s):
                _signal_group(proc.pid, signal.SIGKILL)
                self._exited.wait(10)
        return proc.returncode

    def kill(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        _signal_group(proc.pid, signal.SIGKILL)
        self._exited.wait(10)
        return proc.returncode

    # ── the gateway that owns it ────────────────────────────────────────────

    def ping(self, owner: str, offset: int) -> dict[str, Any]:
        """The owner's heartbeat; the log from `offset` (at most LOG_CHUNK bytes) and the exit code, if any."""
        with self._lock:
            mine = owner == self._owner
            if mine:
                self._pinged = time.monotonic()
        log, end = b"", offset
        if self._log_path is not None:
            with contextlib.suppress(OSError), open(self._log_path, "rb") as f:
                f.seek(offset)
                log = f.read(LOG_CHUNK)
                end = offset + len(log)
        proc = self._proc
        code = proc.returncode if proc is not None and self._exited.is_set() else None
        return {"owned": mine, "log": log, "offset": end, "returncode": code}

    def describe(self) -> dict[str, Any]:
        with self._lock:
            since = time.monotonic() - self._pinged
            owner = self._owner
        running = self._proc is not None and not self._exited.is_set()
        return {**self._meta, **self._where, "owner": owner, "since_ping_s": since, "running": running}

    def claim(self, owner: str, stale_after_s: float) -> bool:
        """Become `owner`'s when the current owner has not pinged for `stale_after_s` (it is gone)."""
        with self._lock:
            if owner != self._owner and time.monotonic() - self._pinged < stale_after_s:
                return False
            self._owner = owner
            self._pinged = time.monotonic()
            return True

    def _watchdog(self) -> None:
        while True:
            time.sleep(1.0)
            with self._lock:
                idle = time.monotonic() - self._pinged
            if idle >= self._orphan_timeout_s:
                print(
                    f"unimodel: no gateway has pinged instance {self._meta.get('name')} for {idle:.0f} s "
                    "(orphan_timeout_s); stopping it",
                    file=sys.stderr,
                    flush=True,
                )
                self.stop(5.0)
                os._exit(0)


def _free_port(host: str) -> int:
    """A port free on this node's address right now (the worker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
