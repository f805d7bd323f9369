"""The autoscaling policy: a pure function of the load, the instances and the previous state.

Time is passed in (`now`), never read, so tests and trace replays run on a fake clock.

The decision, in the manner of Knative's KPA (concurrency-based, a stable and a panic window):

1. Record `(now, concurrency)`; forget samples older than the stable window. Stable concurrency is the mean
   of the samples in the stable window, panic concurrency the mean of those in the (shorter) panic window.
2. `want_stable = ceil(stable / target)`, `want_panic = ceil(panic / target)`.
3. Panic starts when `want_panic >= panic_threshold × capacity`, capacity being the instances that are ready
   or starting (with no capacity at all, any load panics). It lasts until one stable window has passed since
   the last panicking observation; once in panic, an observation whose `want_panic` is still
   `panic_threshold ×` what the stable window asks also counts (the load is still bursting, even though the
   capacity the panic added keeps it under the first threshold). In panic the policy takes the largest of
   `want_panic`, `want_stable` and its previous decision: it never scales down.
4. Out of panic it follows `want_stable` up at once, and down only once the stable window has asked for
   fewer for `scale_down_delay_s`, then by at most `max_scale_down_rate` per decision (halving by default,
   and always at least one), so flapping load does not thrash: every step down and up again is a drain and
   a cold start.
5. Zero only when nothing is in flight or queued and no request arrived for `idle_timeout_s`; until then at
   least one instance (the scale-to-zero grace), and at least one at once when load arrives at zero.
6. Clamped to `[min_instances, max_instances]`.

Desired is a total, not an increment, and starting instances count as capacity, so a backlog that piles up
while instances load asks for the same total again rather than for more on top of those already starting.
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
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    max_scale_down_rate: float = 2.0  # out of panic, one decision keeps at least ceil(previous desired / this)
    scale_down_delay_s: float = 60.0  # the stable window must ask for fewer this long before a scale-down

    def __post_init__(self) -> None:
        if self.min_instances < 0 or self.max_instances < self.min_instances:
            raise ValueError(f"instances must satisfy 0 <= min ({self.min_instances}) <= max ({self.max_instances})")
        if self.target_concurrency <= 0:
            raise ValueError(f"target_concurrency must be > 0, not {self.target_concurrency}")
        if self.stable_window_s <= 0 or self.panic_window_s <= 0:
            raise ValueError("stable_window_s and panic_window_s must be > 0")
        if self.idle_timeout_s < 0:
            raise ValueError(f"idle_timeout_s must be >= 0, not {self.idle_timeout_s}")
        if self.scale_down_delay_s < 0:
            raise ValueError(f"scale_down_delay_s must be >= 0, not {self.scale_down_delay_s}")
        if self.max_scale_down_rate < 1:
            raise ValueError(f"max_scale_down_rate must be >= 1, not {self.max_scale_down_rate}")


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    concurrency: float  # requests in flight plus requests waiting, right now
    ready: int  # instances serving
    starting: int  # instances started but not ready yet: capacity on its way
    last_request_at: float | None  # when the last request arrived (None: never)


@dataclass(frozen=True, slots=True)
class PolicyState:
    samples: tuple[tuple[float, float], ...] = ()  # (time, concurrency), oldest first, within the stable window
    panic_until: float | None = None
    desired: int = 0
    lower_since: float | None = None  # since when the stable window has asked for fewer than `desired`


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    state: PolicyState = field(default_factory=PolicyState)
    panic: bool = False


def decide(config: PolicyConfig, observation: Observation, state: PolicyState) -> Decision:
    """How many instances the model should have now, and the state to pass to the next call.

    Call it on a regular tick (the samples are averaged per call, not weighted by time) with a `now` that
    never goes back; the state holds one sample per call within the last stable window.
    """
    now = observation.now
    concurrency = max(0.0, observation.concurrency)
    stable_from = now - config.stable_window_s
    samples = (*(s for s in state.samples if s[0] > stable_from), (now, concurrency))
    panic_from = now - config.panic_window_s
    want_stable = _instances(_mean([c for _, c in samples]), config.target_concurrency)
    want_panic = _instances(_mean([c for t, c in samples if t > panic_from]), config.target_concurrency)

    capacity = observation.ready + observation.starting
    panic_until = state.panic_until
    panicking = want_panic > 0 and want_panic >= config.panic_threshold * capacity
    if panic_until is not None and want_panic >= config.panic_threshold * max(want_stable, 1):
        # Still bursting: the capacity the panic added no longer trips the threshold, but the load would
        # trip it again the moment that capacity was taken away (on/off load would thrash).
        panicking = True
    if panicking:
        panic_until = now + config.stable_window_s
    elif panic_until is not None and now >= panic_until:
        panic_until = None

    previous = state.desired
    lower_since = None
    if panic_until is not None:
        desired = max(want_panic, want_stable, previous)
    elif want_stable < previous:
        lower_since = now if state.lower_since is None else state.lower_since
        if now - lower_since < config.scale_down_delay_s:
            desired = previous
        else:
            # At most `rate` times fewer, but at least one fewer: a rate near 1 must not freeze small counts.
            desired = max(want_stable, min(_ceil(previous / config.max_scale_down_rate), previous - 1))
    else:
        desired = want_stable

    idle = concurrency == 0 and (
        observation.last_request_at is None or now - observation.last_request_at >= config.idle_timeout_s
    )
    if idle:
        # Nothing to serve and nothing asked for a whole idle timeout: a panic has nothing left to protect.
        desired, panic_until, lower_since = 0, None, None
    else:
        desired = max(desired, 1)

    desired = min(max(desired, config.min_instances), config.max_instances)
    return Decision(
        desired=desired,
        state=PolicyState(samples=samples, panic_until=panic_until, desired=desired, lower_since=lower_since),
        panic=panic_until is not None,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - _EPSILON))


def _instances(concurrency: float, target: float) -> int:
    return _ceil(concurrency / target)
