"""The controller: per model, the instances, a bounded FIFO queue of waiting requests, and the autoscaling tick.

    controller = Controller(settings, LocalBackend(settings.runtime))
    await controller.start()                              # the tick loop
    deployment = controller.get("HuggingFaceTB/SmolLM2-135M-Instruct")
    async with deployment.lease() as lease:               # waits for a slot; may start an instance
        ...POST lease.address + "/v1/chat/completions"...
    await controller.aclose()                             # stops every instance

An instance goes starting → ready (its `/health` answers 200) → draining → stopped, or → failed when its
process exits, it is not ready within `start_timeout_s`, or, ready or draining, it fails `health_failures`
health checks in a row (health.py): then it leaves the router at once and is killed, its requests fail as
for a crash, and the scaling path replaces it. A ready instance takes at most
`instance_concurrency` requests; the router picks the least loaded. Requests that find no free slot wait in
arrival order; the first of them starts an instance at once when the model has none ready or starting.
Scale-down drains: the instance leaves the router first and is stopped when its last request is done (or after
`runtime.drain_timeout_s`). Time comes from the injected `clock`, so tests drive `tick()` by hand.

Errors a caller can see are drawn in lease.py.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import httpx

from ..config import OpenModelConfig, RuntimeConfig, Settings
from ..protocol.errors import InvalidRequest, UnimodelError
from .backends import Backend, Instance
from .health import HealthChecker, watch_health
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
from .policy import Decision, Observation, PolicyConfig, PolicyState, decide
from .router import LeastLoadedRouter
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

Policy = Callable[[PolicyConfig, Observation, PolicyState], Decision]
Clock = Callable[[], float]

HEALTH_POLL_S = 0.02  # a starting instance that does not announce its readiness is found ready this late
HEALTH_TIMEOUT_S = 2.0
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
RETRY_AFTER_S = 1.0  # what a full queue or a queue timeout tells the client to wait
BACKOFF_FIRST_S = 1.0  # after a failed start, no new start for this long (doubling per failure in a row)
BACKOFF_MAX_S = 30.0
LOG_TAIL_LINES = 30


class Deployment:
    """One open model: its instances, its queue, its scaling."""

    def __init__(
        self,
        spec: OpenModelConfig,
        runtime: RuntimeConfig,
        backend: Backend,
        *,
        policy: Policy = decide,
        clock: Clock = time.monotonic,
        http: httpx.AsyncClient | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        source: ModelSource | None = None,
    ) -> None:
        self.spec = spec
        self.source = source  # a model named by its Hub id: its files are fetched before an instance starts
        self.clock = clock
        self._runtime = runtime
        self._backend = backend
        self._policy = policy
        self._http = http
        self._own_http = http is None
        self._stop_grace_s = stop_grace_s
        self._router = LeastLoadedRouter()
        self._replicas: list[Replica] = []
        self._waiters: deque[asyncio.Future[Replica]] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seq = 0
        self._slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.id)

        self._min = spec.min_instances
        self._max = spec.max_instances
        self._idle_timeout_s = spec.idle_timeout_s
        self._desired = 0
        self._policy_state = PolicyState()
        self._on = True
        self._closed = False
        self._last_request_at: float | None = None
        self._last_failure: str | None = None
        self._failures_in_a_row = 0
        self._backoff_until: float | None = None

        self.created = self.modified = _now_iso()
        self.inferences = 0
        self.instance_seconds = 0.0
        self.last_inference: str | None = None
        self.cold_starts = 0  # instances started because a request found no capacity at all
        self.instances_started = 0
        self.start_failures = 0
        self.crashes = 0  # ready or draining instances whose process died unasked
        self.unresponsive = 0  # ready or draining instances killed for failing their health checks
        self.queue_full = 0
        self.queue_timeouts = 0
        self.last_start_s: float | None = None  # launch to ready, the most recent start

    # ── requests ────────────────────────────────────────────────────────────

    @contextlib.asynccontextmanager
    async def lease(self, *, retry: bool = False) -> AsyncIterator[Lease]:
        """A slot on a ready instance for the duration of the block (see `acquire`)."""
        lease = await self.acquire(retry=retry)
        try:
            yield lease
        finally:
            lease.release()

    async def acquire(self, *, retry: bool = False) -> Lease:
        """Wait for a slot in arrival order and return it; the caller must `release()` it.

        `retry=True` (a request whose instance died before answering) goes to the head of the queue and is not
        refused for a full queue. Raises `QueueFull`, `QueueTimeout`, `InstanceStartFailed` or `ModelOff`."""
        if self._closed or not self._on:
            raise self._off_error()
        arrived = self.clock()
        self._last_request_at = arrived
        if not self._waiters:
            replica = self._router.pick(self._replicas, self.spec.instance_concurrency)
            if replica is not None:
                replica.in_flight += 1
                return Lease(self, replica, arrived, 0.0)
        if len(self._waiters) >= self.spec.queue_size and not retry:
            self.queue_full += 1
            raise QueueFull(
                f"Model '{self.spec.id}' has {len(self._waiters)} requests waiting already (queue_size); retry later.",
                retry_after=RETRY_AFTER_S,
            )
        waiter: asyncio.Future[Replica] = asyncio.get_running_loop().create_future()
        if retry:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        self._ensure_capacity()
        try:
            await asyncio.wait({waiter}, timeout=self.spec.queue_timeout_s)
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        if not waiter.done():
            self._abandon(waiter)
            self.queue_timeouts += 1
            raise QueueTimeout(
                f"No instance of model '{self.spec.id}' could take the request within {self.spec.queue_timeout_s:g} s "
                f"(queue_timeout_s); {self._situation()}",
                retry_after=RETRY_AFTER_S,
            )
        replica = waiter.result()  # raises the start failure handed to the waiters
        now = self.clock()
        return Lease(self, replica, now, max(0.0, now - arrived))

    def _abandon(self, waiter: asyncio.Future[Replica]) -> None:
        """A waiter gives up (timeout, cancelled client): drop it, or hand back the slot it was just given."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self._unclaim(waiter.result())
            return
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _dispatch(self) -> None:
        """Give free slots to waiting requests, oldest first."""
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            replica = self._router.pick(self._replicas, self.spec.instance_concurrency)
            if replica is None:
                return
            self._waiters.popleft()
            replica.in_flight += 1
            waiter.set_result(replica)

    def _release(self, lease: Lease) -> None:
        replica = lease._replica
        self.instance_seconds += lease.elapsed_s
        self.inferences += 1
        self.last_inference = _now_iso()
        replica.served += 1
        self._unclaim(replica)

    def _unclaim(self, replica: Replica) -> None:
        replica.in_flight -= 1
        if replica.state is InstanceState.DRAINING and replica.in_flight == 0:
            self._stop(replica)
        self._dispatch()

    def _fail_waiters(self, make_error: Callable[[], Exception]) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(make_error())

    # ── instances ───────────────────────────────────────────────────────────

    def _count(self, *states: InstanceState) -> int:
        return sum(1 for r in self._replicas if r.state in states)

    def _ensure_capacity(self) -> None:
        """A request waits: when nothing is ready or starting, start an instance now (not on the next tick)."""
        if self._count(InstanceState.READY, InstanceState.STARTING):
            return
        if self._in_backoff():
            self._fail_waiters(self._start_failed_error)
            return
        self.cold_starts += 1
        self._desired = max(self._desired, 1)
        self._launch()

    def _in_backoff(self) -> bool:
        return self._backoff_until is not None and self.clock() < self._backoff_until

    def _start_failed_error(self) -> InstanceStartFailed:
        wait = RETRY_AFTER_S
        if self._backoff_until is not None:
            wait = max(RETRY_AFTER_S, math.ceil(self._backoff_until - self.clock()))
        return InstanceStartFailed(
            f"Model '{self.spec.id}' is unavailable: {self._last_failure or 'its instance failed to start'}",
            retry_after=wait,
        )

    def _launch(self) -> Replica:
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
        url = instance.address + "/health"
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
            self._start_failed(replica, f"its files could not be pulled: {exc.message}")
            return False
        replica.fetching = False
        replica.created_at = self.clock()
        return replica.state is InstanceState.STARTING

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
        self._last_failure = None
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
        self._dispatch()

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
            "model %s: %s instance %s (pid %s) is unresponsive (%s); killing it with %d requests in flight\n"
            "--- last lines of its log ---\n%s",
            self.spec.id,
            was.value,
            replica.id,
            replica.instance.pid,
            why,
            replica.in_flight,
            self._tail(replica) or "(empty)",
        )
        self._spawn(self._backend.kill(replica.instance), f"kill:{replica.id}")
        if self._waiters:
            self._ensure_capacity()

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
        self._last_failure = reason
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
        if not self._count(InstanceState.READY, InstanceState.STARTING):
            self._fail_waiters(self._start_failed_error)

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
            log.error(
                "model %s: %s instance %s exited unexpectedly (exit code %s) with %d requests in flight\n"
                "--- last lines of its log ---\n%s",
                self.spec.id,
                was.value,
                replica.id,
                code,
                replica.in_flight,
                self._tail(replica) or "(empty)",
            )
            if self._waiters:
                self._ensure_capacity()

    def _tail(self, replica: Replica) -> str:
        if replica.instance is None:
            return ""
        return self._backend.log_tail(replica.instance, LOG_TAIL_LINES)

    def _forget(self, replica: Replica) -> None:
        with contextlib.suppress(ValueError):
            self._replicas.remove(replica)

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

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("model %s: task %s failed", self.spec.id, task.get_name(), exc_info=task.exception())

    # ── scaling ─────────────────────────────────────────────────────────────

    def policy_config(self) -> PolicyConfig:
        rt = self._runtime
        return PolicyConfig(
            min_instances=self._min,
            max_instances=self._max,
            target_concurrency=self.spec.instance_concurrency * rt.target_utilization,
            idle_timeout_s=self._idle_timeout_s,
            stable_window_s=rt.stable_window_s,
            panic_window_s=rt.panic_window_s,
            panic_threshold=rt.panic_threshold,
            scale_down_delay_s=rt.scale_down_delay_s,
        )

    def observe(self) -> Observation:
        return Observation(
            now=self.clock(),
            concurrency=float(self.in_flight + self.queue_depth),
            ready=self._count(InstanceState.READY),
            starting=self._count(InstanceState.STARTING),
            last_request_at=self._last_request_at,
            start_s=self.last_start_s,  # the policy's time scales follow how long an instance takes to start
        )

    async def tick(self) -> None:
        """One autoscaling step: deadlines, then the policy's decision, then start or drain instances."""
        if self._closed:
            return
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
        if not self._on:
            self._scale_to(0)
            return
        try:
            decision = self._policy(self.policy_config(), self.observe(), self._policy_state)
        except Exception:
            log.exception("model %s: the autoscaling policy failed; keeping %d instances", self.spec.id, self._desired)
            return
        self._policy_state = decision.state
        desired = min(max(decision.desired, self._min), self._max)
        if self._waiters and desired == 0:
            desired = 1  # never leave waiting requests without an instance
        self._scale_to(desired)

    def _scale_to(self, desired: int) -> None:
        self._desired = desired
        active = [r for r in self._replicas if r.state in (InstanceState.STARTING, InstanceState.READY)]
        if len(active) < desired:
            if self._in_backoff():
                return
            for _ in range(min(desired, self._max) - len(active)):
                self._launch()
        elif len(active) > desired:
            # Starting ones first (they serve no one yet), then the idlest, newest first.
            active.sort(key=lambda r: (r.state is InstanceState.READY, r.in_flight, -r.created_at))
            for replica in active[: len(active) - desired]:
                self._drain(replica)

    # ── the cluster API ─────────────────────────────────────────────────────

    def configure(
        self,
        *,
        min: int | None = None,
        desired: int | None = None,
        max: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        """Change the capacity bounds (PUT/PATCH `capacity` and `timeout`); `desired` scales there now and the
        policy carries on from it. Raises `InvalidRequest` naming the field that is wrong."""
        lo = self._min if min is None else min
        hi = self._max if max is None else max
        if lo < 0:
            raise InvalidRequest("capacity.min must be 0 or more", param="capacity.min")
        if hi < 1:
            raise InvalidRequest("capacity.max must be 1 or more", param="capacity.max")
        if lo > hi:
            raise InvalidRequest(f"capacity.min ({lo}) is greater than capacity.max ({hi})", param="capacity.min")
        if desired is not None and not lo <= desired <= hi:
            raise InvalidRequest(
                f"capacity.desired ({desired}) must be between min ({lo}) and max ({hi})", param="capacity.desired"
            )
        if idle_timeout_s is not None and idle_timeout_s < 0:
            raise InvalidRequest("timeout must be 0 or more", param="timeout")
        self._min, self._max = lo, hi
        if idle_timeout_s is not None:
            self._idle_timeout_s = idle_timeout_s
        self.modified = _now_iso()
        if desired is not None:
            self._policy_state = dataclasses.replace(self._policy_state, desired=desired)
            if self._on and not self._closed:
                self._scale_to(desired)
        elif self._on and not self._closed:
            self._scale_to(builtins.min(builtins.max(self._desired, lo), hi))

    def prefetch(self) -> None:
        """Start fetching the model's files now (a PUT on a model not pulled yet), not at its first instance."""
        if self.source is not None and self.source.progress() is None and not self._closed:
            self._spawn(self._prefetch(), "prefetch")

    async def _prefetch(self) -> None:
        assert self.source is not None
        try:
            self.spec = await self.source.fetch()
        except UnimodelError as exc:
            self._last_failure = f"its files could not be pulled: {exc.message}"
            log.warning("model %s: %s", self.spec.id, self._last_failure)

    def turn_off(self) -> None:
        """Refuse new requests (503 model_off), fail the waiting ones, drain every instance."""
        self._on = False
        self.modified = _now_iso()
        self._fail_waiters(self._off_error)
        self._scale_to(0)

    def turn_on(self) -> None:
        self._on = True
        self.modified = _now_iso()

    @property
    def is_on(self) -> bool:
        return self._on and not self._closed

    async def shutdown(self) -> None:
        """Refuse new requests, stop every instance, and wait for them to exit."""
        self._closed = True
        self._fail_waiters(self._off_error)
        for replica in list(self._replicas):
            self._stop(replica)
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _off_error(self) -> ModelOff:
        if self._closed:
            return ModelOff(f"Model '{self.spec.id}' is shutting down.", retry_after=RETRY_AFTER_S)
        return ModelOff(f"Model '{self.spec.id}' is turned off; turn it on (PATCH status \"on\") to use it.")

    def _situation(self) -> str:
        ready = self._count(InstanceState.READY)
        starting = self._count(InstanceState.STARTING)
        if ready:
            return f"all {ready} ready instances are busy (instance_concurrency {self.spec.instance_concurrency})"
        download = self.source.progress() if self.source is not None else None
        if download is not None:
            return f"its files are being pulled ({download['bytesDone']:,} of {download['bytesTotal']:,} bytes)"
        if starting:
            return f"{starting} instances are still starting"
        return self._last_failure or "no instance is running"

    # ── status and metrics ──────────────────────────────────────────────────

    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self._replicas)

    @property
    def queue_depth(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def instances_by_state(self) -> dict[str, int]:
        counts = {s.value: 0 for s in (InstanceState.STARTING, InstanceState.READY, InstanceState.DRAINING)}
        for replica in self._replicas:
            counts[replica.state.value] = counts.get(replica.state.value, 0) + 1
        return counts

    def replicas(self) -> list[Replica]:
        """The live instances (starting, ready, draining), oldest first."""
        return list(self._replicas)

    def status(self) -> dict[str, Any]:
        """The cluster status of PROTOCOL.md (`GET /models/v2/{modelId}`)."""
        by_state = self.instances_by_state()
        download = self.source.progress() if self.source is not None else None
        if not self.is_on:
            status = "off"
        elif by_state["ready"]:
            status = "running"
        elif download is not None:
            status = "downloading"
        elif by_state["starting"]:
            status = "starting"
        elif self._last_failure is not None:
            status = "failed"
        else:
            status = "idle"
        return {
            "modelId": self.spec.id,
            "status": status,
            "created": self.created,
            "modified": self.modified,
            "timeout": self._idle_timeout_s / 60,
            "capacity": {"min": self._min, "desired": self._desired, "max": self._max},
            "instances": len(self._replicas),
            "inferences": self.inferences,
            "lastInference": self.last_inference,
            "instanceSeconds": round(self.instance_seconds, 3),
            "instancesByState": by_state,
            **({"download": download} if download is not None else {}),
            **({"error": self._last_failure} if status == "failed" else {}),
        }

    def metrics(self) -> dict[str, Any]:
        return {
            "instances": self.instances_by_state(),
            "queue_depth": self.queue_depth,
            "in_flight": self.in_flight,
            "cold_starts": self.cold_starts,
            "instances_started": self.instances_started,
            "start_failures": self.start_failures,
            "crashes": self.crashes,
            "unresponsive": self.unresponsive,
            "queue_full": self.queue_full,
            "queue_timeouts": self.queue_timeouts,
            "inferences": self.inferences,
            "instance_seconds": self.instance_seconds,
            "last_start_s": self.last_start_s,
            **(self.source.metrics() if self.source is not None else {}),
        }


class Controller:
    """Every open model's deployment, and the tick loop that scales them."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        *,
        policy: Policy = decide,
        clock: Clock = time.monotonic,
        http: httpx.AsyncClient | None = None,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.runtime = settings.runtime
        self.backend = backend
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
            self.backend,
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
            try:
                await self.backend.stop_leftovers()
            except Exception:  # a start-up chore: never a reason not to serve
                log.exception("stopping instances left by a previous run failed")
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

    def statuses(self) -> list[dict[str, Any]]:
        """Every model's cluster status (`GET /models/v2/list/clusters`)."""
        return [d.status() for d in self.deployments.values()]

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
        await self.backend.aclose()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _last_words(tail: str) -> str:
    line = _last_line(tail)
    return f"; its last output: {line}" if line else ""
