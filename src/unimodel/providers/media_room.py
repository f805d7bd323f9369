"""Room for fetched media under `[media] max_inflight_bytes`: the bytes every request of the process holds
together (`InflightBytes`, granted first come first served) and what one request holds (`MediaHold`, given back
whole when its `with` block ends). media.py's fetcher asks for room before it reads a byte."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType
from typing import Protocol


class Gauge(Protocol):
    """What InflightBytes reports its level to (a prometheus_client Gauge)."""

    def inc(self, amount: float = ...) -> None: ...

    def dec(self, amount: float = ...) -> None: ...


class InflightBytes:
    """Fetched image bytes that the requests of this process hold together, kept under `capacity`.

    Room is granted in arrival order: a large request at the head of the line is not overtaken by smaller ones
    behind it, so none starves. Each request asks once for all it may need and never waits while holding room,
    so requests cannot deadlock each other.
    """

    def __init__(self, capacity: int, gauge: Gauge | None = None) -> None:
        self.capacity = capacity
        self.used = 0
        self.peak = 0  # the most ever held at once (tests, diagnostics)
        self.queued = 0  # requests that ever had to wait
        self._line: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._gauge = gauge

    @property
    def waiting(self) -> int:
        return sum(1 for _, future in self._line if not future.done())

    async def acquire(self, size: int, wait_s: float) -> None:
        """Take `size` bytes, waiting up to `wait_s` behind earlier requests; TimeoutError when none opened."""
        if not 0 < size <= self.capacity:
            raise ValueError(f"cannot hold {size} bytes under a cap of {self.capacity}")
        if not self._line and self.used + size <= self.capacity:
            self._take(size)
            return
        self.queued += 1
        entry = (size, asyncio.get_running_loop().create_future())
        self._line.append(entry)
        try:
            async with asyncio.timeout(wait_s):
                await entry[1]
        except BaseException:  # timed out or cancelled: leave the line, or give back what came as we left
            if entry[1].done() and not entry[1].cancelled():
                self.release(size)
            else:
                with contextlib.suppress(ValueError):
                    self._line.remove(entry)
                self._grant()  # the head may have left: those behind it may fit now
            raise

    def release(self, size: int) -> None:
        self.used -= size
        if self._gauge is not None:
            self._gauge.dec(size)
        self._grant()

    def _take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)
        if self._gauge is not None:
            self._gauge.inc(size)

    def _grant(self) -> None:
        while self._line:
            size, future = self._line[0]
            if future.done():  # its request was cancelled and has not yet left the line
                self._line.popleft()
                continue
            if self.used + size > self.capacity:
                return
            self._line.popleft()
            self._take(size)
            future.set_result(None)


class MediaHold:
    """The room one request holds under `[media] max_inflight_bytes`; its `with` block gives all of it back,
    however the request ends (answer, error, cancellation)."""

    def __init__(self, gate: InflightBytes) -> None:
        self._gate = gate
        self.held = 0

    async def reserve(self, size: int, wait_s: float) -> None:
        if self.held:
            raise RuntimeError("a request reserves once: waiting for more while holding some could deadlock")
        await self._gate.acquire(size, wait_s)
        self.held = size

    def shrink_to(self, size: int) -> None:
        if size < self.held:
            self._gate.release(self.held - size)
            self.held = size

    def __enter__(self) -> MediaHold:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shrink_to(0)
