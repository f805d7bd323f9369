"""One model's instances through their lifecycle: files, launch, health, exit, back-off, drain, stop.

An instance goes starting → ready (its `/health` answers 200) → draining → stopped, or → failed when its
process exits, it is not ready within `start_timeout_s`, or, ready or draining, it fails `health_failures`
health checks in a row (health.py): then it leaves the router at once and is killed, its requests fail as
for a crash, and the scaling path replaces it. A model named by its Hub id has a `source` (source.py): its files
are fetched before the first launch, and the start timeout counts from then. After a failed start no instance is
launched for a back-off that doubles per failure in a row (1 s to 30 s). Draining takes the instance out of the
router; it is stopped when its last request is done (`request_done`) or after `runtime.drain_timeout_s`.

The queue and the scaling decision are the controller's (controller.py). It says how many instances to keep
(`scale_to`), launches one at once for a request that finds none (`launch`), and hears back through three
callbacks: an instance became ready (`on_ready`: give it waiting requests), a serving one was lost
(`on_lost`: crashed or unresponsive), a start failed (`on_start_failed`). Time comes from the injected `clock`.

    instances = Instances(spec, runtime, backend, on_ready=..., on_lost=..., on_start_failed=...)
    instances.scale_to(2)                                 # launches or drains to two
    await instances.shutdown()                            # stops them all and waits
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from ..config import OpenModelConfig, RuntimeConfig
from ..protocol.errors import UnimodelError
from .backends import Backend, Instance
from .health import HealthChecker, watch_health
from .lease import RETRY_AFTER_S, InstanceStartFailed, InstanceState, Replica
from .source import ModelSource

__all__ = ["STOP_GRACE_S", "Instances"]

log = logging.getLogger("unimodel.runtime")

Clock = Callable[[], float]

HEALTH_POLL_S = 0.02  # a starting instance that does not announce its readiness is found ready this late
HEALTH_TIMEOUT_S = 2.0
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
BACKOFF_FIRST_S = 1.0  # after a failed start, no new start for this long (doubling per failure in a row)
BACKOFF_MAX_S = 30.0
LOG_TAIL_LINES = 30


class Instances:
    """One model's instances (starting, ready, draining, oldest first) and what happens to them."""

    def __init__(
        self,
        spec: OpenModelConfig,
        runtime: RuntimeConfig,
        backend: Backend,
        *,
        on_ready: Callable[[], None],
        on_lost: Callable[[], None],
        on_start_failed: Callable[[], None],
        clock: Clock = time.monotonic,
        http: httpx.AsyncClient | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        source: ModelSource | None = None,
    ) -> None:
        self.spec = spec  # replaced by the source's once the files are fetched (the same model, with its path)
        self.source = source
        self.clock = clock
        self._runtime = runtime
        self._backend = backend
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._on_start_failed = on_start_failed
        self._http = http
        self._own_http = http is None
        self._stop_grace_s = stop_grace_s
        self._replicas: list[Replica] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seq = 0
        self._slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.id)
        self._closed = False
        self._failures_in_a_row = 0
        self._backoff_until: float | None = None

        self.last_failure: str | None = None  # why the latest start failed (None once an instance is ready)
        self._fetch_refused: UnimodelError | None = None  # the Hub refused the files (4xx): retrying won't help
        self.instances_started = 0
        self.start_failures = 0
        self.crashes = 0  # ready or draining instances whose process died unasked
        self.unresponsive = 0  # ready or draining instances killed for failing their health checks
        self.oom_kills = 0  # of the crashes, those the kernel killed for running out of memory
        self.last_start_s: float | None = None  # launch to ready, the most recent start

    # ── what there is ───────────────────────────────────────────────────────

    @property
    def live(self) -> list[Replica]:
        """The live instances (starting, ready, draining), oldest first; the list itself, not a copy."""
        return self._replicas

    def count(self, *states: InstanceState) -> int:
        return sum(1 for r in self._replicas if r.state in states)

    def in_backoff(self) -> bool:
        return self._backoff_until is not None and self.clock() < self._backoff_until

    def start_failed_error(self) -> UnimodelError:
        """The 503 for requests that wait on a model whose instance failed to start, with the back-off left; or,
        when its files cannot be had for a reason retrying will not change (the Hub said 4xx: no such revision or
        file, gated, too large …), that error's status and code, without a Retry-After."""
        refused = self._fetch_refused
        if refused is not None:
            return UnimodelError(
                f"Model '{self.spec.id}' is unavailable: its files could not be pulled: {refused.message}",
                status=refused.status,
                code=refused.code,
                param=refused.param,
            )
        wait = RETRY_AFTER_S
        if self._backoff_until is not None:
            wait = max(RETRY_AFTER_S, math.ceil(self._backoff_until - self.clock()))
        return InstanceStartFailed(
            f"Model '{self.spec.id}' is unavailable: {self.last_failure or 'its instance failed to start'}",
            retry_after=wait,
        )

    # ── launching ───────────────────────────────────────────────────────────

    def launch(self) -> Replica:
        """Start one instance now (its files first, when the model has a source); it is `starting` at once."""
        self._seq += 1
        replica = Replica(id=f"{self._slug}-{self._seq}", created_at=self.clock())
        self._replicas.append(replica)
        self.instances_started += 1
        self._spawn(self._start(replica), f"start:{replica.id}")
        return replica

    async def _start(self, replica: Replica) -> None:
        if self.source is not None and not await self._fetch(replica):
            return
        try:
            instance = await self._backend.start(self.spec, replica.id)
        except Exception as exc:  # the backend could not even launch it (no such program, no port …)
            log.exception("model %s: instance %s could not be launched", self.spec.id, replica.id)
            self._start_failed(replica, f"instance could not be launched: {exc}")
            return
        replica.instance = instance
        self._spawn(self._watch_exit(replica, instance), f"exit:{replica.id}")
        if replica.state is not InstanceState.STARTING:  # scaled away while it was launching
            await self._backend.stop(instance, self._stop_grace_s)
            return
        url = instance.address + instance.health_path
        deadline = replica.created_at + self.spec.start_timeout_s
        announced = False
        while replica.state is InstanceState.STARTING and not instance.exited.is_set():
            if self.clock() >= deadline:
                self._start_timed_out(replica)
                return
            if await self._healthy(url):
                if replica.state is InstanceState.STARTING and not instance.exited.is_set():
                    self._became_ready(replica)
                return
            # the next poll, or sooner: the process exits, or it announces it is ready (then /health at once)
            events = [instance.exited] if announced else [instance.exited, instance.announced]
            if not any(event.is_set() for event in events):
                waits = [asyncio.ensure_future(event.wait()) for event in events]
                try:
                    await asyncio.wait(waits, timeout=HEALTH_POLL_S, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
            announced = announced or instance.announced.is_set()

    async def _fetch(self, replica: Replica) -> bool:
        """Have the model's files on disk (a pull the first time); False when they cannot be had or the
        instance was scaled away meanwhile. The start timeout counts from here, not from the download."""
        assert self.source is not None
        replica.fetching = True
        try:
            self.spec = await self.source.fetch()
        except UnimodelError as exc:
            replica.fetching = False
            self._fetch_refused = exc if 400 <= exc.status < 500 else None
            self._start_failed(replica, f"its files could not be pulled: {exc.message}")
            return False
        self._fetch_refused = None
        replica.fetching = False
        replica.created_at = self.clock()
        return replica.state is InstanceState.STARTING

    def prefetch(self) -> None:
        """Start fetching the model's files now (a PUT on a model not pulled yet), not at its first instance."""
        if self.source is not None and self.source.progress() is None and not self._closed:
            self._spawn(self._prefetch(), "prefetch")

    async def _prefetch(self) -> None:
        assert self.source is not None
        try:
            self.spec = await self.source.fetch()
        except UnimodelError as exc:
            self.last_failure = f"its files could not be pulled: {exc.message}"
            log.warning("model %s: %s", self.spec.id, self.last_failure)

    def download(self) -> dict[str, Any] | None:
        """The pull under way (the cluster status's `download`), or None."""
        return self.source.progress() if self.source is not None else None

    def placements(self) -> list[dict[str, Any]]:
        """Where each launched instance runs, when its backend says more than its address (the cluster status's
        `placements`: a Ray node, the resources it holds there)."""
        found = []
        for replica in self._replicas:
            where = replica.instance.placement() if replica.instance is not None else None
            if where is not None:
                found.append({"instance": replica.id, "state": replica.state.value, **where})
        return found

    def pending(self) -> str | None:
        """Why an instance of this model waits for a place to run, while one does (the backend's word)."""
        return self._backend.pending(self.spec.id)

    def _checker(self) -> HealthChecker:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        return HealthChecker.from_runtime(self._http, self._runtime)

    async def _healthy(self, url: str) -> bool:
        return await self._checker().probe(url, HEALTH_TIMEOUT_S) is None

    def _became_ready(self, replica: Replica) -> None:
        replica.state = InstanceState.READY
        replica.ready_at = self.clock()
        self.last_start_s = replica.ready_at - replica.created_at
        self._failures_in_a_row = 0
        self._backoff_until = None
        self.last_failure = None
        log.info("model %s: instance %s ready after %.2f s", self.spec.id, replica.id, self.last_start_s)
        assert replica.instance is not None
        checked = (InstanceState.READY, InstanceState.DRAINING)
        self._spawn(
            watch_health(
                replica.instance,
                self._checker(),
                lambda: replica.state in checked and not self._closed,
                lambda why: self._unresponsive(replica, why),
            ),
            f"health:{replica.id}",
        )
        self._on_ready()

    # ── failing ─────────────────────────────────────────────────────────────

    def _unresponsive(self, replica: Replica, why: str) -> None:
        """A ready or draining instance stopped answering: out of the router now, killed (its requests fail as
        for a crash), and replaced as after a crash."""
        if replica.state not in (InstanceState.READY, InstanceState.DRAINING) or replica.instance is None:
            return
        was = replica.state
        replica.state = InstanceState.FAILED
        replica.failure = "stopped answering its health checks and was replaced"
        self._forget(replica)
        self.unresponsive += 1
        log.error(
            "model %s: %s instance %s (%s) is unresponsive (%s); killing it with %d requests in flight\n"
            "--- last lines of its log ---\n%s",
            self.spec.id,
            was.value,
            replica.id,
            replica.instance.describe(),
            why,
            replica.in_flight,
            self._tail(replica) or "(empty)",
        )
        self._spawn(self._backend.kill(replica.instance), f"kill:{replica.id}")
        self._on_lost()

    def _start_timed_out(self, replica: Replica) -> None:
        self._start_failed(
            replica,
            f"instance did not become ready within {self.spec.start_timeout_s:g} s (start_timeout_s)"
            + _last_words(self._tail(replica)),
        )

    def _start_failed(self, replica: Replica, reason: str) -> None:
        if replica.state is not InstanceState.STARTING:
            return
        replica.state = InstanceState.FAILED
        self._forget(replica)
        self.start_failures += 1
        self._failures_in_a_row += 1
        self.last_failure = reason
        backoff = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self._failures_in_a_row - 1))
        self._backoff_until = self.clock() + backoff
        log.error(
            "model %s: %s (next start in %.0f s at the earliest)\n--- last lines of instance %s's log ---\n%s",
            self.spec.id,
            reason,
            backoff,
            replica.id,
            self._tail(replica) or "(empty)",
        )
        if replica.instance is not None and not replica.instance.exited.is_set():
            self._spawn(self._backend.stop(replica.instance, self._stop_grace_s), f"stop:{replica.id}")
        self._on_start_failed()

    async def _watch_exit(self, replica: Replica, instance: Instance) -> None:
        await instance.exited.wait()
        code = instance.returncode
        if replica.state is InstanceState.STARTING:
            self._start_failed(
                replica, "instance failed to start: " + (_last_line(self._tail(replica)) or f"exit code {code}")
            )
        elif replica.state in (InstanceState.READY, InstanceState.DRAINING):
            was = replica.state
            replica.state = InstanceState.FAILED
            self._forget(replica)
            self.crashes += 1
            if instance.oom_killed:
                self.oom_kills += 1
            if instance.exit_reason is not None and replica.failure is None:  # the 502 of its requests says why
                how = f"was {instance.exit_reason}" if instance.oom_killed else f"stopped: {instance.exit_reason}"
                replica.failure = f"{how} (exit code {code})"
            log.error(
                "model %s: %s instance %s exited unexpectedly (exit code %s%s) with %d requests in flight\n"
                "--- last lines of its log ---\n%s",
                self.spec.id,
                was.value,
                replica.id,
                code,
                f": {instance.exit_reason}" if instance.exit_reason else "",
                replica.in_flight,
                self._tail(replica) or "(empty)",
            )
            self._on_lost()

    def _tail(self, replica: Replica) -> str:
        if replica.instance is None:
            return ""
        return self._backend.log_tail(replica.instance, LOG_TAIL_LINES)

    def _forget(self, replica: Replica) -> None:
        with contextlib.suppress(ValueError):
            self._replicas.remove(replica)

    # ── deadlines, scaling, stopping ────────────────────────────────────────

    def expire(self) -> None:
        """Fail the instances still starting after `start_timeout_s` (the download not counted); stop the ones
        still draining after `drain_timeout_s`."""
        now = self.clock()
        for replica in list(self._replicas):
            if (
                replica.state is InstanceState.STARTING
                and not replica.fetching
                and now - replica.created_at >= self.spec.start_timeout_s
            ):
                self._start_timed_out(replica)
            elif (
                replica.state is InstanceState.DRAINING
                and replica.draining_since is not None
                and now - replica.draining_since >= self._runtime.drain_timeout_s
            ):
                log.warning(
                    "model %s: instance %s still has %d requests after drain_timeout_s; stopping it",
                    self.spec.id,
                    replica.id,
                    replica.in_flight,
                )
                self._stop(replica)

    def scale_to(self, desired: int) -> None:
        """Launch or drain until `desired` instances are starting or ready (none launched during a back-off)."""
        active = [r for r in self._replicas if r.state in (InstanceState.STARTING, InstanceState.READY)]
        if len(active) < desired:
            if self.in_backoff():
                return
            for _ in range(desired - len(active)):
                self.launch()
        elif len(active) > desired:
            # Starting ones first (they serve no one yet), then the idlest, newest first.
            active.sort(key=lambda r: (r.state is InstanceState.READY, r.in_flight, -r.created_at))
            for replica in active[: len(active) - desired]:
                self._drain(replica)

    def request_done(self, replica: Replica) -> None:
        """One of `replica`'s requests is done (its `in_flight` already lowered): a draining instance with none
        left is stopped."""
        if replica.state is InstanceState.DRAINING and replica.in_flight == 0:
            self._stop(replica)

    def _drain(self, replica: Replica) -> None:
        """Take the instance out of the router; stop it once its requests are done."""
        if replica.state is InstanceState.STARTING:
            self._stop(replica)  # _start() stops it if it is still being launched
        elif replica.state is InstanceState.READY:
            replica.state = InstanceState.DRAINING
            replica.draining_since = self.clock()
            log.info("model %s: draining instance %s (%d in flight)", self.spec.id, replica.id, replica.in_flight)
            if replica.in_flight == 0:
                self._stop(replica)

    def _stop(self, replica: Replica) -> None:
        replica.state = InstanceState.STOPPED
        self._forget(replica)
        if replica.instance is not None:
            log.info("model %s: stopping instance %s", self.spec.id, replica.id)
            self._spawn(self._backend.stop(replica.instance, self._stop_grace_s), f"stop:{replica.id}")

    async def shutdown(self) -> None:
        """Stop every instance and wait for them (and every task of this unit) to end."""
        self._closed = True
        for replica in list(self._replicas):
            self._stop(replica)
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("model %s: task %s failed", self.spec.id, task.get_name(), exc_info=task.exception())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _last_words(tail: str) -> str:
    line = _last_line(tail)
    return f"; its last output: {line}" if line else ""
