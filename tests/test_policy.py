"""The autoscaling policy on a fake clock: `now` is a number, a tick is one second, and the "controller" in
these tests is instant (what the policy asked for at the last tick is ready now) unless a test says otherwise.

Unless a test passes `start_s`, no start time has been measured yet and the policy plans with
`assumed_start_s` (30 s): a horizon of 30 s and a scale-down hold of 60 s (the break-even of keeping an
instance: its start time plus what the start burns, `start_cost` = 1 start time).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from itertools import pairwise

import pytest

from unimodel.runtime.policy import (
    Decision,
    Observation,
    PolicyConfig,
    PolicyState,
    break_even,
    decide,
    hold,
    horizon,
)


def config(**overrides: float | None) -> PolicyConfig:
    values: dict[str, float | None] = {"min_instances": 0, "max_instances": 20, "target_concurrency": 1.0}
    values["idle_timeout_s"] = 600.0
    values.update(overrides)
    minimum, maximum = values.pop("min_instances"), values.pop("max_instances")
    assert minimum is not None and maximum is not None
    return PolicyConfig(min_instances=int(minimum), max_instances=int(maximum), **values)  # type: ignore[arg-type]


def run(
    cfg: PolicyConfig,
    loads: Sequence[float],
    *,
    start: float = 0.0,
    state: PolicyState | None = None,
    last_request_at: float | None = None,
    start_s: float | None = None,
) -> list[Decision]:
    """One decision per second over `loads` (the concurrency at each tick). A tick with load has a new
    request; the instances ready at a tick are what the previous decision asked for."""
    state = state or PolicyState()
    decisions = []
    for i, load in enumerate(loads):
        now = start + i
        if load > 0:
            last_request_at = now
        decision = decide(cfg, Observation(now, load, state.desired, 0, last_request_at, start_s), state)
        decisions.append(decision)
        state = decision.state
    return decisions


def desired(decisions: Sequence[Decision]) -> list[int]:
    return [d.desired for d in decisions]


def changes(values: Sequence[int]) -> int:
    return sum(1 for a, b in pairwise(values) if a != b)


def steps(values: Sequence[int], offset: int = 0) -> list[tuple[int, int, int]]:
    """(tick, before, after) for every change."""
    return [(offset + t, values[t - 1], values[t]) for t in range(1, len(values)) if values[t] != values[t - 1]]


# ── time scales ─────────────────────────────────────────────────────────────


def test_the_horizon_and_the_hold_follow_the_start_time() -> None:
    cfg = config()
    assert [horizon(cfg, s) for s in (0.5, 6, 20, 60, 300)] == [6, 6, 20, 60, 60]  # within [panic, stable]
    # Break-even: the start time (the replacement's slot, held while it loads) plus what the start burns.
    assert [hold(cfg, s) for s in (0.5, 20, 300)] == [1, 40, 600]
    assert [break_even(config(start_cost=c), 20) for c in (0, 0.5, 3)] == [20, 30, 80]
    assert hold(config(start_cost=0), 20) == 20  # starts that burn nothing but their time: as long as a start
    assert hold(config(scale_down_delay_s=45), 2) == 45  # a configured delay wins


def test_a_short_start_gives_back_capacity_sooner_than_a_long_one() -> None:
    # 6 concurrent requests for two minutes, then 1. The horizon average has to come down, then the hold pass.
    loads = [6] * 120 + [1] * 120
    fast = desired(run(config(), loads, start_s=2))  # horizon 6 s (the panic window), hold 4 s
    slow = desired(run(config(), loads, start_s=20))  # horizon 20 s, hold 40 s
    assumed = desired(run(config(), loads))  # nothing measured: assumed_start_s, 30 s: hold 60 s
    # One step per second once the hold has passed (fast), or as the horizon average comes down (slow).
    assert steps(fast) == [(124, 6, 5), (125, 5, 4), (126, 4, 3), (127, 3, 2), (128, 2, 1)]
    assert steps(slow) == [(162, 6, 5), (166, 5, 4), (170, 4, 3), (174, 3, 2), (178, 2, 1)]
    assert steps(assumed)[0] == (184, 6, 5)
    assert desired(run(config(), loads, start_s=30)) == assumed
    assert fast[-1] == slow[-1] == assumed[-1] == 1


def test_load_that_swings_faster_than_an_instance_starts_is_averaged_out() -> None:
    # 3 s at 8, 9 s at 1: a mean of 2.75 over any whole period. With a start of 30 s the policy averages
    # over 30 s and holds for 30 s: one level, no thrash.
    flapping = ([8] * 3 + [1] * 9) * 60
    values = desired(run(config(), [3] * 120 + flapping, start_s=30)[120:])
    naive = [math.ceil(load) for load in flapping]
    assert changes(naive) == 119
    assert changes(values) == 0
    assert values == [4] * len(values)  # ceil(2.75) at worst phase of the 30 s average, held


def test_a_dip_longer_than_the_break_even_is_followed_when_starts_are_cheap() -> None:
    # With 2 s starts (a break-even of 4 s), releasing capacity for a 30 s dip and starting it again costs less
    # than keeping it: the policy follows the load down after the horizon and the hold, and back up at once.
    loads = [8] * 60 + [1] * 30 + [8] * 30
    values = desired(run(config(), loads, start_s=2))
    assert values[59] == 8
    assert steps(values)[:2] == [(63, 8, 7), (64, 7, 6)]
    assert min(values[60:90]) == 1
    assert values[-1] == 8
    assert max(values) == 8


# ── starts that cost more than they save ────────────────────────────────────


def test_a_dip_shorter_than_the_break_even_keeps_its_instances() -> None:
    # 5 s starts: replacing an instance costs 10 s of keeping it (5 s holding a slot while it loads, 5 s of the
    # CPU the start burns). Dips to 1 of 8 s, between the start time and the break-even, are bridged: no
    # instance goes, none starts. Holding one start time only (start_cost 0, the hold before) flapped in each:
    # four instances down and up again per dip, each a start that cost more than keeping it.
    loads = ([8] * 30 + [1] * 8) * 6 + [8] * 30
    values = desired(run(config(), loads, start_s=5))
    assert values[30:] == [8] * (len(loads) - 30)
    one_start = desired(run(config(start_cost=0), loads, start_s=5))
    assert sum(1 for _, a, b in steps(one_start) if b > a) == 24
    assert min(one_start[30:]) == 4
    # A dip of 20 s, longer than the break-even, is followed: down, and up once when the load is back.
    longer = ([8] * 30 + [1] * 20) * 6 + [8] * 30
    followed = desired(run(config(), longer, start_s=5))
    assert sum(1 for _, a, b in steps(followed) if b > a) == 6
    assert min(followed[30:]) == 1


def test_a_scale_down_never_takes_capacity_that_the_requests_now_fill() -> None:
    # The averages ask for fewer (a quiet minute behind) and nothing is held, but 8 requests are in flight right
    # now: the 8 instances serving them stay. Once the load is gone they go, halving per decision.
    cfg = config(scale_down_delay_s=0)
    state = PolicyState(samples=tuple((float(t), 0.0) for t in range(60)), desired=8)
    busy = decide(cfg, Observation(60, 8, ready=8, starting=0, last_request_at=60, start_s=5), state)
    assert busy.desired == 8
    quiet = decide(cfg, Observation(61, 0, ready=8, starting=0, last_request_at=60, start_s=5), busy.state)
    assert quiet.desired == 4
    # In panic or not, a scale-down that the load agrees with now goes through.
    assert decide(cfg, Observation(60, 3, ready=8, starting=0, last_request_at=60, start_s=5), state).desired == 4


def cold_burst(cfg: PolicyConfig, *, start_s: float, gap_s: int) -> list[Decision]:
    """One request at t=0, nothing for `gap_s`, then 10 requests a second that find no instance: they wait while
    the instances the policy asks for start (`start_s`), then the ready instances drain the backlog at 50 a
    second while 50 stay in flight; then 50 in flight and nothing waiting for 200 s. target_concurrency 10: the
    load after the backlog needs 5 instances."""
    decisions: list[Decision] = []
    state = PolicyState()

    def tick(now: int, concurrency: float, waiting: int, ready: int, starting: int) -> None:
        nonlocal state
        last = float(now) if concurrency else 0.0
        decision = decide(cfg, Observation(now, concurrency, ready, starting, last, start_s, waiting), state)
        decisions.append(decision)
        state = decision.state

    tick(0, 1, 0, 0, 0)
    now = 1
    for _ in range(gap_s):
        tick(now, 0, 0, 0, 0)
        now += 1
    for k in range(int(start_s)):  # nothing ready: everything waits
        tick(now, 10 * (k + 1), 10 * (k + 1), 0, state.desired)
        now += 1
    backlog = 10 * int(start_s)
    while backlog > 50:  # the instances are ready: the backlog drains
        backlog = max(50, backlog - 50)
        ready = state.desired
        tick(now, backlog, max(0, backlog - 10 * ready), ready, 0)
        now += 1
    for _ in range(200):
        tick(now, 50, 0, state.desired, 0)
        now += 1
    return decisions


def test_a_cold_start_backlog_is_given_back_once_served_not_held() -> None:
    # 30 s starts after a 100 s idle gap (longer than the 60 s break-even): the 300 requests that piled up ask
    # for the 20 instances allowed. Nothing waits from t=132; a panic window later (138) what the backlog asked
    # for goes at once (halving), with the panic, and the horizon starts over from the panic window: 8 (the
    # backlog's last requests still in flight in its first samples), held for the break-even, then the 5 the load
    # after the backlog needs, instead of 20 for a horizon after the panic and a hold more.
    cfg = config(target_concurrency=10)
    decisions = cold_burst(cfg, start_s=30, gap_s=100)
    values = desired(decisions)
    assert max(values) == 20
    assert values[131:138] == [20] * 7
    assert steps(values[131:], 131) == [(138, 20, 10), (139, 10, 8), (199, 8, 7), (206, 7, 6), (223, 6, 5)]
    assert not decisions[138].panic
    assert values[-1] == 5


def test_a_backlog_after_a_gap_shorter_than_the_break_even_is_held_like_any_ask() -> None:
    # The same burst, but a start burns 3 start times (break-even 120 s, longer than the 100 s gap): bursts that
    # come back that soon are cheaper to bridge than to start again, so the backlog's 20 are held for the whole
    # hold after the panic that asked for them (its horizon, then 120 s).
    cfg = config(target_concurrency=10, start_cost=3)
    decisions = cold_burst(cfg, start_s=30, gap_s=100)
    values = desired(decisions)
    assert values[136:260] == [20] * 124
    assert values[-1] == 5
    assert not decisions[-1].state.backlog


# ── the behaviours of the KPA-style design ───────────────────────────────────


def test_step_up_in_load_panics_and_reaches_the_new_level_at_once() -> None:
    decisions = run(config(), [1] * 100 + [10] * 120)
    assert desired(decisions[:100]) == [1] * 100
    assert decisions[0].panic  # from zero capacity any load panics, for one horizon
    assert not any(d.panic for d in decisions[30:100])
    # Panic (3 wanted over the panic window, 1 there) at the first tick of the step; in panic the policy follows
    # the load as it is now, not the windows' averages, so it asks for the new level at once.
    assert decisions[100].panic
    assert desired(decisions[100:]) == [10] * 120
    # Still bursting while the 30 s horizon catches up (the panic window asks for twice what it does), then
    # the panic ends one horizon after its last panicking tick.
    end_of_panic = next(t for t in range(101, len(decisions)) if not decisions[t].panic)
    assert end_of_panic == 142
    assert not decisions[-1].panic


def test_step_up_with_a_short_start_panics_for_the_panic_window_only() -> None:
    decisions = run(config(), [1] * 100 + [10] * 60, start_s=5)  # horizon 6 s
    assert desired(decisions[100:]) == [10] * 60
    assert next(t for t in range(101, len(decisions)) if not decisions[t].panic) == 106


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
    last_request_at = 329  # the last tick with load
    for start_s, first in ((10, 148), (None, 208)):
        values = desired(run(cfg, loads, start_s=start_s))
        assert values[:120] == [8] * 120
        # One level down per load level, each once the horizon has seen it and the hold has passed (10 + 20 s
        # after the load fell, or 30 + 60 s with the assumed start), never more than halving, and never below
        # one instance until the idle timeout.
        expected = [(first + 30 * i, 8 - i, 7 - i) for i in range(7)] + [(last_request_at + 120, 1, 0)]
        assert steps(values) == expected
        assert all(b >= math.ceil(a / 2) for _, a, b in expected[:-1])
        assert values[last_request_at + 119] == 1
        assert values[last_request_at + 120 :] == [0] * (len(values) - last_request_at - 120)


def test_on_off_flapping_load_does_not_thrash() -> None:
    # 15 s of 8 concurrent requests, 30 s of none, for ten minutes (requests keep coming: no idle timeout).
    # With the assumed 30 s start, the 60 s hold bridges the gaps after the burst the panic answered and the next
    # one (which, with 8 there, does not panic and asks for the horizon's 4); the 8 go one hold after the panic,
    # in a gap, halved to 4, and the burst after that panics back to 8: one step down and one up per three on/off
    # cycles, never below half the burst level, where following the load would step twice per cycle and drop to
    # nothing.
    flapping = ([8] * 15 + [0] * 30) * 14
    decisions = run(config(), [4] * 120 + flapping)
    values = desired(decisions[120:])
    naive = [math.ceil(load) for load in flapping]
    assert changes(naive) == 27
    assert changes(values) == 11
    downs = [(t, a, b) for t, a, b in steps(values, offset=120) if b < a]
    assert downs == [(201, 6, 5), (208, 5, 4), (315, 8, 4), (450, 8, 4), (585, 8, 4), (720, 8, 4)]
    assert min(values[60:]) == 4
    # Compared with following every swing (2 s starts, each gap longer than a start is worth releasing):
    cheap_starts = desired(run(config(), [4] * 120 + flapping, start_s=2)[120:])
    assert changes(cheap_starts) > 3 * changes(values)


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
    assert state.panic_until == 30  # zero capacity: any load panics, for one horizon (the assumed 30 s start)
    for now in range(1, 30):
        decision = decide(cfg, Observation(now, 8, ready=0, starting=8, last_request_at=0), state)
        assert decision.desired == 8
        # 8 starting are capacity: 8 wanted is not 2 × 8, so the panic is not re-armed tick after tick.
        assert decision.state.panic_until == 30
        state = decision.state


def test_a_growing_cold_start_backlog_asks_for_one_slot_per_request_in_total() -> None:
    cfg = config(max_instances=100)
    state = PolicyState()
    starting = 0
    for now in range(10):  # 5 more requests queue every second while the instances load
        decision = decide(cfg, Observation(now, 5 + 5 * now, ready=0, starting=starting, last_request_at=now), state)
        assert decision.desired == 5 + 5 * now  # the total the queue needs, not starting + queue
        state, starting = decision.state, decision.desired


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
    assert values[120:130] == [10] * 10  # at once
    in_panic = [d.desired for d in decisions[120:] if d.panic]
    assert in_panic == sorted(in_panic)  # never down while panicking
    # The load fell to 1 at t=130; the panic holds 10 until one horizon after its last panicking tick (129),
    # the hold keeps what the panic asked for 60 s more, then it halves down to what the horizon asks.
    end_of_panic = next(t for t in range(121, len(decisions)) if not decisions[t].panic)
    assert end_of_panic == 159
    assert values[120:218] == [10] * 98
    assert values[218:222] == [5, 3, 2, 1]
    assert values[-1] == 1


def test_scale_down_waits_for_the_configured_delay() -> None:
    cfg = config(scale_down_delay_s=30)
    warm = run(cfg, [6] * 120)
    assert warm[-1].desired == 6 and not warm[-1].panic
    # From t=120 the load is 1 (requests keep coming). The 30 s horizon asks for 5 from t=124 (its mean falls
    # below 5), 4 from t=130 ... 1 from t=148; each level goes 30 s after it was last asked for.
    decisions = run(cfg, [1] * 180, start=120, state=warm[-1].state)
    values = desired(decisions)
    assert steps(values, offset=120) == [(154, 6, 5), (160, 5, 4), (166, 4, 3), (172, 3, 2), (178, 2, 1)]


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
    assert gone.state.wants == () and gone.state.panic_until is None


def test_a_burst_that_ends_is_given_back_within_a_horizon_and_a_hold_then_zero_after_the_idle_timeout() -> None:
    values = desired(run(config(idle_timeout_s=60), [10] * 60 + [0] * 120, start_s=2))
    assert values[:60] == [10] * 60
    assert steps(values) == [(63, 10, 9), (64, 9, 7), (65, 7, 5), (66, 5, 4), (67, 4, 2), (68, 2, 1), (119, 1, 0)]


def test_samples_and_wants_are_pruned_to_their_windows() -> None:
    cfg = config()
    decisions = run(cfg, [(i * 7) % 13 for i in range(10_000)])
    last = decisions[-1].state
    assert len(last.samples) == 60
    assert last.samples[0][0] == 9_999 - 59
    assert max(len(d.state.samples) for d in decisions) == 60
    assert max(len(d.state.wants) for d in decisions) == 60  # the hold: twice the assumed 30 s start
    # Four decisions a second: four times the samples, still bounded by the window.
    state = PolicyState()
    for i in range(4_000):
        state = decide(cfg, Observation(i / 4, 3, ready=3, starting=0, last_request_at=i / 4), state).state
    assert len(state.samples) == 240


def test_decide_is_deterministic_and_leaves_its_input_alone() -> None:
    cfg = config()
    state = run(cfg, [3] * 30 + [9] * 5)[-1].state
    before = dataclasses.replace(state)
    observation = Observation(35, 9, ready=3, starting=2, last_request_at=35, start_s=12)
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
        {"panic_window_s": 90},
        {"scale_down_delay_s": -1},
        {"assumed_start_s": -1},
        {"start_cost": -1},
        {"idle_timeout_s": -1},
    ],
)
def test_a_config_that_cannot_work_is_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        config(**overrides)
