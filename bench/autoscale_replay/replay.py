"""Autoscale replay: a real request trace through the autoscaling policy, on a simulated clock.

A small discrete-event model of one open model served by instances:

- each request's service time is ``decode_s × GeneratedTokens + prefill_s × ContextTokens``;
- an instance serves up to ``instance_concurrency`` requests at once and takes ``cold_start_s`` from launch to
  ready; requests wait in one FIFO queue and go to the least-loaded ready instance;
- every ``tick_s`` the policy sees the load (requests in flight + waiting), the instances by state and the
  last arrival, and answers a desired count; the controller launches instances (putting a draining one back
  in service first) or removes them (starting ones first, then the least-loaded ready ones, which drain:
  they take no new requests and stop when their last one ends);
- as the real controller does, a request that finds no instance at all launches one at once, without
  waiting for a tick (for every policy alike).

Policies side by side: ``kpa`` (unimodel's :func:`unimodel.runtime.policy.decide`), ``naive``
(``ceil(concurrency / target)`` each tick, no windows, no grace) and ``fixed`` (``max_instances`` ready all
the time, no cold start: the latency floor and the cost ceiling).

Usage (from the repository root; it takes seconds, and reads no clock but for the output folder's name)::

    .venv/bin/python bench/autoscale_replay/replay.py                         # the Azure conv trace, 5 s cold start
    .venv/bin/python bench/autoscale_replay/replay.py --cold-start-s 2,5,30
    .venv/bin/python bench/autoscale_replay/replay.py --thin 0.05 --idle-timeout-s 60
    .venv/bin/python bench/autoscale_replay/replay.py --speedup 4 --policy-arg scale_down_delay_s=30

Any CSV with ``TIMESTAMP,ContextTokens,GeneratedTokens`` works (``--trace``). The report is printed as
Markdown and written with the raw numbers as JSON to ``bench/out/autoscale_replay-<timestamp>/``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import heapq
import json
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))

from unimodel.runtime.policy import Observation, PolicyConfig, PolicyState, decide  # noqa: E402

DEFAULT_TRACE = REPO.parent / "shared" / "data" / "azure-llm-inference-2023-conv.csv"
OUT = REPO / "bench" / "out"

# Events at one instant run in this order, so a tick sees everything that happened at its time.
_DONE, _READY, _ARRIVAL, _TICK = range(4)


# -------------------------------------------------------------------------------------------- trace


@dataclass(frozen=True, slots=True)
class Request:
    arrival: float  # seconds since the trace's first request (after speed-up)
    context_tokens: int
    generated_tokens: int


def _parse_time(text: str) -> float:
    # The Azure traces carry 7 fractional digits, one more than datetime parses.
    whole, _, fraction = text.strip().partition(".")
    seconds = datetime.fromisoformat(whole).timestamp()
    return seconds + (float("0." + fraction) if fraction else 0.0)


def load_trace(path: Path, *, speedup: float, thin: float, seed: int, limit: int | None) -> list[Request]:
    """The trace's requests, times relative to the first, sped up and thinned (kept with probability thin)."""
    rng = random.Random(seed)
    rows: list[tuple[float, int, int]] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if thin < 1.0 and rng.random() >= thin:
                continue
            rows.append((_parse_time(row["TIMESTAMP"]), int(row["ContextTokens"]), int(row["GeneratedTokens"])))
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise SystemExit(f"{path}: no requests (after thinning)")
    rows.sort()
    start = rows[0][0]
    return [Request((t - start) / speedup, ctx, gen) for t, ctx, gen in rows]


# ------------------------------------------------------------------------------------------ policies


@dataclass(frozen=True, slots=True)
class Setup:
    instance_concurrency: int
    target_utilization: float
    min_instances: int
    max_instances: int
    idle_timeout_s: float
    cold_start_s: float
    tick_s: float
    decode_s: float
    prefill_s: float
    policy_args: tuple[tuple[str, float], ...] = ()

    @property
    def target(self) -> float:
        return self.instance_concurrency * self.target_utilization


Policy = Callable[[Observation], int]


def kpa_policy(setup: Setup) -> Policy:
    config = PolicyConfig(
        min_instances=setup.min_instances,
        max_instances=setup.max_instances,
        target_concurrency=setup.target,
        idle_timeout_s=setup.idle_timeout_s,
        **dict(setup.policy_args),
    )
    state = PolicyState()

    def policy(observation: Observation) -> int:
        nonlocal state
        decision = decide(config, observation, state)
        state = decision.state
        return decision.desired

    return policy


