"""Per-key rate and concurrency limits: LocalLimiter on a fake clock, RedisLimiter against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from unimodel.config import LimitsConfig
from unimodel.gateway.limits import (
    LocalLimiter,
    RateDecision,
    RedisLimiter,
    create_limiter,
    rate_headers,
    redact_url,
)

from .fixtures_redis import RedisServer, free_port


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def local(clock: FakeClock) -> LocalLimiter:
    return LocalLimiter(clock)


async def hits(limiter: Any, key: str, rps: float, n: int) -> list[RateDecision]:
    return [await limiter.hit(key, rps) for _ in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# LocalLimiter: rate


async def test_burst_of_a_seconds_worth_then_refused_with_retry_after(local: LocalLimiter) -> None:
    decisions = await hits(local, "k", 5, 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert {d.limit for d in decisions} == {5}
    assert [d.reset_s for d in decisions[:5]] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    refused = decisions[5]
    assert refused.retry_after_s == pytest.approx(0.2)
    assert refused.reset_s == pytest.approx(1.0)
    assert all(d.retry_after_s == 0 for d in decisions[:5])


async def test_refills_smoothly_one_request_per_interval(local: LocalLimiter, clock: FakeClock) -> None:
    await hits(local, "k", 5, 5)
    clock.advance(0.1)
    refused = await local.hit("k", 5)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.1)
    clock.advance(0.1)  # one interval after the burst: exactly one more
    assert [d.allowed for d in await hits(local, "k", 5, 2)] == [True, False]
    clock.advance(0.5)  # 2.5 intervals: two more, not three
    assert [d.allowed for d in await hits(local, "k", 5, 3)] == [True, True, False]
    clock.advance(10)  # fully restored, but never more than one burst
    assert [d.allowed for d in await hits(local, "k", 5, 6)] == [True] * 5 + [False]


async def test_no_double_burst_at_a_second_boundary(local: LocalLimiter, clock: FakeClock) -> None:
    # A fixed one-second window would allow 5 at 0.99 s and 5 more at 1.01 s; GCRA allows none at 1.01 s.
    clock.advance(0.99)
    assert all(d.allowed for d in await hits(local, "k", 5, 5))
    clock.advance(0.02)
    assert not (await local.hit("k", 5)).allowed


async def test_remaining_and_reset_after_a_partial_refill(local: LocalLimiter, clock: FakeClock) -> None:
    await hits(local, "k", 5, 5)
    clock.advance(0.5)  # 2.5 requests restored; this hit takes one, 1.5 left: 1 usable now
    decision = await local.hit("k", 5)
    assert decision.allowed
    assert decision.remaining == 1
    assert decision.reset_s == pytest.approx(0.7)


async def test_fractional_rps(local: LocalLimiter, clock: FakeClock) -> None:
    first, second = await hits(local, "k", 0.5, 2)
    assert first == RateDecision(True, 1, 0, 2.0, 0.0)
    assert not second.allowed
    assert second.limit == 1
    assert second.retry_after_s == pytest.approx(2.0)
    clock.advance(1.9)
    assert not (await local.hit("k", 0.5)).allowed
    clock.advance(0.1)
    assert (await local.hit("k", 0.5)).allowed
    # 2.5 rps: a burst of 3, then one every 0.4 s
    decisions = await hits(local, "other", 2.5, 4)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].limit == 3
    assert decisions[3].retry_after_s == pytest.approx(0.4)


async def test_keys_are_independent(local: LocalLimiter) -> None:
    assert all(d.allowed for d in await hits(local, "a", 2, 2))
    assert not (await local.hit("a", 2)).allowed
    assert all(d.allowed for d in await hits(local, "b", 2, 2))


async def test_idle_rate_state_is_dropped(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock, sweep_interval_s=10)
    for i in range(100):
        await limiter.hit(f"key-{i}", 5)
    await limiter.hit("slow", 0.01)  # quota restored only after 100 s
    assert limiter.tracked_keys == 101
    clock.advance(11)
    await limiter.hit("fresh", 5)  # the sweep runs lazily, on a hit
    assert limiter.tracked_keys == 2  # "slow" is still limited, so it stays; "fresh" was just hit
    assert not (await limiter.hit("slow", 0.01)).allowed
    clock.advance(100)
    await limiter.hit("fresh", 5)
    assert limiter.tracked_keys == 1


async def test_unlimited_rate_keeps_no_state(local: LocalLimiter) -> None:
    for rps in (0, -1):
        decisions = await hits(local, "k", rps, 50)
        assert all(d.allowed and d.retry_after_s == 0 for d in decisions)
    assert local.tracked_keys == 0


# ---------------------------------------------------------------------------------------------------------------
# LocalLimiter: concurrency


async def test_slots_acquire_release_and_idempotent_leases(local: LocalLimiter) -> None:
    assert (await local.acquire("k", 2, "a")).in_use == 1
    assert (await local.acquire("k", 2, "b")).in_use == 2
    refused = await local.acquire("k", 2, "c")
    assert (refused.allowed, refused.limit, refused.in_use) == (False, 2, 2)
    again = await local.acquire("k", 2, "a")  # the same lease holds one slot, however often it asks
    assert (again.allowed, again.in_use) == (True, 2)
    assert (await local.acquire("other", 2, "c")).allowed  # keys are independent
    await local.release("k", "a")
    await local.release("k", "a")  # twice: a no-op
    await local.release("k", "never-acquired")
    await local.release("unknown-key", "x")
    assert (await local.acquire("k", 2, "c")).in_use == 2
    for key, lease in (("k", "b"), ("k", "c"), ("other", "c")):
        await local.release(key, lease)
    assert local.tracked_keys == 0


async def test_unlimited_slots(local: LocalLimiter) -> None:
    for i in range(20):
        assert (await local.acquire("k", 0, f"l{i}")).allowed
    assert local.tracked_keys == 0


# ---------------------------------------------------------------------------------------------------------------
# Headers, factory, URL redaction


def test_rate_headers() -> None:
    allowed = RateDecision(True, 5, 3, 0.4, 0.0)
    assert rate_headers(allowed) == [
        (b"ratelimit-limit", b"5"),
        (b"ratelimit-remaining", b"3"),
        (b"ratelimit-reset", b"1"),
    ]
    refused = dict(rate_headers(RateDecision(False, 1, 0, 1.5, 1.5)))
    assert refused[b"retry-after"] == b"2"
    assert refused[b"ratelimit-reset"] == b"2"
    # float noise doesn't add a second; a tiny wait still says 1, never "retry now"
    assert dict(rate_headers(RateDecision(False, 1, 0, 2.0000000000004, 2.0000000000004)))[b"retry-after"] == b"2"
    assert dict(rate_headers(RateDecision(False, 5, 0, 1.0, 0.001)))[b"retry-after"] == b"1"


async def test_create_limiter() -> None:
    assert isinstance(create_limiter(LimitsConfig()), LocalLimiter)
    limiter = create_limiter(LimitsConfig(redis_url=SecretStr("redis://:hunter2@127.0.0.1:1/0")))
    assert isinstance(limiter, RedisLimiter)  # connects lazily: nothing is listening there
    assert "hunter2" not in repr(limiter)
    await limiter.aclose()


def test_redact_url() -> None:
    assert redact_url("redis://:hunter2@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("rediss://user:p%40ss@redis.example:6380/1") == "rediss://user:***@redis.example:6380/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# ---------------------------------------------------------------------------------------------------------------
# RedisLimiter against a real redis-server


MakeLimiter = Callable[..., RedisLimiter]


@pytest.fixture
async def make_limiter(clean_redis_url: str) -> AsyncIterator[MakeLimiter]:
    """RedisLimiters on the session's server (each one stands for a gateway process), closed after the test."""
    made: list[RedisLimiter] = []

    def make(**kwargs: Any) -> RedisLimiter:
        limiter = RedisLimiter(clean_redis_url, **kwargs)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


