"""Health checks of running instances: one that stops answering (hung, stopped, deadlocked) is found.

While an instance is ready or draining its `GET /health` is checked every `[runtime] health_interval_s`
(measured start to start, so a slow check does not stretch the interval); a check not answered 200 within
`health_timeout_s` failed. After `health_failures` failures in a row `on_unresponsive` is called, once, and
the watch ends; what to do then (kill, fail the requests, replace) is the caller's. The watch also ends when
the instance exits or `watching()` turns false. A busy instance passes: the worker answers `/health` from its
own thread while the engine generates (worker/server.py), so only an instance that answers nothing fails.

    await watch_health(instance, checker, lambda: replica.state is READY, on_unresponsive)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..config import RuntimeConfig
from .backends import Instance

__all__ = ["HealthChecker", "watch_health"]

log = logging.getLogger("unimodel.runtime")

EXIT_GRACE_S = 0.5  # how long a failing instance may take to be seen exiting before it is called unresponsive


@dataclass(frozen=True, slots=True)
class HealthChecker:
    """How instances are checked: `probe` one URL, with the interval and the failures allowed in a row."""

    http: httpx.AsyncClient
    interval_s: float
    timeout_s: float
    failures: int

    @classmethod
    def from_runtime(cls, http: httpx.AsyncClient, runtime: RuntimeConfig) -> HealthChecker:
        return cls(http, runtime.health_interval_s, runtime.health_timeout_s, runtime.health_failures)

    async def probe(self, url: str, timeout_s: float | None = None) -> str | None:
        """None when `url` answers 200 within the timeout; otherwise what went wrong, in words."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            response = await self.http.get(url, timeout=timeout)
        except httpx.TimeoutException:
            return f"no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None if response.status_code == 200 else f"answered {response.status_code}"


async def watch_health(
    instance: Instance,
    checker: HealthChecker,
    watching: Callable[[], bool],
    on_unresponsive: Callable[[str], None],
) -> None:
    """Check `instance` until it exits, `watching()` is false, or it failed `checker.failures` checks in a row
    (then `on_unresponsive(why)`)."""
    loop = asyncio.get_running_loop()
    url = instance.address + instance.health_path
    failures = 0
    next_at = loop.time() + checker.interval_s
    while True:
        with contextlib.suppress(TimeoutError):  # the wait ends early when the process exits
            await asyncio.wait_for(instance.exited.wait(), max(0.0, next_at - loop.time()))
        if instance.exited.is_set() or not watching():
            return
        next_at = loop.time() + checker.interval_s
        problem = await checker.probe(url)
        if instance.exited.is_set() or not watching():
            return  # a check that failed because the process died is the exit watcher's business
        if problem is None:
            failures = 0
            continue
        failures += 1
        log.warning(
            "model %s: instance %s failed health check %d of %d: %s",
            instance.model_id,
            instance.id,
            failures,
            checker.failures,
            problem,
        )
        if failures >= checker.failures:
            with contextlib.suppress(TimeoutError):  # a refused check may be a process dying: a crash, not a hang
                await asyncio.wait_for(instance.exited.wait(), EXIT_GRACE_S)
            if instance.exited.is_set() or not watching():
                return
            on_unresponsive(f"{failures} health checks in a row failed, the last: {problem}")
            return