def naive_policy(setup: Setup) -> Policy:
    def policy(observation: Observation) -> int:
        want = math.ceil(observation.concurrency / setup.target - 1e-9)
        return min(max(want, setup.min_instances), setup.max_instances)

    return policy


def fixed_policy(setup: Setup) -> Policy:
    return lambda observation: setup.max_instances


POLICIES: dict[str, Callable[[Setup], Policy]] = {"kpa": kpa_policy, "naive": naive_policy, "fixed": fixed_policy}


# ------------------------------------------------------------------------------------------- model


@dataclass(slots=True)
class Instance:
    id: int
    launched_at: float
    ready_at: float
    state: str = "starting"  # starting → ready ⇄ draining → stopped
    in_flight: int = 0
    stopped_at: float | None = None


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
    max_queue: int
    scale_events: int  # ticks at which the desired count changed
    launches: int  # instances launched (each one a cold start, unless the fixed baseline's warm ones)
    time_at_zero: float
    duration: float
    max_instances_seen: int
    extra: dict[str, Any] = field(default_factory=dict)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, math.ceil(q * len(sorted_values)) - 1)  # nearest rank
    return sorted_values[rank]


def simulate(requests: Sequence[Request], setup: Setup, policy_name: str, *, measure_from: float = 0.0) -> Result:
    """Replay `requests` under one policy; delays and the longest queue count from `measure_from` on."""
    policy = POLICIES[policy_name](setup)
    events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, payload)
    seq = 0

    def push(at: float, kind: int, payload: int) -> None:
        nonlocal seq
        heapq.heappush(events, (at, kind, seq, payload))
        seq += 1

    instances: list[Instance] = []  # every instance ever launched, for the accounting
    alive: dict[int, Instance] = {}  # those not stopped
    queue: deque[int] = deque()  # request indices, FIFO
    served_by: dict[int, int] = {}
    delays: list[float] = []
    max_queue = 0
    last_request_at: float | None = None
    launches = 0
    scale_events = 0
    previous_desired: int | None = None
    zero_since: float | None = 0.0
    time_at_zero = 0.0
    max_seen = 0
    service = [setup.decode_s * r.generated_tokens + setup.prefill_s * r.context_tokens for r in requests]

    def stop(instance: Instance, now: float) -> None:
        nonlocal zero_since
        instance.state, instance.stopped_at = "stopped", now
        del alive[instance.id]
        if not alive:
            zero_since = now

    def launch(now: float, *, warm: bool = False) -> None:
        nonlocal launches, zero_since, time_at_zero, max_seen
        if zero_since is not None:
            time_at_zero += now - zero_since
            zero_since = None
        instance = Instance(len(instances), now, now if warm else now + setup.cold_start_s)
        instances.append(instance)
        alive[instance.id] = instance
        max_seen = max(max_seen, len(alive))
        if warm:
            instance.state = "ready"
        else:
            launches += 1
            push(instance.ready_at, _READY, instance.id)

    def dispatch(now: float) -> None:
        while queue:
            free = [i for i in alive.values() if i.state == "ready" and i.in_flight < setup.instance_concurrency]
            if not free:
                return
            target = min(free, key=lambda i: (i.in_flight, i.id))
            index = queue.popleft()
            target.in_flight += 1
            served_by[index] = target.id
            if requests[index].arrival >= measure_from:
                delays.append(now - requests[index].arrival)
            push(now + service[index], _DONE, index)

    def apply(desired: int, now: float) -> None:
        active = [i for i in alive.values() if i.state in ("starting", "ready")]
        if desired > len(active):
            missing = desired - len(active)
            # A draining instance is already warm: put it back in service before launching a cold one.
            draining = sorted((i for i in alive.values() if i.state == "draining"), key=lambda i: -i.in_flight)
            for instance in draining[:missing]:
                instance.state = "ready"
                missing -= 1
            for _ in range(missing):
                launch(now)
        elif desired < len(active):
            # Starting instances serve nobody yet: cancel the newest first, then drain the least loaded.
            starting = sorted((i for i in active if i.state == "starting"), key=lambda i: -i.launched_at)
            ready = sorted((i for i in active if i.state == "ready"), key=lambda i: (i.in_flight, -i.id))
            order = starting + ready
            for instance in order[: len(active) - desired]:
                if instance.state == "starting" or instance.in_flight == 0:
                    stop(instance, now)
                else:
                    instance.state = "draining"

    if policy_name == "fixed":
        for _ in range(setup.max_instances):
            launch(0.0, warm=True)
        previous_desired = setup.max_instances
    for index, request in enumerate(requests):
        push(request.arrival, _ARRIVAL, index)
    push(0.0, _TICK, 0)
    remaining = len(requests)
    now = 0.0

    while events:
        now, kind, _, payload = heapq.heappop(events)
        if kind == _DONE:
            remaining -= 1
            instance = alive[served_by.pop(payload)]
            instance.in_flight -= 1
            if instance.state == "draining" and instance.in_flight == 0:
                stop(instance, now)
            dispatch(now)
            if remaining == 0:
                break
        elif kind == _READY:
            loaded = alive.get(payload)  # None: cancelled while starting
            if loaded is not None and loaded.state == "starting":
                loaded.state = "ready"
                dispatch(now)
        elif kind == _ARRIVAL:
            queue.append(payload)
            last_request_at = now
            if not any(i.state in ("starting", "ready") for i in alive.values()) and setup.max_instances > 0:
                draining = [i for i in alive.values() if i.state == "draining"]
                if draining:
                    draining[0].state = "ready"
                else:
                    launch(now)  # the controller's eager start: no waiting for a tick
            dispatch(now)
            if now >= measure_from:
                max_queue = max(max_queue, len(queue))
        else:  # tick
            in_flight = sum(i.in_flight for i in alive.values())
            observation = Observation(
                now=now,
                concurrency=float(in_flight + len(queue)),
                ready=sum(1 for i in alive.values() if i.state == "ready"),
                starting=sum(1 for i in alive.values() if i.state == "starting"),
                last_request_at=last_request_at,
            )
            desired = policy(observation)
            if previous_desired is not None and desired != previous_desired:
                scale_events += 1
            previous_desired = desired
            apply(desired, now)
            dispatch(now)
            push(now + setup.tick_s, _TICK, 0)

    end = now
    if zero_since is not None:
        time_at_zero += end - zero_since
    instance_seconds = sum((i.stopped_at if i.stopped_at is not None else end) - i.launched_at for i in instances)
    delays.sort()
    return Result(
        policy=policy_name,
        cold_start_s=setup.cold_start_s,
        requests=len(requests),
        instance_seconds=instance_seconds,
        ideal_instance_seconds=sum(service) / setup.instance_concurrency,
        delay_p50=_percentile(delays, 0.50),
        delay_p99=_percentile(delays, 0.99),
        delay_max=delays[-1] if delays else 0.0,
        delay_mean=sum(delays) / len(delays) if delays else 0.0,
        max_queue=max_queue,
        scale_events=scale_events,
        launches=launches,
        time_at_zero=time_at_zero,
        duration=end,
        max_instances_seen=max_seen,
    )


