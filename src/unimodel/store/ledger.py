"""The usage ledger: request records buffered in memory and written in batches, off the request path.

A request handler calls `record()`, which only appends to a deque. A background task writes batches through
`asyncio.to_thread(store.write_usage, batch)` every `flush_interval_s`, or as soon as `flush_batch` records wait.
When the database is unreachable the records stay in memory and the writes are retried with backoff; past
`max_buffered` the OLDEST records are dropped (and counted): the newest say most about what is going on now, and
dropping from the head keeps `record()` O(1). One warning is logged when the store becomes unreachable, one info
line when it comes back.

A batch the database refuses (a bad value, not an outage) is split in halves, recursively, so that one bad record
cannot take the others with it: every record that can be written is, and a record refused on its own is
rejected — counted in `rejected` (not `dropped`, which counts records lost to a full buffer or to shutdown),
logged with its request id and the reason, and reported by `recent_rejection()` for `rejected_window_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from ..config import StoreConfig
from .types import StoreError, StoreUnavailable, UsageRecord

log = logging.getLogger("unimodel.store.ledger")

# After a record is rejected, readiness reports the ledger degraded this long: long enough for a probe or an
# operator to see it, short enough that one bad record does not mark a gateway degraded for good.
REJECTED_WINDOW_S = 300.0
_REJECTIONS_LOGGED = 10  # rejected records logged one by one per batch; the rest in one summary line


class UsageWriter(Protocol):
    def write_usage(self, records: Sequence[UsageRecord]) -> None: ...


class UsageLedger:
    """Buffered, batched usage writes. Use from the event loop's thread: `record()` is not thread-safe."""

    def __init__(
        self,
        store: UsageWriter,
        *,
        flush_interval_s: float = 1.0,
        flush_batch: int = 1000,
        max_buffered: int = 100_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        close_timeout_s: float = 10.0,
        rejected_window_s: float = REJECTED_WINDOW_S,
    ) -> None:
        self._store = store
        self._interval = flush_interval_s
        self._batch_size = max(1, flush_batch)
        self._max = max(1, max_buffered)
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._close_timeout = close_timeout_s
        self.rejected_window_s = rejected_window_s
        self._queue: deque[UsageRecord] = deque()
        self._inflight: list[UsageRecord] = []  # taken from the queue, not yet written: retried first
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()  # one write at a time: flush(), the writer task and aclose() share the batch
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._overflow_logged = False
        self._last_rejected_at: float | None = None  # time.monotonic()
        self.dropped = 0  # lost to a full buffer, or to shutdown with the store unreachable
        self.rejected = 0  # refused by the database on their own: never written
        self.written = 0
        self.healthy = True  # the store was reachable at the last write
        self.last_error: str | None = None  # why the store is unreachable
        self.last_rejection: str | None = None  # why the last rejected record was refused

    @classmethod
    def from_config(cls, store: UsageWriter, config: StoreConfig) -> UsageLedger:
        return cls(
            store,
            flush_interval_s=config.flush_interval_s,
            flush_batch=config.flush_batch,
            max_buffered=config.max_buffered,
        )

    @property
    def buffered(self) -> int:
        """Records waiting to be written."""
        return len(self._queue) + len(self._inflight)

    def record(self, rec: UsageRecord) -> None:
        """Queue one record. O(1); never blocks, never raises, never touches the database."""
        if self._closed:
            self.dropped += 1
            return
        if self.buffered >= self._max:
            self.dropped += 1
            if not self._queue:  # the whole buffer is the batch being retried: the new record is the one to go
                return
            self._queue.popleft()
            if not self._overflow_logged:
                self._overflow_logged = True
                log.warning("usage buffer full (%d records): dropping the oldest records", self._max)
        self._queue.append(rec)
        if len(self._queue) >= self._batch_size and self.healthy and not self._wake.is_set():
            self._wake.set()

    async def start(self) -> None:
        """Start the background writer (on the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="usage-ledger")

    def recent_rejection(self) -> str | None:
        """Why the last rejected record was refused, if one was in the past `rejected_window_s` seconds; else None."""
        if self._last_rejected_at is None or time.monotonic() - self._last_rejected_at > self.rejected_window_s:
            return None
        return self.last_rejection

    async def flush(self) -> None:
        """Write everything buffered now (records the database refuses are rejected, see the module's docstring);
        raises StoreError when the database cannot be reached."""
        while self.buffered:
            if not await self._write_one_batch():
                raise StoreError(self.last_error or "usage write failed")

    async def aclose(self) -> None:
        """Stop the writer and write what is buffered. With the database down, keep trying for `close_timeout_s`,
        then log how many records are lost (they are counted in `dropped`)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self._close_timeout
        if self._task is not None:
            self._wake.set()  # the writer finishes the write under way (never cut: it would be written twice)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self._close_timeout)
            except TimeoutError:
                self._task.cancel()
            self._task = None
        backoff = self._retry_initial
        while self.buffered:
            if await self._write_one_batch():
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, self._retry_max)
        if self.buffered:
            lost = self.buffered
            self.dropped += lost
            self._queue.clear()
            self._inflight = []
            log.error("usage store unreachable at shutdown: %d usage records lost (%s)", lost, self.last_error)

    async def _run(self) -> None:
        backoff = self._retry_initial
        while not self._closed:
            # Healthy: wake every interval, or when a batch is full. Failing: wait out the backoff.
            wait = self._interval if self.healthy else backoff
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()
            while self.buffered and not self._closed and await self._write_one_batch():
                pass
            backoff = self._retry_initial if self.healthy else min(backoff * 2, self._retry_max)

    async def _write_one_batch(self) -> bool:
        """Write the in-flight batch (or the next one); False when the write failed and the records were kept."""
        async with self._writing:
            return await self._write_locked()

    async def _write_locked(self) -> bool:
        if not self._inflight:
            take = min(self._batch_size, len(self._queue))
            self._inflight = [self._queue.popleft() for _ in range(take)]
        batch = self._inflight
        if not batch:
            return True
        # Parts still to write, in order; they always make up batch[done:], so the in-flight records stay exact
        # however far the splitting got when the store became unreachable.
        pending = [batch]
        done = 0
        rejected: list[tuple[UsageRecord, str]] = []
        try:
            while pending:
                part = pending[0]
                try:
                    await asyncio.to_thread(self._store.write_usage, part)
                except StoreUnavailable as e:
                    self._failed(str(e))
                    return False
                except Exception as e:  # refused (a bad value, or a bug): split, and reject what fails alone
                    if len(part) > 1:
                        pending[0:1] = [part[: len(part) // 2], part[len(part) // 2 :]]
                        continue
                    rejected.append((part[0], _refusal(e)))
                else:
                    self.written += len(part)
                    self._reachable()
                pending.pop(0)
                done += len(part)
        finally:
            self._inflight = batch[done:]
            if rejected:
                self._rejected(rejected)
        return True

    def _reachable(self) -> None:
        if not self.healthy:
            self.healthy = True
            self._overflow_logged = False
            log.info("usage store reachable again; writing %d buffered records", self.buffered)
        self.last_error = None

    def _rejected(self, records: list[tuple[UsageRecord, str]]) -> None:
        self.rejected += len(records)
        self._last_rejected_at = time.monotonic()
        self.last_rejection = records[-1][1]
        for rec, why in records[:_REJECTIONS_LOGGED]:
            log.error("usage record of request %s rejected by the store, not written: %s", _shown(rec.request_id), why)
        if len(records) > _REJECTIONS_LOGGED:
            log.error(
                "%d more usage records of the same batch rejected by the store (the last: %s)",
                len(records) - _REJECTIONS_LOGGED,
                self.last_rejection,
            )

    def _failed(self, message: str) -> None:
        self.last_error = message
        if self.healthy:
            self.healthy = False
            log.warning("usage store unreachable: %s; %d records buffered", message, self.buffered)


def _refusal(error: Exception) -> str:
    """The reason a write failed, fit for a log line and /readyz (StoreError messages name no secret)."""
    return str(error) if isinstance(error, StoreError) else f"{type(error).__name__} while writing usage"


def _shown(request_id: str) -> str:
    """A request id as a log line may show it: quoted, control characters escaped, bounded."""
    return ascii(request_id[:80])
