"""The autoscaling policy: a pure function of the load, the instances and the previous state.

Time is passed in (`now`), never read, so tests and trace replays run on a fake clock.

Concurrency-based, with a panic mode in the manner of Knative's KPA, but with its time scales tied to how long
an instance takes to start (`Observation.start_s`, the latest launch-to-ready time the controller measured;
`PolicyConfig.assumed_start_s` until there is one). Call that the start time `s`:

1. Record `(now, concurrency)`, concurrency being requests in flight plus requests waiting; keep the samples
   of the last stable window. The horizon `h` is `s` clamped to [panic window, stable window]: the load is
   averaged over `h`, since a swing shorter than a start is over before a new instance could serve it.
   `want_h = ceil(mean over h / target)`, `want_panic = ceil(mean over the panic window / target)`,
   `want_now = ceil(concurrency now / target)`.
2. Panic starts when `want_panic >= panic_threshold × capacity`, capacity being the instances that are ready or
   starting (with no capacity at all, any load panics); once in panic, an observation whose `want_panic` is
   still `panic_threshold ×` what the horizon asks also counts (the load is still bursting, even though the
   capacity the panic added keeps it under the first threshold). Panic lasts until one horizon has passed since
   the last panicking observation. In panic the policy takes the largest of `want_now`, `want_panic`, `want_h`
   and its previous decision: it follows a burst tick by tick and never scales down.
3. What the load asks for (`want_h`, or in panic the above) goes up at once and comes down only after `hold`
   seconds: the decision is the largest ask of the last `hold` seconds, `hold` being `scale_down_delay_s`, or by
   default the break-even `b = (1 + start_cost) × s`. An instance is given back only once it has been unneeded
   for as long as replacing it would cost: the start time, during which the replacement holds its slot without
   serving, plus what the start itself burns (`start_cost` start times; loading weights keeps a CPU busy for
   the whole start). Holding `b` pays at most twice what hindsight would for any dip (ski rental); holding
   `s` alone, half of it, paid up to three times, and a start for every dip between `s` and `b`. Nor does a
   scale-down go below `want_now`: capacity that the requests in flight and waiting fill right now is not
   unneeded, whatever the averages say (a dip in the averages in the middle of a burst is no reason to drain
   instances that are serving it and start others a tick later). Down goes by at most `max_scale_down_rate` per
   decision (halving by default, and at least one).
4. A cold start's backlog is not held: when requests waited (`Observation.waiting`) for capacity that was
   still starting, in a panic that followed an idle gap (nothing in flight or waiting) longer than `b`, the
   capacity asked for that backlog goes once no request has waited for a whole panic window: the panic ends,
   the held asks go, and the horizon starts over from the panic window (the backlog's samples say nothing about
   the load that follows it). After a shorter gap the bursts come back sooner than a replacement would pay for
   itself, and the hold bridges them as any other dip.
5. Zero only when nothing is in flight or queued and the model has had no request (arriving, waiting or in
   flight: `last_request_at`) for `idle_timeout_s`; until then at least one instance (the scale-to-zero
   grace), and at least one at once when load arrives at zero.
6. Clamped to `[min_instances, max_instances]` (`bounded`).

`bounded` is also what the controller scales to from any policy's answer (an injected policy may ignore the
bounds) and on a cold start: within the bounds, and never zero while requests wait for an instance.

Desired is a total, not an increment, and starting instances count as capacity, so a backlog that piles up
while instances load asks for one slot per request in total, never for more on top of those already starting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Float noise (3 × 0.1 / 0.1 = 3.0000000000000004) must not ask for one more instance.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    min_instances: int
    max_instances: int
    target_concurrency: float  # requests one instance should carry (instance_concurrency × target utilization)
    idle_timeout_s: float
    stable_window_s: float = 60.0  # the longest horizon, and how long samples are kept
    panic_window_s: float = 6.0  # the shortest horizon, and the window that detects bursts
    panic_threshold: float = 2.0
    max_scale_down_rate: float = 2.0  # out of panic, one decision keeps at least ceil(previous desired / this)
    # How long the load must ask for fewer instances before a scale-down; None: the break-even of keeping an
    # instance, (1 + start_cost) × the start time.
    scale_down_delay_s: float | None = None
    assumed_start_s: float = 30.0  # the start time until the controller has measured one
    # What a start burns besides the time its instance holds a slot without serving, in start times: 1 for a
    # start that keeps a CPU busy as long as it takes (llama.cpp loading a GGUF is CPU-bound, bench/cold_start).
    start_cost: float = 1.0

    def __post_init__(self) -> None:
        if self.min_instances < 0 or self.max_instances < self.min_instances:
            raise ValueError(f"instances must satisfy 0 <= min ({self.min_instances}) <= max ({self.max_instances})")
        if self.target_concurrency <= 0:
            raise ValueError(f"target_concurrency must be > 0, not {self.target_concurrency}")
        if self.stable_window_s <= 0 or self.panic_window_s <= 0:
            raise ValueError("stable_window_s and panic_window_s must be > 0")
        if self.panic_window_s > self.stable_window_s:
            raise ValueError(f"panic_window_s ({self.panic_window_s}) must not exceed stable_window_s")
        if self.idle_timeout_s < 0:
            raise ValueError(f"idle_timeout_s must be >= 0, not {self.idle_timeout_s}")
        if self.scale_down_delay_s is not None and self.scale_down_delay_s < 0:
            raise ValueError(f"scale_down_delay_s must be >= 0, not {self.scale_down_delay_s}")
        if self.max_scale_down_rate < 1:
            raise ValueError(f"max_scale_down_rate must be >= 1, not {self.max_scale_down_rate}")
        if self.assumed_start_s < 0:
            raise ValueError(f"assumed_start_s must be >= 0, not {self.assumed_start_s}")
        if self.start_cost < 0:
            raise ValueError(f"start_cost must be >= 0, not {self.start_cost}")


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    concurrency: float  # requests in flight plus requests waiting, right now
    ready: int  # instances serving
    starting: int  # instances started but not ready yet: capacity on its way
    # When the model last had a request — arriving, waiting or in flight: idle time counts from the end of the
    # last one, not from its arrival (None: never).
    last_request_at: float | None
    start_s: float | None = None  # how long the latest instance took from launch to ready (None: none yet)
    waiting: int = 0  # of `concurrency`, the requests waiting for a slot


@dataclass(frozen=True, slots=True)
class PolicyState:
    samples: tuple[tuple[float, float], ...] = ()  # (time, concurrency), oldest first, within the stable window
    wants: tuple[tuple[float, int], ...] = ()  # (time, what the load asked for), oldest first, within the hold
    panic_until: float | None = None
    desired: int = 0
    idle_since: float | None = None  # since when nothing has been in flight or waiting (None: busy now)
    last_gap: float = math.inf  # the latest idle gap before load (never busy yet: an endless one)
    backlog: bool = False  # a cold start's backlog is being served (rule 4)
    served_since: float | None = None  # since when no request has waited, while `backlog`


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    state: PolicyState = field(default_factory=PolicyState)
    panic: bool = False


def start_time(config: PolicyConfig, observation: Observation) -> float:
    """The start time the policy plans with: the measured one, else the assumed one."""
    return observation.start_s if observation.start_s is not None else config.assumed_start_s


def horizon(config: PolicyConfig, start_s: float) -> float:
    """The window the load is averaged over: the start time, within [panic window, stable window]."""
    return min(max(start_s, config.panic_window_s), config.stable_window_s)


def break_even(config: PolicyConfig, start_s: float) -> float:
    """How long keeping an unneeded instance costs as much as replacing it: its start time, plus what a start
    burns."""
    return (1.0 + config.start_cost) * start_s


def hold(config: PolicyConfig, start_s: float) -> float:
    """How long the load must ask for fewer instances before they go."""
    return config.scale_down_delay_s if config.scale_down_delay_s is not None else break_even(config, start_s)


def decide(config: PolicyConfig, observation: Observation, state: PolicyState) -> Decision:
    """How many instances the model should have now, and the state to pass to the next call.

    Call it on a regular tick (the samples are averaged per call, not weighted by time) with a `now` that
    never goes back; the state holds one sample per call within the last stable window.
    """
    now = observation.now
    concurrency = max(0.0, observation.concurrency)
    start = start_time(config, observation)
    span = horizon(config, start)
    samples = (*(s for s in state.samples if s[0] > now - config.stable_window_s), (now, concurrency))
    target = config.target_concurrency
    want_h = _instances(_mean([c for t, c in samples if t > now - span]), target)
    want_panic = _instances(_mean([c for t, c in samples if t > now - config.panic_window_s]), target)

    capacity = observation.ready + observation.starting
    panic_until = state.panic_until
    panicking = want_panic > 0 and want_panic >= config.panic_threshold * capacity
    if panic_until is not None and want_panic >= config.panic_threshold * max(want_h, 1):
        # Still bursting: the capacity the panic added no longer trips the threshold, but the load would
        # trip it again the moment that capacity was taken away (on/off load would thrash).
        panicking = True

    idle_since, last_gap = state.idle_since, state.last_gap
    if concurrency == 0:
        idle_since = now if idle_since is None else idle_since
    elif idle_since is not None:
        last_gap, idle_since = now - idle_since, None
    held = state.wants
    backlog, served_since, served = _cold_backlog(
        config, observation, state, in_panic=panicking or panic_until is not None, gap=last_gap, start_s=start
    )
    if served:
        # The cold start's backlog is served: what it asked for goes, and the load after it starts over.
        held, panicking, panic_until = (), False, None
        samples = tuple(s for s in samples if s[0] > now - config.panic_window_s)
        want_h = _instances(_mean([c for _, c in samples]), target)

    if panicking:
        panic_until = now + span
    elif panic_until is not None and now >= panic_until:
        panic_until = None

    previous = state.desired
    want = want_h
    if panic_until is not None:
        want = max(_instances(concurrency, target), want_panic, want_h, previous)
    wants = (*(w for w in held if w[0] > now - hold(config, start)), (now, want))
    desired = max(w for _, w in wants)
    if desired < previous:
        # Not below what the requests in flight and waiting fill right now: an instance serving them is not
        # unneeded, whatever the averages say. Down only when the load agrees now as well as over the hold.
        desired = min(previous, max(desired, _instances(concurrency, target)))
    if desired < previous:
        # At most `rate` times fewer, but at least one fewer: a rate near 1 must not freeze small counts.
        desired = max(desired, min(_ceil(previous / config.max_scale_down_rate), previous - 1))

    idle = concurrency == 0 and (
        observation.last_request_at is None or now - observation.last_request_at >= config.idle_timeout_s
    )
    if idle:
        # Nothing to serve and nothing asked for a whole idle timeout: a panic has nothing left to protect.
        desired, panic_until, wants, backlog, served_since = 0, None, (), False, None
    else:
        desired = max(desired, 1)

    desired = bounded(config, desired)
    return Decision(
        desired=desired,
        state=PolicyState(
            samples=samples,
            wants=wants,
            panic_until=panic_until,
            desired=desired,
            idle_since=idle_since,
            last_gap=last_gap,
            backlog=backlog,
            served_since=served_since,
        ),
        panic=panic_until is not None,
    )


def _cold_backlog(
    config: PolicyConfig, observation: Observation, state: PolicyState, *, in_panic: bool, gap: float, start_s: float
) -> tuple[bool, float | None, bool]:
    """Rule 4's bookkeeping: (a cold start's backlog is being served, since when no request has waited, whether
    it has just been served: no request has waited for a whole panic window)."""
    now = observation.now
    if observation.waiting > 0:
        cold = observation.starting > 0 and in_panic and gap >= break_even(config, start_s)
        return state.backlog or cold, None, False
    if not state.backlog:
        return False, None, False
    if state.served_since is None:
        return True, now, False
    if now - state.served_since >= config.panic_window_s:
        return False, None, True
    return True, state.served_since, False


def bounded(config: PolicyConfig, desired: int, waiting: int = 0) -> int:
    """`desired` within `[min_instances, max_instances]`, and at least one while `waiting` requests wait for an
    instance (else they would wait for one nobody starts)."""
    desired = min(max(desired, config.min_instances), config.max_instances)
    return max(desired, 1) if waiting else desired


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - _EPSILON))


def _instances(concurrency: float, target: float) -> int:
    return _ceil(concurrency / target)
