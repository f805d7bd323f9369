"""The autoscaling policy on a fake clock: `now` is a number, a tick is one second, and the "controller" in
these tests is instant (what the policy asked for at the last tick is ready now) unless a test says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import pytest

from unimodel.runtime.policy import Decision, Observation, PolicyConfig, PolicyState, decide


def config(**overrides: float) -> PolicyConfig:
    values: dict[str, float] = {"min_instances": 0, "max_instances": 20, "target_concurrency": 1.0}
    values["idle_timeout_s"] = 600.0
    values.update(overrides)
    return PolicyConfig(
        min_instances=int(values.pop("min_instances")),
        max_instances=int(values.pop("max_instances")),
        **values,
    )


def run(
    cfg: PolicyConfig,
    loads: Sequence[float],
    *,
    start: float = 0.0,
    state: PolicyState | None = None,
    last_request_at: float | None = None,
) -> list[Decision]:
    """One decision per second over `loads` (the concurrency at each tick). A tick with load has a new
    request; the instances ready at a tick are what the previous decision asked for."""
    state = state or PolicyState()
    decisions = []
    for i, load in enumerate(loads):
        now = start + i
        if load > 0:
            last_request_at = now
        decision = decide(cfg, Observation(now, load, state.desired, 0, last_request_at), state)
        decisions.append(decision)
        state = decision.state
    return decisions


def desired(decisions: Sequence[Decision]) -> list[int]:
    return [d.desired for d in decisions]


def changes(values: Sequence[int]) -> int:
    return sum(1 for a, b in pairwise(values) if a != b)


def test_step_up_in_load_panics_and_reaches_the_new_level_within_the_panic_window() -> None:
    decisions = run(config(), [1] * 100 + [10] * 120)
    assert desired(decisions[:100]) == [1] * 100
    assert decisions[0].panic  # from zero capacity any load panics, for one stable window
    assert not any(d.panic for d in decisions[60:100])
    # Panic (3 wanted, 1 there) at the first tick of the step; the 6 s panic window ramps up to the new level.
    assert desired(decisions[100:106]) == [3, 4, 6, 7, 9, 10]
    assert decisions[100].panic
    assert desired(decisions[106:]) == [10] * 114
    # The panic ends once the stable window has caught up and one stable window has passed.
    assert not decisions[-1].panic


def test_burst_after_idle_scales_from_zero_at_once_panics_and_stays_within_max() -> None:
    cfg = config(max_instances=4, idle_timeout_s=300)
    idle = run(cfg, [0] * 600)
    assert desired(idle) == [0] * 600
    state = idle[-1].state
    first = decide(cfg, Observation(600, 20, ready=0, starting=0, last_request_at=600), state)
    assert (first.desired, first.panic) == (4, True)  # 20 wanted, 4 allowed, at the very first tick
    state = first.state
    for now in range(601, 611):  # the 4 are loading; the backlog stays
        decision = decide(cfg, Observation(now, 20, ready=0, starting=4, last_request_at=now), state)
        assert (decision.desired, decision.panic) == (4, True)
        state = decision.state


def test_a_single_request_after_idle_gets_one_instance_at_the_first_tick() -> None:
    cfg = config(target_concurrency=8)
    state = run(cfg, [0] * 120)[-1].state
    decision = decide(cfg, Observation(120, 1, ready=0, starting=0, last_request_at=120), state)
    assert decision.desired == 1


def test_slow_drain_scales_down_gradually_then_to_zero_exactly_after_the_idle_timeout() -> None:
    cfg = config(max_instances=10, idle_timeout_s=120)
    loads = [8] * 120 + [level for level in range(7, 0, -1) for _ in range(30)] + [0] * 200
    values = desired(run(cfg, loads))
    last_request_at = 329  # the last tick with load
    assert values[:120] == [8] * 120
    steps = [(t, values[t - 1], values[t]) for t in range(1, len(values)) if values[t] != values[t - 1]]
    # Down only after the stable window asked for fewer for the scale-down delay, never more than halving
    # per step, and never below one instance until the idle timeout.
    assert steps == [(224, 8, 5), (314, 5, 3), (315, 3, 2), (404, 2, 1), (last_request_at + 120, 1, 0)]
    assert all(b >= math.ceil(a / 2) for _, a, b in steps[:-1])
    assert values[last_request_at + 119] == 1
    assert values[last_request_at + 120 :] == [0] * (len(values) - last_request_at - 120)


def test_on_off_flapping_load_does_not_thrash() -> None:
    # 15 s of 8 concurrent requests, 30 s of none, for ten minutes (requests keep coming: no idle timeout).
    flapping = ([8] * 15 + [0] * 30) * 14
    decisions = run(config(), [4] * 120 + flapping)
    values = desired(decisions[120:])
    naive = [math.ceil(load) for load in flapping]
    assert changes(naive) == 27
    assert changes(values) == 4
    # The first burst panics; later ones keep the panic going instead of draining and cold-starting again.
    assert values[-300:] == [8] * 300
    assert decisions[-1].panic


def test_short_spikes_around_an_instance_boundary_do_not_thrash() -> None:
    # 3 s at 8, 9 s at 1: a stable mean of 2.75 that the 6 s panic window swings around.
    flapping = ([8] * 3 + [1] * 9) * 60
    values = desired(run(config(), [3] * 120 + flapping)[120:])
    naive = [math.ceil(load) for load in flapping]
    assert changes(naive) == 119
    assert changes(values) == 1
    assert values[-600:] == [3] * 600


def test_cold_start_backlog_asks_for_the_total_once_and_counts_starting_instances() -> None:
    cfg = config(max_instances=3)
    first = decide(cfg, Observation(0, 8, ready=0, starting=0, last_request_at=0), PolicyState())
    assert first.desired == 3  # 8 queued, target 1, max 3
    state = first.state
    for now in range(1, 30):  # the 3 load for 30 s; the queue grows meanwhile
        decision = decide(cfg, Observation(now, 8 + now, ready=0, starting=3, last_request_at=now), state)
        assert decision.desired == 3
        state = decision.state
    ready = decide(cfg, Observation(30, 38, ready=3, starting=0, last_request_at=30), state)
    assert ready.desired == 3


def test_cold_start_backlog_without_a_max_does_not_add_on_top_of_starting_instances() -> None:
    cfg = config(max_instances=100)
    state = decide(cfg, Observation(0, 8, ready=0, starting=0, last_request_at=0), PolicyState()).state
    assert state.desired == 8
    assert state.panic_until == 60  # zero capacity: any load panics, for one stable window
    for now in range(1, 30):
        decision = decide(cfg, Observation(now, 8, ready=0, starting=8, last_request_at=0), state)
        assert decision.desired == 8
        # 8 starting are capacity: 8 wanted is not 2 × 8, so the panic is not re-armed tick after tick.
        assert decision.state.panic_until == 60
        state = decision.state


def test_min_instances_stay_warm_when_idle() -> None:
    cfg = config(min_instances=2, idle_timeout_s=60)
    assert desired(run(cfg, [0] * 30)) == [2] * 30  # never a request
    values = desired(run(cfg, [0] * 10 + [12] * 20 + [0] * 300))
    assert max(values) == 12
    assert values[-1] == 2
    assert min(values) == 2


def test_max_instances_clamps_every_decision() -> None:
    decisions = run(config(max_instances=5), [1000] * 200 + [0] * 10)
    assert desired(decisions) == [5] * 210
    assert decisions[0].panic


def test_panic_never_scales_down() -> None:
    decisions = run(config(), [2] * 120 + [10] * 10 + [1] * 200)
    values = desired(decisions)
    assert values[119] == 2
    assert values[120:126] == [4, 5, 6, 8, 9, 10]
    in_panic = [d.desired for d in decisions[120:] if d.panic]
    assert in_panic == sorted(in_panic)  # never down while panicking
    # The load fell to 1 at t=130; the panic holds 10 until one stable window after its last panicking
    # tick, then the scale-down delay runs, then it halves down to what the stable window asks.
    end_of_panic = next(t for t in range(121, len(decisions)) if not decisions[t].panic)
    assert end_of_panic == 190
    assert values[125:250] == [10] * 125
    assert values[250:253] == [5, 3, 2]
    assert values[-1] == 1


def test_scale_down_waits_for_the_delay_at_each_level() -> None:
    cfg = config(scale_down_delay_s=30)
    warm = run(cfg, [6] * 120)
    assert warm[-1].desired == 6 and not warm[-1].panic
    # From t=120 the load is 1 (requests keep coming). The stable mean asks for 5 at t=131, for 2 at t=167.
    decisions = run(cfg, [1] * 180, start=120, state=warm[-1].state)
    assert decisions[11].state.lower_since == 131
    steps = [(120 + i, d.desired) for i, d in enumerate(decisions) if d.desired != decisions[i - 1].desired and i]
    # 30 s after it first asked for fewer: half (3, all it asks then). Asking for fewer again from t=167:
    # 30 s later, and from there at most halving per tick while it keeps asking for fewer.
    assert steps == [(161, 3), (197, 2), (198, 1)]


def test_scale_down_rate_near_one_still_steps_down_one_at_a_time() -> None:
    cfg = config(max_scale_down_rate=1.1, scale_down_delay_s=0)
    state = PolicyState(desired=5)
    values = []
    for now in range(4):
        decision = decide(cfg, Observation(now, 0, ready=state.desired, starting=0, last_request_at=now), state)
        values.append(decision.desired)
        state = decision.state
    assert values == [4, 3, 2, 1]


def test_load_never_scales_to_zero_even_long_after_the_last_request() -> None:
    cfg = config(idle_timeout_s=600)
    decision = decide(cfg, Observation(10_000, 1, ready=1, starting=0, last_request_at=0), PolicyState(desired=1))
    assert decision.desired == 1  # one long request still in flight


def test_scale_to_zero_grace_keeps_one_until_the_idle_timeout() -> None:
    cfg = config(idle_timeout_s=600)
    state = PolicyState(desired=1)
    grace = decide(cfg, Observation(699, 0, ready=1, starting=0, last_request_at=100), state)
    assert grace.desired == 1
    gone = decide(cfg, Observation(700, 0, ready=1, starting=0, last_request_at=100), grace.state)
    assert gone.desired == 0


def test_samples_are_pruned_to_the_stable_window() -> None:
    cfg = config()
    decisions = run(cfg, [(i * 7) % 13 for i in range(10_000)])
    last = decisions[-1].state
    assert len(last.samples) == 60
    assert last.samples[0][0] == 9_999 - 59
    assert max(len(d.state.samples) for d in decisions) == 60
    # Four decisions a second: four times the samples, still bounded by the window.
    state = PolicyState()
    for i in range(4_000):
        state = decide(cfg, Observation(i / 4, 3, ready=3, starting=0, last_request_at=i / 4), state).state
    assert len(state.samples) == 240


def test_decide_is_deterministic_and_leaves_its_input_alone() -> None:
    cfg = config()
    state = run(cfg, [3] * 30 + [9] * 5)[-1].state
    before = PolicyState(state.samples, state.panic_until, state.desired, state.lower_since)
    observation = Observation(35, 9, ready=3, starting=2, last_request_at=35)
    assert decide(cfg, observation, state) == decide(cfg, observation, state)
    assert state == before


def test_float_noise_does_not_ask_for_an_extra_instance() -> None:
    cfg = config(target_concurrency=0.1)
    assert decide(cfg, Observation(0, 0.3, ready=3, starting=0, last_request_at=0), PolicyState()).desired == 3


@pytest.mark.parametrize(
    "overrides",
    [
        {"target_concurrency": 0},
        {"min_instances": 3, "max_instances": 2},
        {"max_scale_down_rate": 0.5},
        {"stable_window_s": 0},
        {"scale_down_delay_s": -1},
    ],
)
def test_a_config_that_cannot_work_is_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        config(**overrides)
