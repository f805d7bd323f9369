"""A discrete-event model of one model served by autoscaled instances, on a simulated clock.

The same for every autoscaler:

- Requests arrive per the trace and wait in one FIFO queue. A request's service time comes from its tokens
  (:func:`traces.service_seconds`) and does not depend on the instance's load.
- An instance serves at most ``instance_concurrency`` requests at once (a hard limit: Knative's
  containerConcurrency, Ray's max_ongoing_requests, unimodel's instance_concurrency). The head of the queue
  goes to the ready instance with the fewest requests in flight (then the fewest served, then the oldest).
- An instance is launched (``starting``), ready ``cold_start_s`` later, and serves until it is scaled away. A
  start is charged twice: its instance counts from launch (the slot it holds while it loads, in
  instance-seconds), and every second it spends starting costs ``start_cost`` instance-seconds more (the CPU
  and I/O that loading weights burns, which an idle instance does not: a llama.cpp start is CPU-bound for its
  whole duration, bench/cold_start), ``start_cost × cold_start_s`` for a start that completes, less for one
  stopped while starting. ``Result.cost`` adds the two.
- Scaling to ``desired`` (:meth:`Simulation.scale_to`) counts starting and ready instances. Up: launch the
  missing ones. Down: stop starting ones first (newest first), then take the ready ones with the fewest requests
  in flight (newest first) out of the router; they drain, stopping when their last request ends. A draining
  instance is never taken back into service (neither Kubernetes, Ray nor unimodel's controller does that).
- An autoscaler (:class:`Autoscaler`) keeps its own timers (its decision tick, its metric collection) through
  :meth:`Simulation.at`, sees arrivals through its ``on_arrival`` hook (the activator's poke, Ray's push at zero,
  unimodel's eager start), and acts only through ``scale_to`` / ``launch``.

Events at the same instant run in this order: completions, instances becoming ready, arrivals, then timers, so a
timer sees everything that happened at its time. The run ends when the last request completes; instance-seconds
are counted from launch to stop (or to that end).

Flapping is counted as the starts that follow a give-back (an instance stopped or drained by a scale-down)
within the break-even time ``(1 + start_cost) × cold_start_s``: keeping that instance idle until then would
have cost less than the new start, and the requests that asked for it would not have waited for one.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from traces import Request, service_seconds

__all__ = ["Autoscaler", "Instance", "Result", "Setup", "Simulation", "percentile", "simulate"]

_DONE, _READY, _ARRIVAL, _TIMER = range(4)


@dataclass(frozen=True, slots=True)
class Setup:
    """What every autoscaler gets alike."""

    instance_concurrency: int = 5
    min_instances: int = 0
    max_instances: int = 20
    cold_start_s: float = 5.0
    start_cost: float = 1.0  # what a second of starting burns besides the slot it holds, in instance-seconds
    decode_s: float = 0.02  # service seconds per generated token
    prefill_s: float = 0.0002  # service seconds per context token


@dataclass(slots=True)
class Instance:
    id: int
    launched_at: float
    ready_at: float
    state: str = "starting"  # starting → ready → draining → stopped (or starting → stopped)
    in_flight: int = 0
    served: int = 0
    stopped_at: float | None = None
    drain_at: float | None = None  # when it left the router
    given_back_at: float | None = None  # when a scale-down took it (stopped at once, or drained)


class Autoscaler(Protocol):
    name: str

    def start(self, sim: Simulation) -> None:
        """Called once at time 0: schedule the first tick and metric collection."""

    def on_arrival(self, sim: Simulation, waiting: bool) -> None:
        """A request arrived (after the router tried it: ``waiting`` is True when it found no free slot)."""


@dataclass(slots=True)
class Result:
    policy: str
    cold_start_s: float
    requests: int
    instance_seconds: float
    ideal_instance_seconds: float
    delay_p50: float
    delay_p99: float
    delay_max: float
    delay_mean: float
    waited: int  # requests that waited at all
    max_queue: int
    starts: int  # instances launched (each one a cold start)
    starting_s: float  # instance-seconds spent starting (in instance_seconds)
    start_cost: float  # instance-seconds a second of starting burns on top (Setup.start_cost)
    flaps: int  # starts within the break-even time of a give-back
    idle_starts: int  # instances that served no request at all
    peak_instances: int
    duration: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.instance_seconds / self.ideal_instance_seconds

    @property
    def cost(self) -> float:
        """What the policy spent: instance-seconds (launch to stop) plus what its starts burnt."""
        return self.instance_seconds + self.start_cost * self.starting_s

    @property
    def cost_ratio(self) -> float:
        return self.cost / self.ideal_instance_seconds


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


class Simulation:
    def __init__(self, requests: Sequence[Request], setup: Setup) -> None:
        self.requests = requests
        self.setup = setup
        self.service = [service_seconds(r, decode_s=setup.decode_s, prefill_s=setup.prefill_s) for r in requests]
        self.now = 0.0
        self.instances: list[Instance] = []  # every instance ever launched
        self.alive: dict[int, Instance] = {}  # those not stopped
        self.queue: deque[int] = deque()  # request indices, FIFO
        self.in_flight = 0
        self.last_arrival: float | None = None
        self.last_busy: float | None = None  # the last arrival or completion
        self.last_start_s: float | None = None  # launch to ready of the latest instance that became ready
        self.delays: list[float] = []
        self.max_queue = 0
        self.peak = 0
        self._events: list[tuple[float, int, int, int]] = []
        self._timers: dict[int, Callable[[], None]] = {}
        self._seq = 0
        self._served_by: dict[int, Instance] = {}
        self._area = 0.0  # ∫ (in flight + waiting) dt up to _area_at
        self._area_at = 0.0
        self.break_even_s = (1.0 + setup.start_cost) * setup.cold_start_s
        self.flaps = 0
        self._given_back: deque[float] = deque()  # give-backs not yet matched with a start, oldest first

    # ── what autoscalers read ─────────────────────────────────────────────

    @property
    def concurrency(self) -> int:
        """Requests in flight plus requests waiting, right now."""
        return self.in_flight + len(self.queue)

    def count(self, state: str) -> int:
        return sum(1 for i in self.alive.values() if i.state == state)

    def area(self) -> float:
        """∫ concurrency dt from 0 to now: the difference over an interval, divided by its length, is the
        time-weighted average concurrency over that interval."""
        return self._area + self.concurrency * (self.now - self._area_at)

    # ── what autoscalers do ───────────────────────────────────────────────

    def at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` at ``when`` (not before now)."""
        self._seq += 1
        self._timers[self._seq] = callback
        heapq.heappush(self._events, (max(when, self.now), _TIMER, self._seq, self._seq))

    def launch(self) -> Instance:
        while self._given_back and self._given_back[0] < self.now - self.break_even_s:
            self._given_back.popleft()
        if self._given_back:
            self._given_back.popleft()
            self.flaps += 1
        instance = Instance(len(self.instances), self.now, self.now + self.setup.cold_start_s)
        self.instances.append(instance)
        self.alive[instance.id] = instance
        self.peak = max(self.peak, len(self.alive))
        self._push(instance.ready_at, _READY, instance.id)
        return instance

    def scale_to(self, desired: int) -> None:
        active = [i for i in self.alive.values() if i.state in ("starting", "ready")]
        if desired > len(active):
            for _ in range(desired - len(active)):
                self.launch()
        elif desired < len(active):
            starting = sorted((i for i in active if i.state == "starting"), key=lambda i: -i.id)
            ready = sorted((i for i in active if i.state == "ready"), key=lambda i: (i.in_flight, -i.id))
            for instance in (starting + ready)[: len(active) - desired]:
                instance.given_back_at = self.now
                self._given_back.append(self.now)
                if instance.state == "starting" or instance.in_flight == 0:
                    self._stop(instance)
                else:
                    instance.state, instance.drain_at = "draining", self.now

    # ── the engine ────────────────────────────────────────────────────────

    def _push(self, when: float, kind: int, payload: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, kind, self._seq, payload))

    def _stop(self, instance: Instance) -> None:
        instance.state, instance.stopped_at = "stopped", self.now
        del self.alive[instance.id]

    def _advance(self, when: float) -> None:
        self._area += self.concurrency * (when - self._area_at)
        self._area_at = when
        self.now = when

    def _dispatch(self) -> None:
        limit = self.setup.instance_concurrency
        while self.queue:
            free = [i for i in self.alive.values() if i.state == "ready" and i.in_flight < limit]
            if not free:
                return
            target = min(free, key=lambda i: (i.in_flight, i.served, i.id))
            index = self.queue.popleft()
            target.in_flight += 1
            target.served += 1
            self.in_flight += 1
            self._served_by[index] = target
            self.delays.append(self.now - self.requests[index].arrival)
            self._push(self.now + self.service[index], _DONE, index)

    def run(self, autoscaler: Autoscaler) -> float:
        """Replay every request; return the time the last one completed."""
        for index, request in enumerate(self.requests):
            self._push(request.arrival, _ARRIVAL, index)
        remaining = len(self.requests)
        autoscaler.start(self)
        while self._events:
            when, kind, _, payload = heapq.heappop(self._events)
            self._advance(when)
            if kind == _DONE:
                instance = self._served_by.pop(payload)
                instance.in_flight -= 1
                self.in_flight -= 1
                remaining -= 1
                self.last_busy = when
                if instance.state == "draining" and instance.in_flight == 0:
                    self._stop(instance)
                if remaining == 0:
                    break
                self._dispatch()
            elif kind == _READY:
                instance = self.instances[payload]
                if instance.state == "starting":
                    instance.state = "ready"
                    self.last_start_s = instance.ready_at - instance.launched_at
                    self._dispatch()
            elif kind == _ARRIVAL:
                self.queue.append(payload)
                self.last_arrival = self.last_busy = when
                self._dispatch()
                self.max_queue = max(self.max_queue, len(self.queue))
                autoscaler.on_arrival(self, bool(self.queue))
            else:
                self._timers.pop(payload)()
        return self.now