# ------------------------------------------------------------------------------------------- report


def _policy_args(items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    known = {f.name for f in dataclasses.fields(PolicyConfig)} - {
        "min_instances",
        "max_instances",
        "target_concurrency",
        "idle_timeout_s",
    }
    parsed: list[tuple[str, float]] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--policy-arg {item!r}: expected KEY=VALUE with KEY one of {sorted(known)}")
        parsed.append((key, float(value)))
    return tuple(parsed)


def report(results: Sequence[Result], setup: Setup, args: argparse.Namespace, command: str) -> str:
    lines = [
        f"# autoscale_replay — {Path(args.trace).name}",
        "",
        f"- Command: `{command}`",
        f"- Trace: {results[0].requests} requests over {results[0].duration:.0f} s simulated "
        f"(speed-up {args.speedup}, thinning {args.thin}, seed {args.seed}).",
        f"- Service time = {setup.decode_s} s × GeneratedTokens + {setup.prefill_s} s × ContextTokens; "
        f"instance_concurrency {setup.instance_concurrency}, target {setup.target:g} per instance; "
        f"instances in [{setup.min_instances}, {setup.max_instances}]; idle_timeout {setup.idle_timeout_s:g} s; "
        f"tick {setup.tick_s:g} s" + (f"; policy args {dict(setup.policy_args)}" if setup.policy_args else "") + ".",
        "- ideal = the trace's total service time / instance_concurrency (perfect packing, no cold starts).",
        f"- Every run starts at zero instances under the trace's load; delays and max queue count requests "
        f"arriving from {args.measure_from:g} s on.",
        "",
        "| cold start | policy | instance-s | ÷ ideal | delay p50 s | delay p99 s | delay max s | max queue "
        "| scale events | cold starts | time at zero s | peak instances |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lines.append(
            f"| {r.cold_start_s:g} s | {r.policy} | {r.instance_seconds:.0f} | "
            f"{r.instance_seconds / r.ideal_instance_seconds:.2f} | {r.delay_p50:.3f} | {r.delay_p99:.2f} | "
            f"{r.delay_max:.2f} | {r.max_queue} | {r.scale_events} | {r.launches} | {r.time_at_zero:.0f} | "
            f"{r.max_instances_seen} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trace", default=str(DEFAULT_TRACE), help="CSV: TIMESTAMP,ContextTokens,GeneratedTokens")
    parser.add_argument("--speedup", type=float, default=1.0, help="divide the trace's inter-arrival times by this")
    parser.add_argument("--thin", type=float, default=1.0, help="keep each request with this probability")
    parser.add_argument("--seed", type=int, default=1, help="for --thin")
    parser.add_argument("--limit", type=int, default=None, help="only the first N requests (after thinning)")
    parser.add_argument("--decode-s", type=float, default=0.02, help="service seconds per generated token")
    parser.add_argument("--prefill-s", type=float, default=0.0002, help="service seconds per context token")
    parser.add_argument("--instance-concurrency", type=int, default=8)
    parser.add_argument("--target-utilization", type=float, default=1.0)
    parser.add_argument("--min-instances", type=int, default=0)
    parser.add_argument("--max-instances", type=int, default=8)
    parser.add_argument("--idle-timeout-s", type=float, default=600.0)
    parser.add_argument("--cold-start-s", default="5", help="comma-separated: one run per value")
    parser.add_argument("--tick-s", type=float, default=1.0)
    parser.add_argument("--policies", default="kpa,naive,fixed", help=f"comma-separated, of {sorted(POLICIES)}")
    parser.add_argument(
        "--policy-arg", action="append", default=[], metavar="KEY=VALUE", help="a PolicyConfig field for kpa"
    )
    parser.add_argument(
        "--measure-from",
        type=float,
        default=0.0,
        help="delay percentiles only for requests arriving this many (simulated) seconds in or later",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; write nothing under bench/out")
    args = parser.parse_args(argv)

    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies {unknown}; choose from {sorted(POLICIES)}")
    requests = load_trace(Path(args.trace), speedup=args.speedup, thin=args.thin, seed=args.seed, limit=args.limit)
    policy_args = _policy_args(args.policy_arg)
    results: list[Result] = []
    setup: Setup | None = None
    for cold in (float(c) for c in args.cold_start_s.split(",")):
        setup = Setup(
            instance_concurrency=args.instance_concurrency,
            target_utilization=args.target_utilization,
            min_instances=args.min_instances,
            max_instances=args.max_instances,
            idle_timeout_s=args.idle_timeout_s,
            cold_start_s=cold,
            tick_s=args.tick_s,
            decode_s=args.decode_s,
            prefill_s=args.prefill_s,
            policy_args=policy_args,
        )
        results.extend(simulate(requests, setup, name, measure_from=args.measure_from) for name in names)
    assert setup is not None
    command = " ".join(
        [".venv/bin/python bench/autoscale_replay/replay.py", *(argv if argv is not None else sys.argv[1:])]
    )
    text = report(results, setup, args, command)
    print(text)
    if not args.no_write:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder, n = OUT / f"autoscale_replay-{stamp}", 1
        while folder.exists():
            n += 1
            folder = OUT / f"autoscale_replay-{stamp}-{n}"
        folder.mkdir(parents=True)
        (folder / "report.md").write_text(text)
        (folder / "results.json").write_text(
            json.dumps({"args": vars(args), "results": [dataclasses.asdict(r) for r in results]}, indent=2)
        )
        (OUT / "autoscale_replay-latest.md").write_text(text)
        print(f"written to {folder.relative_to(REPO)}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
