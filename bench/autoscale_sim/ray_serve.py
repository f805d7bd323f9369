"""A port of Ray Serve's default autoscaling policy, its defaults and its metric pipeline.

Read from github.com/ray-project/ray (master as stored in mid-2026); ported, not copied:

- ``python/ray/serve/autoscaling_policy.py`` — ``replica_queue_length_autoscaling_policy`` (the
  ``default_autoscaling_policy``) and ``_core_replica_queue_length_policy``: desired = current replicas × total
  requests / (target_ongoing_requests × current replicas); ``_get_cold_start_scale_up_replicas``: with 0 running
  replicas and any request, at once max(ceil(upscaling_factor), target); ``_apply_autoscaling_config`` /
  ``_apply_default_params``: ``_apply_scaling_factors`` (the upscaling/downscaling factor on the difference to
  the current count), then ``_apply_delay_logic``: a scale-up applies once it has been wanted continuously for
  ``upscale_delay_s``, a scale-down once wanted for ``downscale_delay_s`` (``downscale_to_zero_delay_s`` for
  1 → 0; other scale-downs keep at least 1), measured with timestamps, any change of direction resetting it.
  (Older releases had the same logic in ``_calculate_desired_num_replicas`` with a ``smoothing_factor``, and
  counted control-loop periods instead of timestamps.)
- ``python/ray/serve/_private/autoscaling_state.py`` — ``DeploymentAutoscalingState``: the policy wrapped by
  ``_apply_autoscaling_config``, its decision clipped to [min_replicas, max_replicas] (``apply_bounds``);
  ``current_num_replicas`` = the RUNNING replicas (not starting, not stopping); ``get_total_num_requests`` in
  its default (simple) mode: the handle's queued requests plus, for each running replica, the handle's average
  of the requests it had sent there over ``look_back_period_s``.
- ``python/ray/serve/_private/router.py`` — ``RouterMetricsManager``: metrics are collected on the handle
  (``RAY_SERVE_COLLECT_AUTOSCALING_METRICS_ON_HANDLE`` on by default): every
  ``RAY_SERVE_HANDLE_AUTOSCALING_METRIC_RECORD_INTERVAL_S`` (0.5 s) it records the queued count and the requests
  in flight per replica; every ``metrics_interval_s`` (10 s) it pushes the current queued count and, per replica,
  the window average over ``look_back_period_s`` (or the current count when that is 0 or missing) to the
  controller; and at once when a request queues while it knows no running replica
  (``should_send_scaled_to_zero_optimized_push``).
- ``python/ray/serve/config.py`` — ``AutoscalingConfig`` defaults; ``python/ray/serve/_private/constants.py`` —
  ``DEFAULT_TARGET_ONGOING_REQUESTS`` (2), ``DEFAULT_MAX_ONGOING_REQUESTS`` (5), ``CONTROL_LOOP_INTERVAL_S``
  (0.1 s), the handle record and push intervals.

Settings chosen for the comparison (documented in bench/README.md): min_replicas 0 (the default is 1) and
max_replicas the same as the other policies (the default is 1); max_ongoing_requests = the shared
instance_concurrency (the default is 5). Simplifications: one handle (the proxy's); pushes reach the controller
at once; the controller's loop runs every 0.1 s exactly; replicas drain to completion when stopped (Ray waits
``graceful_shutdown_timeout_s``, 20 s, then kills them).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from sim import Simulation

__all__ = ["RayServe", "RaySettings"]

_EPS = 1e-6  # _DELAY_ELAPSED_EPS_S


@dataclass(frozen=True, slots=True)
class RaySettings:
    """``AutoscalingConfig`` defaults, and the constants of the metric pipeline."""

    target_ongoing_requests: float = 2.0  # DEFAULT_TARGET_ONGOING_REQUESTS
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: float | None = None  # None: downscale_delay_s
    smoothing_factor: float = 1.0
    upscaling_factor: float | None = None  # None: smoothing_factor
    downscaling_factor: float | None = None  # None: smoothing_factor
    look_back_period_s: float = 30.0
    metrics_interval_s: float = 10.0  # the handle's push interval
    record_interval_s: float = 0.5  # RAY_SERVE_HANDLE_AUTOSCALING_METRIC_RECORD_INTERVAL_S
    control_loop_s: float = 0.1  # CONTROL_LOOP_INTERVAL_S

    @property
    def up_factor(self) -> float:
        return self.upscaling_factor or self.smoothing_factor

    @property
    def down_factor(self) -> float:
        return self.downscaling_factor or self.smoothing_factor


@dataclass(frozen=True, slots=True)
class _Report:
    queued: float
    running: dict[int, float]  # replica id → average requests in flight over the look-back period


class RayServe:
    """Ray Serve's default policy on the simulation: handle metrics, controller loop, policy, delays."""

    def __init__(self, settings: RaySettings, *, min_replicas: int, max_replicas: int) -> None:
        self.name = "ray"
        self.settings = settings
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.target = 0  # target_num_replicas
        self.decision_counter = 0
        self.decision_timestamp: float | None = None
        self.report: _Report | None = None  # the controller's latest handle report
        self.series: dict[int, deque[tuple[float, int]]] = {}  # the handle's in-memory metrics store
        self._loops = 0
        self._records = 0
        self._pushes = 0

    # ── wiring ────────────────────────────────────────────────────────────

    def start(self, sim: Simulation) -> None:
        sim.at(0.0, lambda: self._record(sim))
        sim.at(0.0, lambda: self._push(sim, periodic=True))
        sim.at(0.0, lambda: self._loop(sim))

    def on_arrival(self, sim: Simulation, waiting: bool) -> None:
        if waiting and sim.count("ready") == 0:
            self._push(sim, periodic=False)  # should_send_scaled_to_zero_optimized_push

    # ── the handle (RouterMetricsManager) ─────────────────────────────────

    @staticmethod
    def _sent(sim: Simulation) -> dict[int, int]:
        """num_requests_sent_to_replicas: replicas sent a request, while running or still busy."""
        return {i.id: i.in_flight for i in sim.alive.values() if i.served and (i.in_flight or i.state == "ready")}

    def _record(self, sim: Simulation) -> None:
        now = sim.now
        for rid, count in self._sent(sim).items():
            self.series.setdefault(rid, deque()).append((now, count))
        start = now - self.settings.look_back_period_s
        for rid in list(self.series):
            points = self.series[rid]
            while points and points[0][0] < start:
                points.popleft()
            if not points:
                del self.series[rid]
        self._records += 1
        sim.at(self._records * self.settings.record_interval_s, lambda: self._record(sim))

    def _push(self, sim: Simulation, *, periodic: bool) -> None:
        start = sim.now - self.settings.look_back_period_s
        running: dict[int, float] = {}
        for rid, count in self._sent(sim).items():
            points = [v for t, v in self.series.get(rid, ()) if t >= start]
            average = sum(points) / len(points) if points else 0.0
            running[rid] = average or float(count)
        self.report = _Report(queued=float(len(sim.queue)), running=running)
        if periodic:
            self._pushes += 1
            sim.at(self._pushes * self.settings.metrics_interval_s, lambda: self._push(sim, periodic=True))

    # ── the controller (DeploymentAutoscalingState) ───────────────────────

    def _loop(self, sim: Simulation) -> None:
        running = [i.id for i in sim.alive.values() if i.state == "ready"]
        total = 0.0
        if self.report is not None:
            total = self.report.queued + sum(self.report.running.get(rid, 0.0) for rid in running)
        decision = self.policy(sim.now, current=len(running), total=total)
        decision = max(self.min_replicas, min(self.max_replicas, decision))  # apply_bounds
        if decision != self.target:
            self.target = decision
            sim.scale_to(decision)
        self._loops += 1
        sim.at(self._loops * self.settings.control_loop_s, lambda: self._loop(sim))

    def policy(self, now: float, *, current: int, total: float) -> int:
        """``_apply_autoscaling_config(replica_queue_length_autoscaling_policy)`` for one control loop."""
        s = self.settings
        # _get_cold_start_scale_up_replicas: the fast path from zero, no delay.
        if current == 0 and total > 0:
            return max(math.ceil(1 * s.up_factor), self.target)
        # _core_replica_queue_length_policy
        if current == 0:
            desired: float = self.target
        else:
            desired = current * (total / (s.target_ongoing_requests * current))
        # _apply_scaling_factors
        if current == 0:
            scaled = math.ceil(desired)
        else:
            delta = desired - current
            factor = s.up_factor if delta > 0 else s.down_factor
            scaled = math.ceil(current + factor * delta)
            if math.ceil(desired) < current and scaled == current:
                scaled -= 1
        # _apply_default_params: from zero, no delay.
        if current == 0 and scaled > 0:
            return scaled
        return self._delay(now, max(0, scaled))

    def _delay(self, now: float, desired: int) -> int:
        """``_apply_delay_logic``."""
        s = self.settings
        decision = self.target
        if desired > self.target:
            if self.decision_counter < 0:
                self.decision_counter, self.decision_timestamp = 0, None
            self.decision_counter += 1
            if self.decision_timestamp is None:
                self.decision_timestamp = now
            if now - self.decision_timestamp + _EPS >= s.upscale_delay_s:
                self.decision_counter, self.decision_timestamp = 0, None
                decision = desired
        elif desired < self.target:
            if self.decision_counter > 0:
                self.decision_counter, self.decision_timestamp = 0, None
            self.decision_counter -= 1
            if self.target == 1:
                delay = s.downscale_to_zero_delay_s if s.downscale_to_zero_delay_s is not None else s.downscale_delay_s
            else:
                delay = s.downscale_delay_s
                desired = max(1, desired)
            if self.decision_timestamp is None:
                self.decision_timestamp = now
            if now - self.decision_timestamp + _EPS >= delay:
                self.decision_counter, self.decision_timestamp = 0, None
                decision = desired
        else:
            self.decision_counter, self.decision_timestamp = 0, None
        return decision