def simulate(requests: Sequence[Request], setup: Setup, autoscaler: Autoscaler) -> Result:
    sim = Simulation(requests, setup)
    end = sim.run(autoscaler)
    instance_seconds = 0.0
    starting_s = draining_s = 0.0
    for i in sim.instances:
        stop = i.stopped_at if i.stopped_at is not None else end
        instance_seconds += stop - i.launched_at
        starting_s += min(stop, i.ready_at) - i.launched_at
        if i.drain_at is not None:
            draining_s += stop - i.drain_at
    delays = sorted(sim.delays)
    return Result(
        policy=autoscaler.name,
        cold_start_s=setup.cold_start_s,
        requests=len(requests),
        instance_seconds=instance_seconds,
        ideal_instance_seconds=sum(sim.service) / setup.instance_concurrency,
        delay_p50=percentile(delays, 0.50),
        delay_p99=percentile(delays, 0.99),
        delay_max=delays[-1] if delays else 0.0,
        delay_mean=sum(delays) / len(delays) if delays else 0.0,
        waited=sum(1 for d in delays if d > 0),
        max_queue=sim.max_queue,
        starts=len(sim.instances),
        starting_s=starting_s,
        start_cost=setup.start_cost,
        flaps=sim.flaps,
        idle_starts=sum(1 for i in sim.instances if i.served == 0),
        peak_instances=sim.peak,
        duration=end,
        extra={"draining_s": round(draining_s)},
    )
