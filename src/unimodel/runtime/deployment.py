"""One open model's deployment: a bounded FIFO queue of waiting requests, their leases, and the autoscaling tick.

    deployment = controller.get("HuggingFaceTB/SmolLM2-135M-Instruct")      # made by the Controller
    async with deployment.lease() as lease:               # waits for a slot; may start an instance
        ...POST lease.address + "/v1/chat/completions"...

A ready instance takes at most `instance_concurrency` requests; the router (router.py) picks the least loaded.
Requests that find no free slot wait in arrival order; the first of them starts an instance at once when the
model has none ready or starting (a cold start). On each `tick()` the policy (policy.py) says how many
instances the model should have. The instances themselves — launch, health, exits, back-off, drain — are
instances.py's. Time comes from the injected `clock`, so tests drive `tick()` by hand.

Errors a caller can see are drawn in lease.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ..config import OpenModelConfig, RuntimeConfig
from .backends import Backend
from .instances import STOP_GRACE_S, Instances
from .lease import RETRY_AFTER_S, InstanceState, Lease, ModelOff, QueueFull, QueueTimeout, Replica
from .policy import Decision, Observation, PolicyConfig, PolicyState, bounded, decide
from .router import LeastLoadedRouter
from .samples import Samples
from .source import ModelSource

__all__ = ["Clock", "Deployment", "Policy"]

log = logging.getLogger("unimodel.runtime")
DECISIONS_KEPT = 20
HISTORY_SAMPLES = 600  # ten minutes at the default tick of a second
HISTORY_FIELDS = ("time", "ready", "starting", "draining", "inFlight", "queueDepth")
LATENCY_WINDOW_S = 300.0  # the cluster status's percentiles cover the last five minutes

Policy = Callable[[PolicyConfig, Observation, PolicyState], Decision]
Clock = Callable[[], float]


class Deployment:
    """One open model: its queue, its leases and its scaling; its instances are `self.instances`."""

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
        """`source` fetches a model named by its Hub id before its first instance (source.py); `http` checks the
        instances' health (a client of its own when None)."""
        self.clock = clock
        self.instances = Instances(
            spec,
            runtime,
            backend,
            on_ready=self._dispatch,
            on_lost=self._replace_lost,
            on_start_failed=self._start_failed,
            clock=clock,
            http=http,
            stop_grace_s=stop_grace_s,
            source=source,
        )
        self._runtime = runtime
        self._policy = policy
        self._router = LeastLoadedRouter()
        self._waiters: deque[asyncio.Future[Replica]] = deque()

        self._min = spec.min_instances
        self._max = spec.max_instances
        self._idle_timeout_s = spec.idle_timeout_s
        self._desired = 0
        self._policy_state = PolicyState()
        self._on = True
        self._closed = False
        # When the model last had work: a request arriving, waiting or in flight. Idle time counts from here,
        # so a request longer than the idle timeout does not leave the model idle the moment it ends.
        self._last_busy_at: float | None = None

        self.created = self.modified = _now_iso()
        self.inferences = 0
        self.instance_seconds = 0.0
        self.last_inference: str | None = None
        self.cold_starts = 0  # instances started because a request found no capacity at all
        self.decisions: deque[dict[str, Any]] = deque(maxlen=DECISIONS_KEPT)  # the latest scaling changes, why
        self.history: deque[tuple[float, int, int, int, int, int]] = deque(maxlen=HISTORY_SAMPLES)  # each tick
        self.waits = Samples()  # seconds each request waited for a slot
        self.services = Samples()  # seconds each request held its slot on an instance
        self.queue_full = 0
        self.queue_timeouts = 0

    @property
    def spec(self) -> OpenModelConfig:
        """The model's settings (a Hub model's with its local path once its files are here)."""
        return self.instances.spec

    @property
    def source(self) -> ModelSource | None:
        return self.instances.source

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
        self._last_busy_at = arrived
        if not self._waiters:
            replica = self._router.pick(self.instances.live, self.spec.instance_concurrency)
            if replica is not None:
                replica.in_flight += 1
                return self._lease(replica, arrived, 0.0)
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
        return self._lease(replica, now, max(0.0, now - arrived))

    def _lease(self, replica: Replica, granted_at: float, queued_s: float) -> Lease:
        self.waits.add(granted_at, queued_s)
        return Lease(self.spec.id, replica, granted_at, queued_s, clock=self.clock, on_release=self._release)

    def _abandon(self, waiter: asyncio.Future[Replica]) -> None:
        """A waiter gives up (timeout, cancelled client): drop it, or hand back the slot it was just given."""
        self._last_busy_at = self.clock()
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
            replica = self._router.pick(self.instances.live, self.spec.instance_concurrency)
            if replica is None:
                return
            self._waiters.popleft()
            replica.in_flight += 1
            waiter.set_result(replica)

    def _release(self, replica: Replica, elapsed_s: float) -> None:
        self._last_busy_at = self.clock()
        self.services.add(self._last_busy_at, elapsed_s)
        self.instance_seconds += elapsed_s
        self.inferences += 1
        self.last_inference = _now_iso()
        replica.served += 1
        self._unclaim(replica)

    def _unclaim(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self.instances.request_done(replica)
        self._dispatch()

    def _fail_waiters(self, make_error: Callable[[], Exception]) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(make_error())

    # ── capacity for waiting requests ───────────────────────────────────────

    def _ensure_capacity(self) -> None:
        """A request waits: when nothing is ready or starting, start an instance now (not on the next tick)."""
        if self.instances.count(InstanceState.READY, InstanceState.STARTING):
            return
        if self.instances.in_backoff():
            self._fail_waiters(self.instances.start_failed_error)
            return
        self.cold_starts += 1
        desired = bounded(self.policy_config(), self._desired, len(self._waiters))
        self._note_decision(desired, "cold start")
        self._desired = desired
        self.instances.launch()

    def _replace_lost(self) -> None:
        """A serving instance crashed or stopped answering: requests that wait for it need another."""
        if self._waiters:
            self._ensure_capacity()

    def _start_failed(self) -> None:
        """A start failed: the waiting requests fail with its reason unless another instance is coming."""
        if not self.instances.count(InstanceState.READY, InstanceState.STARTING):
            self._fail_waiters(self.instances.start_failed_error)

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
            start_cost=rt.start_cost,
        )

    def observe(self) -> Observation:
        now = self.clock()
        waiting = self.queue_depth
        concurrency = self.in_flight + waiting
        if concurrency:
            self._last_busy_at = now
        return Observation(
            now=now,
            concurrency=float(concurrency),
            ready=self.instances.count(InstanceState.READY),
            starting=self.instances.count(InstanceState.STARTING),
            last_request_at=self._last_busy_at,
            start_s=self.instances.last_start_s,  # the policy's time scales follow how long an instance takes to start
            waiting=waiting,
        )

    async def tick(self) -> None:
        """One autoscaling step: deadlines, then the policy's decision, then start or drain instances."""
        if self._closed:
            return
        self.instances.expire()
        self._sample()
        if not self._on:
            self._scale_to(0, "turned off")
            return
        try:
            decision = self._policy(self.policy_config(), self.observe(), self._policy_state)
        except Exception:
            log.exception("model %s: the autoscaling policy failed; keeping %d instances", self.spec.id, self._desired)
            return
        self._policy_state = decision.state
        desired = bounded(self.policy_config(), decision.desired, len(self._waiters))
        self._scale_to(desired, "panic" if decision.panic else "scale to zero" if desired == 0 else "load")

    def _scale_to(self, desired: int, reason: str) -> None:
        self._note_decision(desired, reason)
        self._desired = desired
        self.instances.scale_to(desired)

    def _sample(self) -> None:
        """One point of the cluster's recent history (the cluster status's `history`, a chart's first minutes)."""
        counts = self.instances_by_state()
        self.history.append(
            (
                round(time.time(), 1),
                counts["ready"],
                counts["starting"],
                counts["draining"],
                self.in_flight,
                self.queue_depth,
            )
        )

    def _note_decision(self, desired: int, reason: str) -> None:
        """Keep the latest changes of the desired instances and why (the cluster status's `decisions`): the
        policy's (`load`, `panic`, `scale to zero`), a request finding no instance (`cold start`), the cluster API's
        and turning the model off."""
        if desired != self._desired:
            self.decisions.append({"time": _now_iso(), "from": self._desired, "to": desired, "reason": reason})

    # ── capacity and on/off (the cluster API's PUT, PATCH, DELETE) ──────────

    @property
    def min_instances(self) -> int:
        return self._min

    @property
    def max_instances(self) -> int:
        return self._max

    @property
    def desired(self) -> int:
        """The instances the model is being scaled to (starting and ready), as last decided."""
        return self._desired

    @property
    def idle_timeout_s(self) -> float:
        return self._idle_timeout_s

    def set_capacity(
        self,
        *,
        min_instances: int | None = None,
        max_instances: int | None = None,
        desired: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        """Change the bounds the policy scales within and the idle timeout (None: unchanged); `desired` scales
        there now and the policy carries on from it. Raises `ValueError` unless 0 <= min <= desired <= max,
        1 <= max and 0 <= idle_timeout_s."""
        lo = self._min if min_instances is None else min_instances
        hi = self._max if max_instances is None else max_instances
        if not (0 <= lo <= hi and hi >= 1 and (desired is None or lo <= desired <= hi)):
            raise ValueError(f"capacity must satisfy 0 <= min ({lo}) <= desired ({desired}) <= max ({hi}), max >= 1")
        if idle_timeout_s is not None and idle_timeout_s < 0:
            raise ValueError(f"idle_timeout_s must be >= 0, not {idle_timeout_s}")
        self._min, self._max = lo, hi
        if idle_timeout_s is not None:
            self._idle_timeout_s = idle_timeout_s
        self.modified = _now_iso()
        if desired is not None:
            self._policy_state = dataclasses.replace(self._policy_state, desired=desired)
            if self._on and not self._closed:
                self._scale_to(desired, "cluster API")
        elif self._on and not self._closed:
            self._scale_to(bounded(self.policy_config(), self._desired), "cluster API")

    def prefetch(self) -> None:
        """Start fetching the model's files now (a PUT on a model not pulled yet), not at its first instance."""
        if not self._closed:
            self.instances.prefetch()

    def turn_off(self) -> None:
        """Refuse new requests (503 model_off), fail the waiting ones, drain every instance."""
        self._on = False
        self.modified = _now_iso()
        self._fail_waiters(self._off_error)
        self._scale_to(0, "turned off")

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
        await self.instances.shutdown()

    def _off_error(self) -> ModelOff:
        if self._closed:
            return ModelOff(f"Model '{self.spec.id}' is shutting down.", retry_after=RETRY_AFTER_S)
        return ModelOff(f"Model '{self.spec.id}' is turned off; turn it on (PATCH status \"on\") to use it.")

    def _situation(self) -> str:
        ready = self.instances.count(InstanceState.READY)
        starting = self.instances.count(InstanceState.STARTING)
        if ready:
            return f"all {ready} ready instances are busy (instance_concurrency {self.spec.instance_concurrency})"
        download = self.instances.download()
        if download is not None:
            return f"its files are being pulled ({download['bytesDone']:,} of {download['bytesTotal']:,} bytes)"
        if starting:
            return f"{starting} instances are still starting"
        return self.instances.last_failure or "no instance is running"

    # ── status and metrics ──────────────────────────────────────────────────

    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self.instances.live)

    @property
    def queue_depth(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def instances_by_state(self) -> dict[str, int]:
        counts = {s.value: 0 for s in (InstanceState.STARTING, InstanceState.READY, InstanceState.DRAINING)}
        for replica in self.instances.live:
            counts[replica.state.value] = counts.get(replica.state.value, 0) + 1
        return counts

    def replicas(self) -> list[Replica]:
        """The live instances (starting, ready, draining), oldest first."""
        return list(self.instances.live)

    @property
    def last_failure(self) -> str | None:
        """Why the latest instance start (or pull) failed; None once an instance is ready."""
        return self.instances.last_failure

    def download(self) -> dict[str, Any] | None:
        """The pull of the model's files under way (`bytesDone`, `bytesTotal` …), or None."""
        return self.instances.download()

    def latency(self, window_s: float = LATENCY_WINDOW_S) -> dict[str, Any]:
        """Percentiles of the last `window_s` of requests: the wait for a slot and the time on an instance."""
        now = self.clock()
        waits, services = self.waits.recent(now, window_s), self.services.recent(now, window_s)

        def shown(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "windowS": window_s,
            "requests": len(services),
            "serviceP50S": shown(Samples.percentile(services, 50)),
            "serviceP99S": shown(Samples.percentile(services, 99)),
            "waitP50S": shown(Samples.percentile(waits, 50)),
            "waitP99S": shown(Samples.percentile(waits, 99)),
        }

    def metrics(self) -> dict[str, Any]:
        return {
            "instances": self.instances_by_state(),
            "queue_depth": self.queue_depth,
            "in_flight": self.in_flight,
            "cold_starts": self.cold_starts,
            "instances_started": self.instances.instances_started,
            "start_failures": self.instances.start_failures,
            "crashes": self.instances.crashes,
            "unresponsive": self.instances.unresponsive,
            "oom_kills": self.instances.oom_kills,
            "queue_full": self.queue_full,
            "queue_timeouts": self.queue_timeouts,
            "inferences": self.inferences,
            "instance_seconds": self.instance_seconds,
            "last_start_s": self.instances.last_start_s,
            **(self.source.metrics() if self.source is not None else {}),
        }


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
