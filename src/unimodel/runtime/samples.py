"""Recent timings of a model's requests (time waiting for a slot, time on an instance), for the cluster status's
percentiles: a bounded window, so a busy model's memory stays flat."""

from __future__ import annotations

import math
from collections import deque

MAX_SAMPLES = 2048


class Samples:
    """The latest values with the (monotonic) time each was taken; percentiles over those of the last `window_s`."""

    def __init__(self, maxlen: int = MAX_SAMPLES) -> None:
        self._items: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, at: float, value: float) -> None:
        self._items.append((at, value))

    def recent(self, now: float, window_s: float) -> list[float]:
        return sorted(value for at, value in self._items if now - at <= window_s)

    @staticmethod
    def percentile(ordered: list[float], p: float) -> float | None:
        """The nearest-rank percentile of sorted values (None when there are none)."""
        if not ordered:
            return None
        return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]
