"""The model's state in a worker process: loading → ready, or → failed; and telling the backend it is ready.

This module imports nothing heavy: `__main__` starts the model loading (in a thread) before it imports and
starts the HTTP server, so the two overlap. The worker is ready when the model has loaded and the HTTP server listens; from then
on `/health` answers 200. If the process was started with `UNIMODEL_READY_FD=<fd>` (an inherited pipe: the
local backend passes one) it writes `ready\\n` there at that moment and closes it, so its parent need not poll.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

from .engines.base import Engine
from .errors import LoadError, WorkerError

READY_FD_ENV = "UNIMODEL_READY_FD"


def ready_fd_from_env() -> int | None:
    """The announcement pipe named by `UNIMODEL_READY_FD` (taken out of the environment, so the engine's own
    child processes neither see nor inherit it), or None."""
    raw = os.environ.pop(READY_FD_ENV, "")
    try:
        fd = int(raw)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fd


class ModelState:
    """The engine's state (loading, ready, failed), its load thread, and the readiness announcement."""

    def __init__(
        self, engine: Engine, on_failed: Callable[[str], None] | None = None, ready_fd: int | None = None
    ) -> None:
        self.engine = engine
        self.status = "loading"
        self.error: str | None = None
        self.on_failed = on_failed
        self._ready_fd = ready_fd
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loaded = False
        self._serving = False
        engine.on_fatal = self.fail

    def fail(self, reason: str) -> None:
        """The model cannot serve (it failed to load, or its server died): say why and stop the process."""
        spec = self.engine.spec
        self.error = f"model '{spec.model_id}' ({spec.engine}, {spec.task}): {reason}"
        self.status = "failed"
        self._close_ready_fd()
        if self.on_failed is not None:
            self.on_failed(self.error)

    def start_loading(self) -> None:
        """Load the model in a background thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self.load, name="load-model", daemon=True)
        self._thread.start()

    def load(self) -> None:
        started = time.monotonic()
        try:
            self.engine.load()
        except Exception as exc:
            reason = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
            self.fail(f"cannot load: {reason}")
            return
        with self._lock:
            self._loaded = True
            self._become_ready()
        print(f"unimodel worker: ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)

    def serving(self) -> None:
        """The HTTP server listens: the worker is ready as soon as the model is loaded (maybe already)."""
        with self._lock:
            self._serving = True
            self._become_ready()

    def _become_ready(self) -> None:  # holding the lock
        if not (self._loaded and self._serving) or self.status != "loading":
            return
        self.status = "ready"
        if self._ready_fd is not None:
            with contextlib.suppress(OSError):  # nobody listens any more: the backend polls /health as well
                os.write(self._ready_fd, b"ready\n")
        self._close_ready_fd()

    def _close_ready_fd(self) -> None:
        fd, self._ready_fd = self._ready_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def check_ready(self) -> None:
        if self.status != "ready":
            message = "The model is still loading; retry when GET /health answers 200."
            if self.status == "failed":
                message = f"The model failed to load: {self.error}"
            raise WorkerError(503, "model_loading", message)
