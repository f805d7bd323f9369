"""Per-key rate and concurrency limits, in one process (`LocalLimiter`) or shared through Redis (`RedisLimiter`).

Rate: GCRA, the generic cell rate algorithm (as in redis-cell and Stripe's limiter). A key keeps one number, its
theoretical arrival time (TAT): the moment its quota would be fully restored if no further request came. Each
request pushes TAT one emission interval T = 1/rps further; a request is refused when that would put TAT more than
one burst (`max(1, ceil(rps))` requests, one second's worth) ahead of now. So a key may spend a second's worth at
once and then refills smoothly, one request every T: no fixed windows, hence no double burst at a window's edge,
and O(1) state per key.

Concurrency: each open-model request in flight holds a slot named by a lease id the caller makes up. Acquire is
idempotent per lease id, so a retried acquire never takes two slots. In Redis the slots are a sorted set scored by
the time of acquisition, so the slots of a process that crashed without releasing them expire after `lease_ttl_s`.

Redis is an availability dependency we refuse to add: when it is unreachable or answers with an error the limiter
fails open (allows), logs one warning per outage and one info on recovery, and reports `healthy` / `errors` for
metrics and readiness. The URL's password never reaches a log line or an exception text.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..config import LimitsConfig

log = logging.getLogger("unimodel.limits")

__all__ = [
    "Limiter",
    "LocalLimiter",
    "RateDecision",
    "RedisLimiter",
    "SlotDecision",
    "create_limiter",
    "rate_headers",
]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one `hit`, with what the `ratelimit-*` and `Retry-After` headers need."""

    allowed: bool
    limit: int  # the burst size, max(1, ceil(rps)): `ratelimit-limit`
    remaining: int  # requests that could be made right now: `ratelimit-remaining`
    reset_s: float  # seconds until the quota is fully restored: `ratelimit-reset`
    retry_after_s: float  # 0 when allowed; else seconds until one request would pass: `Retry-After`


@dataclass(frozen=True, slots=True)
class SlotDecision:
    """The outcome of one `acquire`."""

    allowed: bool
    limit: int
    in_use: int  # slots held after this acquisition (when allowed); 0 when unknown (Redis down, failing open)


class Limiter(Protocol):
    """What the gateway needs from a limiter; `LocalLimiter` and `RedisLimiter` implement it."""

    async def hit(self, key: str, rps: float) -> RateDecision:
        """Count one request against `key`'s rate; rps <= 0 is unlimited (always allowed, no state)."""
        ...

    async def acquire(self, key: str, limit: int, lease: str) -> SlotDecision:
        """Take one of `key`'s `limit` concurrency slots for `lease`; limit <= 0 is unlimited."""
        ...

    async def release(self, key: str, lease: str) -> None:
        """Give back the slot `lease` holds (no-op if it holds none)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the limiter is not used afterwards."""
        ...


def _burst(rps: float) -> int:
    return max(1, math.ceil(rps))


def _unlimited_rate() -> RateDecision:
    return RateDecision(allowed=True, limit=0, remaining=0, reset_s=0.0, retry_after_s=0.0)


def rate_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    """Raw ASGI header pairs for a decision: `ratelimit-limit/-remaining/-reset`, plus `retry-after` when refused.

    Values are whole seconds (the IETF RateLimit fields and Retry-After take integers), rounded up so a client that
    waits as told is never refused again for being a fraction early; a refusal says at least 1 s, never "retry now".
    """
    reset = _ceil_s(decision.reset_s)
    headers = [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(reset).encode()),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(max(1, _ceil_s(decision.retry_after_s))).encode()))
    return headers


def _ceil_s(seconds: float) -> int:
    # Rounded to the microsecond first, so 2.0000000000004 (float noise) is 2, not 3.
    return max(0, math.ceil(round(seconds, 6)))


# ---------------------------------------------------------------------------------------------------------------
# In-process


