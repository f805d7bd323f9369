"""Reference points no online policy can beat, on the same simulation, to tell a weak policy from a target
that a trace does not allow.

- ``fixed_fleets``: N instances ready from the start, never scaled, no cold start: the p99 a given steady cost
  buys on a trace.
- ``hindsight_schedule``: a fleet that knows in advance how much work arrives in each window of ``window_s``
  and has no cold start: each window gets the whole instances its own work fills, and then the window busiest
  per slot one more, again and again, as far as a budget of ``budget × ideal`` instance-seconds allows. An online policy
  neither knows the future nor gets instances for free, so at the same budget it is not expected to do better
  (it is a reference, not a proof: a policy could place its instances better than in fixed windows).
- ``burst_floor``: for a trace of bursts separated by gaps longer than the idle timeout, the instance-seconds
  that any policy scaling to zero in the gaps pays on top of the ideal even with perfect knowledge of each burst:
  ceil(offered load / instance_concurrency) instances for the burst (rounding up to whole instances), each
  paying one cold start, plus one instance through the idle timeout after the burst.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sim import Result, Setup, Simulation, simulate
from traces import Request, service_seconds

__all__ = ["burst_floor", "fixed_fleets", "hindsight_schedule"]


class _Schedule:
    """Scale to ``plan[i]`` at ``i × window_s``; nothing else."""

    def __init__(self, name: str, plan: Sequence[int], window_s: float) -> None:
        self.name = name
        self.plan = plan
        self.window_s = window_s

    def start(self, sim: Simulation) -> None:
        for i, n in enumerate(self.plan):
            sim.at(i * self.window_s, functools.partial(sim.scale_to, n))

    def on_arrival(self, sim: Simulation, waiting: bool) -> None:
        pass


def _warm(setup: Setup) -> Setup:
    return Setup(
        instance_concurrency=setup.instance_concurrency,
        min_instances=0,
        max_instances=setup.max_instances,
        cold_start_s=0.0,
        decode_s=setup.decode_s,
        prefill_s=setup.prefill_s,
    )


def fixed_fleets(requests: Sequence[Request], setup: Setup, sizes: Sequence[int]) -> list[Result]:
    warm = _warm(setup)
    return [simulate(requests, warm, _Schedule(f"fixed {n}", [n], 1.0)) for n in sizes]


def hindsight_schedule(requests: Sequence[Request], setup: Setup, *, window_s: float, budget: float) -> Result:
    """``_planned`` with its plan's budget lowered until the measured instance-seconds, drains included, fit
    ``budget × ideal``."""
    planned = budget
    result = _planned(requests, setup, window_s=window_s, budget=planned)
    for _ in range(8):
        if result.ratio <= budget:
            break
        planned *= budget / result.ratio
        result = _planned(requests, setup, window_s=window_s, budget=planned)
    return result


def _planned(requests: Sequence[Request], setup: Setup, *, window_s: float, budget: float) -> Result:
    """Water-filling with hindsight: each window first gets the whole instances its own work fills on average
    (at least one while work arrives in it or the window before), then, while ``budget × ideal`` instance-seconds
    allow, one more instance goes to the window that is busiest per slot."""
    warm = _warm(setup)
    k = setup.instance_concurrency
    service = [service_seconds(r, decode_s=setup.decode_s, prefill_s=setup.prefill_s) for r in requests]
    windows = math.ceil((requests[-1].arrival + max(service)) / window_s) + 1
    work = [0.0] * windows
    for r, s in zip(requests, service, strict=True):
        work[int(r.arrival // window_s)] += s
    plan = [max(math.floor(w / (window_s * k)), 1 if w or (i and work[i - 1]) else 0) for i, w in enumerate(work)]
    allowed = budget * sum(service) / k  # instance-seconds
    spent = sum(plan) * window_s
    heap = [(-w / (n * window_s * k), i) for i, (w, n) in enumerate(zip(work, plan, strict=True)) if n]
    heapq.heapify(heap)
    while heap and spent + window_s <= allowed:
        _, i = heapq.heappop(heap)
        plan[i] += 1
        spent += window_s
        heapq.heappush(heap, (-work[i] / (plan[i] * window_s * k), i))
    return simulate(requests, warm, _Schedule(f"hindsight {window_s:g} s", plan, window_s))


@dataclass(frozen=True, slots=True)
class BurstFloor:
    bursts: int
    ideal: float
    rounding: float  # instance-seconds of the last, partly used instance of each burst
    cold: float  # instance-seconds of cold starts
    idle: float  # instance-seconds through the idle timeout after each burst

    @property
    def ratio(self) -> float:
        return (self.ideal + self.rounding + self.cold + self.idle) / self.ideal


def burst_floor(requests: Sequence[Request], setup: Setup, *, gap_s: float, idle_timeout_s: float) -> BurstFloor:
    """Bursts are runs of arrivals with no gap longer than ``gap_s``."""
    k = setup.instance_concurrency
    service = [service_seconds(r, decode_s=setup.decode_s, prefill_s=setup.prefill_s) for r in requests]
    groups: list[list[int]] = [[0]]
    for i in range(1, len(requests)):
        if requests[i].arrival - requests[i - 1].arrival > gap_s:
            groups.append([])
        groups[-1].append(i)
    rounding = cold = idle = 0.0
    for group in groups:
        span = max(1.0, requests[group[-1]].arrival - requests[group[0]].arrival)
        need = sum(service[i] for i in group) / span / k  # instances' worth of work, on average
        rounding += (math.ceil(need) - need) * span
        cold += math.ceil(need) * setup.cold_start_s
        idle += idle_timeout_s
    return BurstFloor(len(groups), sum(service) / k, rounding, cold, idle)
