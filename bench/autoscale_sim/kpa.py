"""A port of Knative Serving's KPA (Knative Pod Autoscaler), its defaults and its metric pipeline.

Read from github.com/knative/serving (main, commit 98e5ef90, 2026-08-21); ported, not copied:

- ``pkg/autoscaler/aggregation/bucketing.go`` — ``TimedFloat64Buckets`` (``Record``, ``WindowAverage``,
  ``IsEmpty``): 1-s buckets in a ring; an average over a partial window until one window has data; a gap
  with no records leaves the average over the buckets written so far (it does not decay), and a whole window
  without records makes it 0. Ported as :class:`TimedBuckets`.
- ``pkg/autoscaler/metrics/collector.go`` — the collector scrapes every ``scrapeTickInterval`` (1 s) and
  records each stat into a stable-window and a panic-window bucket set (``record``; several stats in one
  second add up). ``StableAndPanicConcurrency`` answers ``ErrNoData`` when the stable buckets are empty.
- ``pkg/activator/handler/concurrency_reporter.go`` — the activator reports its average concurrency every
  ``reportInterval`` (1 s); the first request for a revision it has no stats for is reported at once as
  concurrency 1 (and subtracted from the next report); a report with 0 concurrency drops the revision's stats.
- ``pkg/autoscaler/scaling/multiscaler.go`` — the decider ticks every ``tickInterval`` (2 s); ``Poke`` runs it
  at once when a stat with non-zero concurrency arrives while the last desired scale is 0.
- ``pkg/autoscaler/scaling/autoscaler.go`` — ``autoscaler.Scale``, the decision function, ported line by line
  in :meth:`Kpa.scale` (ready pods only, ``max(1, ready)``, max scale-up/-down rates, panic threshold on the
  panic window, the panic state that never scales down, excess burst capacity).
- ``pkg/reconciler/autoscaling/kpa/scaler.go`` — ``scaler.scale`` / ``handleScaleToZero``: bounds, then zero only
  once the PA has been active for a stable window (it is marked inactive instead), and inactive for the
  scale-to-zero grace period or backed by the activator (SKS in proxy mode) for that long.
- ``pkg/reconciler/autoscaling/kpa/kpa.go`` — ``ReconcileKind`` (the SKS is in serve mode only while
  ``want > 0`` and excess burst capacity ≥ 0, else proxy mode: the activator is in the path) and
  ``computeActiveCondition`` (active / activating / inactive).
- ``pkg/reconciler/autoscaling/resources/target.go`` — ``ResolveMetricTarget``: with a container-concurrency
  hard limit the target is limit × container-concurrency-target-percentage.
- ``pkg/autoscaler/config/config.go`` — ``defaultConfig``: the defaults in :class:`KpaSettings`.

Simplifications: every request passes through one metric pipeline whose per-second stat is the exact
time-weighted concurrency (in flight + waiting) of that second, i.e. the scraper samples every pod; the PA
reconciler runs right after each decider tick (Knative re-enqueues it on decider changes and after delays of a
few seconds); the activator probe always succeeds; the revision starts scaled to zero (decider desired scale 0,
PA inactive) rather than freshly created at its initial scale of 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim import Simulation

__all__ = ["Kpa", "KpaSettings", "TimedBuckets"]


@dataclass(frozen=True, slots=True)
class KpaSettings:
    """``config-autoscaler`` defaults (``defaultConfig`` in pkg/autoscaler/config/config.go)."""

    stable_window_s: float = 60.0  # stable-window
    panic_window_percentage: float = 10.0  # panic-window-percentage: the panic window is 6 s
    panic_threshold_percentage: float = 200.0  # panic-threshold-percentage
    target_fraction: float = 0.7  # container-concurrency-target-percentage (70 %)
    max_scale_up_rate: float = 1000.0  # max-scale-up-rate
    max_scale_down_rate: float = 2.0  # max-scale-down-rate
    target_burst_capacity: float = 211.0  # target-burst-capacity
    scale_to_zero_grace_s: float = 30.0  # scale-to-zero-grace-period
    scale_to_zero_pod_retention_s: float = 0.0  # scale-to-zero-pod-retention-period
    scale_down_delay_s: float = 0.0  # scale-down-delay (0: no delay window)
    initial_scale: int = 1  # initial-scale (only the active threshold uses it here)
    tick_s: float = 2.0  # tickInterval in multiscaler.go
    bucket_s: float = 1.0  # config.BucketSize; also the scrape and activator report intervals

    @property
    def panic_window_s(self) -> float:
        return self.stable_window_s * self.panic_window_percentage / 100.0


class TimedBuckets:
    """``TimedFloat64Buckets``: a window average over fixed-size time buckets (times in seconds)."""

    def __init__(self, window_s: float, granularity_s: float) -> None:
        self.window = window_s
        self.granularity = granularity_s
        self.buckets = [0.0] * math.ceil(window_s / granularity_s)
        self.first_write: float | None = None
        self.last_write = -math.inf
        self.total = 0.0

    def _truncate(self, t: float) -> float:
        return math.floor(t / self.granularity) * self.granularity

    def _index(self, t: float) -> int:
        return math.floor(t / self.granularity)

    def is_empty(self, now: float) -> bool:
        return self._truncate(now) - self.last_write > self.window

    def record(self, now: float, value: float) -> None:
        bucket_time = self._truncate(now)
        write = self._index(now)
        n = len(self.buckets)
        if self.last_write != bucket_time:
            if bucket_time + self.window > self.last_write:
                if self.first_write is None or self.first_write > bucket_time:
                    self.first_write = bucket_time
                if bucket_time > self.last_write:
                    if bucket_time - self.last_write >= self.window:
                        # No writes for a whole window: start over (partial window again).
                        self.first_write = bucket_time
                        self.buckets = [0.0] * n
                        self.total = 0.0
                    else:
                        for i in range(self._index(self.last_write) + 1, write + 1):
                            self.total -= self.buckets[i % n]
                            self.buckets[i % n] = 0.0
                    self.last_write = bucket_time
            else:
                return  # older than a window: ignored
        self.buckets[write % n] += value
        self.total += value

    def average(self, now: float) -> float:
        """``WindowAverage``."""
        now = self._truncate(now)
        n = len(self.buckets)
        d = now - self.last_write
        if d <= 0:
            assert self.first_write is not None
            valid = min(int((self.last_write - self.first_write) / self.granularity) + 1, n)
            return round(self.total / valid, 6)
        if d < self.window:
            assert self.first_write is not None
            start, end = self._index(self.last_write), self._index(now)
            total = self.total
            for i in range(start + 1, end + 1):
                total -= self.buckets[i % n]
            valid = min(int((self.last_write - self.first_write) / self.granularity) + 1, n - (end - start))
            return round(total / valid, 6)
        return 0.0


class Kpa:
    """Knative's KPA on the simulation: collector, activator reports, decider and PA reconciler."""

    def __init__(self, settings: KpaSettings, *, instance_concurrency: int, min_scale: int, max_scale: int) -> None:
        self.name = "kpa"
        self.settings = settings
        # ResolveMetricTarget: total = containerConcurrency; target = max(TargetMin 0.01, total × fraction).
        self.total_value = float(instance_concurrency)
        self.target_value = max(0.01, self.total_value * settings.target_fraction)
        self.panic_threshold = settings.panic_threshold_percentage / 100.0
        self.min_scale, self.max_scale = min_scale, max_scale
        self.stable = TimedBuckets(settings.stable_window_s, settings.bucket_s)
        self.panic = TimedBuckets(settings.panic_window_s, settings.bucket_s)
        # autoscaler state (newAutoscaler with 0 ready pods: not panicking)
        self.panic_time: float | None = None
        self.max_panic_pods = 0
        # decider status: the revision sits at zero
        self.desired_scale = 0
        self.excess_burst_capacity = 0.0
        # PA status
        self.active_state = "inactive"  # active | activating | inactive
        self.active_since = -math.inf
        self.sks_proxy_since: float | None = -math.inf  # SKS in proxy mode since (None: serve mode)
        self.scale_target_initialized = True
        # activator reporting
        self.activator_has_stats = False
        self.first_request_adjust = 0.0
        self._last_area = 0.0
        self.decisions = 0
        self.panic_ticks = 0

    # ── wiring ────────────────────────────────────────────────────────────

    def start(self, sim: Simulation) -> None:
        sim.at(self.settings.bucket_s, lambda: self._scrape(sim))
        sim.at(self.settings.tick_s, lambda: self._tick(sim))

    def on_arrival(self, sim: Simulation, waiting: bool) -> None:
        if not self.activator_has_stats and self.sks_proxy_since is not None:
            # concurrency_reporter.getOrCreateStat: the first request is reported at once as concurrency 1,
            # and the autoscaler is poked (MultiScaler.Poke) if its last desired scale was 0.
            self.activator_has_stats = True
            self.first_request_adjust = 1.0
            self._record(sim.now, 1.0)
            if self.desired_scale == 0:
                self._decide_and_apply(sim)

    def _record(self, now: float, concurrency: float) -> None:
        self.stable.record(now, concurrency)
        self.panic.record(now, concurrency)

    def _scrape(self, sim: Simulation) -> None:
        """One second of stats: the time-weighted concurrency of the last second. Pods report while any
        exists (zeros included); the activator reports while it has stats for the revision."""
        area = sim.area()
        average = (area - self._last_area) / self.settings.bucket_s
        self._last_area = area
        pods = sum(1 for i in sim.alive.values() if i.state in ("starting", "ready", "draining"))
        if self.sks_proxy_since is not None and self.activator_has_stats:
            adjusted = max(average - self.first_request_adjust, 0.0)
            self.first_request_adjust = 0.0
            if average == 0:
                self.activator_has_stats = False  # computeReport: no activity for a whole period
            self._record(sim.now, adjusted)
        elif pods:
            self._record(sim.now, average)
        sim.at(sim.now + self.settings.bucket_s, lambda: self._scrape(sim))

    def _tick(self, sim: Simulation) -> None:
        self._decide_and_apply(sim)
        sim.at(sim.now + self.settings.tick_s, lambda: self._tick(sim))

    def _decide_and_apply(self, sim: Simulation) -> None:
        result = self.scale(sim.now, ready=sim.count("ready"))
        if result is not None:
            self.desired_scale, self.excess_burst_capacity = result
        self._reconcile(sim)

    # ── autoscaler.Scale ──────────────────────────────────────────────────

    def scale(self, now: float, *, ready: int) -> tuple[int, float] | None:
        """``autoscaler.Scale``: (desired pod count, excess burst capacity), or None (no data: invalid)."""
        s = self.settings
        ready_count = max(1.0, float(ready))
        if self.stable.is_empty(now):
            return None  # ErrNoData
        observed_stable = self.stable.average(now)
        observed_panic = self.panic.average(now)
        self.decisions += 1
        max_scale_up = math.ceil(s.max_scale_up_rate * ready_count)
        max_scale_down = math.floor(ready_count / s.max_scale_down_rate)  # Reachable
        dspc = math.ceil(observed_stable / self.target_value)
        dppc = math.ceil(observed_panic / self.target_value)
        desired_stable = int(min(max(dspc, max_scale_down), max_scale_up))
        desired_panic = int(min(max(dppc, max_scale_down), max_scale_up))
        over_threshold = dppc / ready_count >= self.panic_threshold
        if self.panic_time is None and over_threshold:
            self.panic_time = now  # PANICKING
        elif over_threshold:
            self.panic_time = now  # still over: extend
        elif self.panic_time is not None and self.panic_time + s.stable_window_s < now:
            self.panic_time = None  # un-panicking
            self.max_panic_pods = 0
        desired = desired_stable
        if self.panic_time is not None:
            self.panic_ticks += 1
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)  # never down in panic
            desired = self.max_panic_pods
        # scale-down-delay is 0 by default: no delay window.
        if s.target_burst_capacity == 0:
            excess = 0.0
        elif s.target_burst_capacity > 0:
            excess = math.floor(ready * self.total_value - s.target_burst_capacity - observed_panic)
        else:
            excess = -1.0
        return desired, excess

    # ── the PA reconciler (scaler.scale, handleScaleToZero, ReconcileKind) ─

    def _reconcile(self, sim: Simulation) -> None:
        now = sim.now
        desired = self.desired_scale
        want = desired
        if desired >= 0:
            want = min(max(desired, self.min_scale), self.max_scale)  # applyBounds
            want, apply = self._handle_scale_to_zero(now, want)
            if apply:
                sim.scale_to(want)
        # ReconcileKind: the activator leaves the path only while want > 0 and there is excess burst capacity.
        serve = want > 0 and self.excess_burst_capacity >= 0
        if serve:
            self.sks_proxy_since = None
        elif self.sks_proxy_since is None:
            self.sks_proxy_since = now
        self._compute_active(now, want, ready=sim.count("ready"))

    def _handle_scale_to_zero(self, now: float, desired: int) -> tuple[int, bool]:
        s = self.settings
        if desired != 0:
            return desired, True
        if self.active_state == "activating":
            return -1, False  # scaleUnknown until the activation times out (never here: starts never fail)
        if self.active_state == "active":
            if now - self.active_since >= s.stable_window_s:
                return 0, False  # mark inactive first; scale to zero on a later reconcile
            return 1, True  # at most 1 for the rest of the stable window
        # inactive: backed by the activator (the probe succeeds) for the grace period, or inactive that long
        grace = max(s.scale_to_zero_grace_s, s.scale_to_zero_pod_retention_s)
        if now - self.active_since >= grace:
            return 0, True
        if self.sks_proxy_since is not None and s.scale_to_zero_grace_s - (now - self.sks_proxy_since) <= 0:
            return 0, True  # fast path: in proxy mode for the grace period already
        return 0, False

    def _compute_active(self, now: float, want: int, *, ready: int) -> None:
        min_ready = 1  # activeThreshold: max(min-scale 0, 1) once the scale target is initialized
        state = self.active_state
        if want == 0:
            new = "inactive"
        elif ready < min_ready:
            new = "activating" if want > 0 or state != "inactive" else "inactive"
        else:
            new = "active" if want > 0 or state != "inactive" else state
        if new != state:
            self.active_state, self.active_since = new, now