class LocalLimiter:
    """Limits kept in this process's memory: right for a single gateway process, and the fallback without Redis.

    `hit` is a dict lookup and integer arithmetic (nanoseconds, so a fake clock's 0.1 s steps are exact); it never
    awaits. Rate state of keys that went idle (quota fully restored) is dropped by a sweep that runs at most once
    per `sweep_interval_s`, so unseen keys don't accumulate forever while the hot path stays O(1).
    """

    healthy: bool
    errors: int

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, sweep_interval_s: float = 60.0) -> None:
        self._clock = clock
        self._tat: dict[str, int] = {}  # key → theoretical arrival time, ns on `clock`
        self._slots: dict[str, set[str]] = {}  # key → lease ids holding a slot
        self._sweep_every_ns = round(sweep_interval_s * 1e9)
        self._next_sweep_ns = self._now_ns() + self._sweep_every_ns
        self.healthy = True  # same attributes as RedisLimiter, so metrics and readiness needn't tell them apart
        self.errors = 0

    def _now_ns(self) -> int:
        return round(self._clock() * 1e9)

    @property
    def tracked_keys(self) -> int:
        """How many keys have rate or slot state held (for tests and metrics)."""
        return len(self._tat.keys() | self._slots.keys())

    async def hit(self, key: str, rps: float) -> RateDecision:
        """Count one request against `key`; see the module docstring for the algorithm."""
        if rps <= 0:
            return _unlimited_rate()
        now = self._now_ns()
        if now >= self._next_sweep_ns:
            self._sweep(now)
        burst = _burst(rps)
        period = max(1, round(1e9 / rps))
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        new_tat = tat + period
        allow_at = new_tat - burst * period
        if now < allow_at:
            return RateDecision(False, burst, 0, (tat - now) / 1e9, (allow_at - now) / 1e9)
        self._tat[key] = new_tat
        return RateDecision(True, burst, (now - allow_at) // period, (new_tat - now) / 1e9, 0.0)

    def _sweep(self, now: int) -> None:
        """Forget keys whose quota is fully restored: their absent state means exactly the same thing."""
        idle = [key for key, tat in self._tat.items() if tat <= now]
        for key in idle:
            del self._tat[key]
        self._next_sweep_ns = now + self._sweep_every_ns

    async def acquire(self, key: str, limit: int, lease: str) -> SlotDecision:
        """Take a slot for `lease` unless `limit` are held; a lease that already holds one keeps it."""
        if limit <= 0:
            return SlotDecision(True, 0, 0)
        held = self._slots.get(key)
        if held is None:
            held = self._slots[key] = set()
        if lease not in held:
            if len(held) >= limit:
                return SlotDecision(False, limit, len(held))
            held.add(lease)
        return SlotDecision(True, limit, len(held))

    async def release(self, key: str, lease: str) -> None:
        """Give the slot back; the key's entry goes when its last slot does, so idle keys hold no memory."""
        held = self._slots.get(key)
        if held is None:
            return
        held.discard(lease)
        if not held:
            del self._slots[key]

    async def aclose(self) -> None:
        """Nothing to release; present for the `Limiter` interface."""


# ---------------------------------------------------------------------------------------------------------------
# Redis

# GCRA in microseconds on the Redis server's clock (TIME), so gateway processes on different hosts agree.
# Numbers go back to Redis via '%.0f': Lua's default tostring keeps 14 digits, and now-in-µs has 16.
# KEYS[1] rate key; ARGV[1] period (µs, integer); ARGV[2] burst.
# Returns {allowed, remaining, reset_us, retry_after_us}.
_GCRA_LUA = """
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local new_tat = tat + period
local allow_at = new_tat - burst * period
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / period), new_tat - now, 0}
"""

# Slots: a sorted set of lease ids scored by acquisition time (ms on the server's clock). Entries older than the
# TTL belong to processes that died holding them and are dropped first; the whole set expires when idle.
# KEYS[1] slots key; ARGV[1] limit; ARGV[2] lease id; ARGV[3] ttl (ms). Returns {allowed, in_use}.
_ACQUIRE_LUA = """
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - ttl))
local n = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if n >= limit then return {0, n} end
  n = n + 1
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, n}
"""


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = quote(unquote(parts.username or ""), safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class RedisLimiter:
    """Limits shared by every gateway process that points at the same Redis.

    One Lua script per operation keeps each check-and-update atomic, so N processes draw on one budget with no
    races and one round trip per request. redis-py's `register_script` sends EVALSHA and reloads the script on
    NOSCRIPT (after a Redis restart or FLUSH). Sockets time out after `socket_timeout_s` and a failed command is
    retried once at most (a pooled connection may have died with a Redis restart): a hung Redis adds a bounded
    delay, never an unbounded one. After a failure, Redis is left alone for `retry_interval_s` and requests pass
    without a round trip, so an outage doesn't put a timeout on every request.
    """

    healthy: bool
    errors: int

    def __init__(
        self,
        url: str,
        *,
        lease_ttl_s: float = 900.0,
        prefix: str = "unimodel:limits:",
        socket_timeout_s: float = 0.5,
        retry_interval_s: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self._safe_url = redact_url(url)
        self._password = urlsplit(url).password
        self._prefix = prefix
        self._lease_ttl_ms = max(1, round(lease_ttl_s * 1000))
        self._retry_interval_s = retry_interval_s
        self._op_timeout_s = socket_timeout_s * 4  # connect + read, retried once: the worst a command may take
        self._retry_at = 0.0
        self._pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout_s,  # waiting for a free pooled connection
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        self._redis: Redis = Redis(connection_pool=self._pool)
        self._gcra = self._redis.register_script(_GCRA_LUA)
        self._acquire = self._redis.register_script(_ACQUIRE_LUA)
        self.healthy = True
        self.errors = 0

    def __repr__(self) -> str:
        return f"RedisLimiter({self._safe_url!r})"

    def _skip(self) -> bool:
        """True while in an outage's back-off: answer without trying Redis."""
        return not self.healthy and time.monotonic() < self._retry_at

    def _ok(self) -> None:
        if not self.healthy:
            self.healthy = True
            log.info("rate limits: Redis at %s answers again; limits are enforced", self._safe_url)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._retry_at = time.monotonic() + self._retry_interval_s
        if self.healthy:
            self.healthy = False
            log.warning(
                "rate limits: Redis at %s failed (%s); requests pass unlimited until it answers",
                self._safe_url,
                self._describe(exc),
            )

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._password:
            for form in {self._password, quote(self._password, safe="")}:
                text = text.replace(form, "***")
        return text

    async def _call(self, op: Callable[[], Any]) -> Any:
        """Run one Redis operation under the overall deadline; None on failure (after recording it)."""
        try:
            async with asyncio.timeout(self._op_timeout_s):
                result = await op()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._ok()
        return result

    async def hit(self, key: str, rps: float) -> RateDecision:
        """Count one request against `key` in Redis; allowed (failing open) when Redis can't answer."""
        if rps <= 0:
            return _unlimited_rate()
        burst = _burst(rps)
        period_us = max(1, round(1e6 / rps))
        if not self._skip():
            reply = await self._call(lambda: self._gcra(keys=[self._prefix + "rate:" + key], args=[period_us, burst]))
            if reply is not None:
                allowed, remaining, reset_us, retry_us = (int(v) for v in reply)
                return RateDecision(bool(allowed), burst, remaining, reset_us / 1e6, retry_us / 1e6)
        return RateDecision(True, burst, burst - 1, period_us / 1e6, 0.0)

    async def acquire(self, key: str, limit: int, lease: str) -> SlotDecision:
        """Take a slot in Redis for `lease`; allowed (failing open, in_use 0) when Redis can't answer.

        Acquiring again with the same lease renews its time, so a request that runs longer than `lease_ttl_s` can
        keep its slot by re-acquiring; otherwise its slot is treated as a crashed process's and freed.
        """
        if limit <= 0:
            return SlotDecision(True, 0, 0)
        if not self._skip():
            reply = await self._call(
                lambda: self._acquire(keys=[self._prefix + "slots:" + key], args=[limit, lease, self._lease_ttl_ms])
            )
            if reply is not None:
                allowed, in_use = (int(v) for v in reply)
                return SlotDecision(bool(allowed), limit, in_use)
        return SlotDecision(True, limit, 0)

    async def release(self, key: str, lease: str) -> None:
        """ZREM the lease; if Redis can't answer, the slot expires after `lease_ttl_s` anyway."""
        if self._skip():
            return
        await self._call(lambda: self._redis.zrem(self._prefix + "slots:" + key, lease))

    async def aclose(self) -> None:
        """Close the client and every pooled connection."""
        await self._redis.aclose()
        await self._pool.disconnect()


def create_limiter(config: LimitsConfig) -> Limiter:
    """A `RedisLimiter` when `[limits] redis_url` is set (limits shared by all processes), else a `LocalLimiter`."""
    if config.redis_url is not None:
        return RedisLimiter(config.redis_url.get_secret_value())
    return LocalLimiter()
