"""The controller: every open model's deployment (deployment.py), and the tick loop that scales them.

    controller = Controller(settings, Backends.from_settings(settings))   # or one Backend for every model
    await controller.start()                              # stops leftovers, then the tick loop
    deployment = controller.get("HuggingFaceTB/SmolLM2-135M-Instruct")
    async with deployment.lease() as lease:               # waits for a slot; may start an instance
        ...POST lease.address + "/v1/chat/completions"...
    await controller.aclose()                             # stops every instance

Errors a caller can see are drawn in lease.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx

from ..config import OpenModelConfig, Settings
from .backends import Backend, Backends
from .deployment import Clock, Deployment, Policy
from .instances import STOP_GRACE_S
from .lease import (
    InstanceFailed,
    InstanceStartFailed,
    InstanceState,
    Lease,
    ModelOff,
    ModelUnavailable,
    QueueFull,
    QueueTimeout,
    Replica,
)
from .policy import decide
from .source import ModelSource

__all__ = [
    "Controller",
    "Deployment",
    "InstanceFailed",
    "InstanceStartFailed",
    "InstanceState",
    "Lease",
    "ModelOff",
    "ModelUnavailable",
    "Policy",
    "QueueFull",
    "QueueTimeout",
    "Replica",
]

log = logging.getLogger("unimodel.runtime")


class Controller:
    """Every open model's deployment, and the tick loop that scales them."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend | Backends,
        *,
        policy: Policy = decide,
        clock: Clock = time.monotonic,
        http: httpx.AsyncClient | None = None,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        """`backend`: the backends by name (each model on its own `backend`, else `[runtime] backend`), or one
        backend for every model."""
        self.runtime = settings.runtime
        self.backends = backend if isinstance(backend, Backends) else Backends.only(backend)
        self.backend = self.backends.default  # [runtime] backend's
        self._policy = policy
        self._clock = clock
        self._http = http
        self._own_http = http is None
        self._stop_grace_s = stop_grace_s
        self._task: asyncio.Task[None] | None = None
        self.deployments: dict[str, Deployment] = {}
        for spec in settings.models:
            self.add(spec)

    def get(self, model_id: str) -> Deployment | None:
        return self.deployments.get(model_id)

    def add(self, spec: OpenModelConfig, source: ModelSource | None = None) -> Deployment:
        """Add a model at run time (a Hub model's first call). Raises `ValueError` when it is there already.
        `source` fetches the model's files before an instance starts (runtime/source.py)."""
        if spec.id in self.deployments:
            raise ValueError(f"model '{spec.id}' is already deployed")
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        deployment = Deployment(
            spec,
            self.runtime,
            self.backends.for_model(spec),
            policy=self._policy,
            clock=self._clock,
            http=self._http,
            stop_grace_s=self._stop_grace_s,
            source=source,
        )
        self.deployments[spec.id] = deployment
        return deployment

    async def remove(self, model_id: str) -> bool:
        """Stop a model's instances and forget it (cluster API `DELETE`). False when it was not there."""
        deployment = self.deployments.pop(model_id, None)
        if deployment is None:
            return False
        await deployment.shutdown()
        return True

    async def start(self) -> None:
        """Stop what a killed predecessor left running, then start the tick loop (every `runtime.tick_s`)."""
        if self._task is None:
            await self.backends.stop_leftovers()
            self._task = asyncio.create_task(self._loop(), name="unimodel-autoscaler")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.tick_s)
            await self.tick()

    async def tick(self) -> None:
        for deployment in list(self.deployments.values()):
            try:
                await deployment.tick()
            except Exception:
                log.exception("model %s: autoscaling tick failed", deployment.spec.id)

    def metrics(self) -> dict[str, dict[str, Any]]:
        return {model_id: d.metrics() for model_id, d in self.deployments.items()}

    async def aclose(self) -> None:
        """Stop the tick loop and every instance."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.gather(*(d.shutdown() for d in self.deployments.values()))
        await self.backends.aclose()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