async def test_redis_burst_then_refused(make_limiter: MakeLimiter, clean_redis_url: str) -> None:
    limiter = make_limiter()
    decisions = await hits(limiter, "k", 3, 4)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.limit for d in decisions} == {3}
    assert 0 < decisions[3].retry_after_s <= 1 / 3
    assert 0.9 < decisions[3].reset_s <= 1.0
    assert all(d.retry_after_s == 0 for d in decisions[:3])
    assert limiter.healthy and limiter.errors == 0
    with redis.Redis.from_url(clean_redis_url) as client:
        ttl_ms = client.pttl("unimodel:limits:rate:k")
    assert 0 < ttl_ms <= 1001  # the state vanishes once the quota is restored


async def test_redis_fractional_rps_and_refill(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    first, second = await hits(limiter, "k", 0.5, 2)
    assert (first.allowed, first.limit, first.remaining) == (True, 1, 0)
    assert not second.allowed
    assert 1.9 < second.retry_after_s <= 2.0
    # 4 rps refills one request every 250 ms: waiting as told is enough
    refused = (await hits(limiter, "fast", 4, 5))[-1]
    assert not refused.allowed
    assert 0 < refused.retry_after_s <= 0.25
    await asyncio.sleep(refused.retry_after_s + 0.02)
    assert (await limiter.hit("fast", 4)).allowed


async def test_redis_keys_are_independent(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert [d.allowed for d in await hits(limiter, "a", 1, 2)] == [True, False]
    assert (await limiter.hit("b", 1)).allowed


async def test_two_processes_share_one_budget(make_limiter: MakeLimiter) -> None:
    first, second = make_limiter(), make_limiter()
    await asyncio.gather(first.hit("warm-up", 5), second.hit("warm-up", 5))  # connect and load the script first
    decisions = await asyncio.gather(*(limiter.hit("shared", 5) for limiter in [first, second] * 10))
    assert sum(d.allowed for d in decisions) == 5
    assert not (await first.hit("shared", 5)).allowed
    assert not (await second.hit("shared", 5)).allowed


async def test_prefix_separates_deployments(make_limiter: MakeLimiter) -> None:
    one, other = make_limiter(prefix="one:"), make_limiter(prefix="other:")
    assert [d.allowed for d in await hits(one, "k", 1, 2)] == [True, False]
    assert (await other.hit("k", 1)).allowed


async def test_two_processes_share_concurrency_slots(make_limiter: MakeLimiter) -> None:
    first, second = make_limiter(), make_limiter()
    assert (await first.acquire("k", 2, "a")).in_use == 1
    assert (await second.acquire("k", 2, "b")).in_use == 2
    refused = await first.acquire("k", 2, "c")
    assert (refused.allowed, refused.limit, refused.in_use) == (False, 2, 2)
    assert not (await second.acquire("k", 2, "c")).allowed
    again = await second.acquire("k", 2, "b")  # idempotent per lease
    assert (again.allowed, again.in_use) == (True, 2)
    await second.release("k", "a")  # any process may release any lease
    await second.release("k", "a")
    assert (await first.acquire("k", 2, "c")).in_use == 2


async def test_concurrent_acquires_are_atomic(make_limiter: MakeLimiter) -> None:
    first, second = make_limiter(), make_limiter()
    decisions = await asyncio.gather(
        *(limiter.acquire("k", 3, f"lease-{i}") for i, limiter in enumerate([first, second] * 10))
    )
    assert sum(d.allowed for d in decisions) == 3


async def test_crashed_process_slots_expire(make_limiter: MakeLimiter) -> None:
    crashed, survivor = make_limiter(lease_ttl_s=0.3), make_limiter(lease_ttl_s=0.3)
    assert (await crashed.acquire("k", 1, "orphan")).allowed
    await crashed.aclose()  # gone without releasing
    assert not (await survivor.acquire("k", 1, "new")).allowed
    await asyncio.sleep(0.4)
    decision = await survivor.acquire("k", 1, "new")
    assert (decision.allowed, decision.in_use) == (True, 1)


async def test_redis_unlimited_touches_nothing(make_limiter: MakeLimiter, clean_redis_url: str) -> None:
    limiter = make_limiter()
    assert all(d.allowed for d in await hits(limiter, "k", 0, 10))
    assert (await limiter.acquire("k", 0, "a")).allowed
    with redis.Redis.from_url(clean_redis_url) as client:
        assert client.dbsize() == 0


async def test_scripts_are_reloaded_after_a_script_flush(make_limiter: MakeLimiter, clean_redis_url: str) -> None:
    limiter = make_limiter()
    assert (await limiter.hit("k", 2)).allowed
    with redis.Redis.from_url(clean_redis_url) as client:
        client.script_flush()
    assert (await limiter.hit("k", 2)).allowed
    assert not (await limiter.hit("k", 2)).allowed
    assert limiter.healthy and limiter.errors == 0


def _leaks(records: list[logging.LogRecord], secret: str) -> list[str]:
    texts = []
    for record in records:
        texts += [record.getMessage(), str(record.args), record.exc_text or ""]
    return [text for text in texts if secret in text]


async def test_redis_outage_fails_open_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = RedisServer(password="hunter2").start()
    limiter = RedisLimiter(server.url, retry_interval_s=0)
    try:
        assert "hunter2" in server.url
        assert [d.allowed for d in await hits(limiter, "k", 1, 2)] == [True, False]
        assert (await limiter.acquire("k", 1, "a")).allowed

        server.stop()
        decisions = await hits(limiter, "k", 1, 5)
        assert all(d.allowed for d in decisions)  # failing open
        assert (await limiter.acquire("k", 1, "b")).allowed
        await limiter.release("k", "a")  # no exception either
        assert not limiter.healthy
        assert limiter.errors >= 5
        warnings = [r for r in caplog.records if r.name == "unimodel.limits" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "redis://:***@127.0.0.1" in warnings[0].getMessage()

        server.start()  # same port; the pool's old connections are dead
        deadline = time.monotonic() + 5
        while not limiter.healthy and time.monotonic() < deadline:
            await limiter.hit("other", 100)
            await asyncio.sleep(0.05)
        assert limiter.healthy
        infos = [r for r in caplog.records if r.name == "unimodel.limits" and r.levelno == logging.INFO]
        assert len(infos) == 1
        assert [d.allowed for d in await hits(limiter, "fresh", 1, 2)] == [True, False]  # enforced again

        # a wrong password: refused by Redis, still failing open, and that password is not logged either
        wrong = RedisLimiter(f"redis://:wrong-pw-7x@127.0.0.1:{server.port}/0")
        try:
            assert (await wrong.hit("k", 1)).allowed
            assert not wrong.healthy
        finally:
            await wrong.aclose()
    finally:
        await limiter.aclose()
        server.close()
    assert _leaks(caplog.records, "hunter2") == []
    assert _leaks(caplog.records, "wrong-pw-7x") == []
    assert len([r for r in caplog.records if r.name == "unimodel.limits" and r.levelno == logging.WARNING]) == 2


async def test_outage_backs_off_instead_of_trying_redis_per_request() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", retry_interval_s=60)  # nothing listens there
    try:
        started = time.monotonic()
        for _ in range(100):
            assert (await limiter.hit("k", 1)).allowed
            assert (await limiter.acquire("k", 1, "a")).allowed
            await limiter.release("k", "a")
        assert limiter.errors == 1  # only the first request tried
        assert not limiter.healthy
        assert time.monotonic() - started < 2
    finally:
        await limiter.aclose()


async def test_a_hung_redis_costs_a_bounded_delay() -> None:
    # A socket that accepts connections (the kernel's backlog does) but never answers a command.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.1, retry_interval_s=60)
        try:
            started = time.monotonic()
            assert (await limiter.hit("k", 1)).allowed
            assert time.monotonic() - started < 1.0
            assert not limiter.healthy
        finally:
            await limiter.aclose()
