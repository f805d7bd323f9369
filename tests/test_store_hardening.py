"""A record the database refuses cannot take other records with it: the ledger splits the batch, rejects that
record alone, counts and logs it, and readiness says so. Real SQLite and PostgreSQL (tests/fixtures_pg.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from unimodel.config import StoreConfig
from unimodel.store import ANY_KEY, Store, StoreError, UsageLedger, UsageRecord

from .fixtures_pg import PostgresServer
from .platform_helpers import Platform, PlatformFactory, chat

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def rec(i: int, **changes: Any) -> UsageRecord:
    good = UsageRecord(
        time=T0 + timedelta(milliseconds=i),
        request_id=f"r{i}",
        key_id=None,
        model="openai/gpt-4o",
        kind="closed",
        provider="openai",
        status=200,
        input_tokens=1,
        output_tokens=1,
        inference_s=None,
        cost_usd=None,
        latency_ms=1.0,
    )
    return replace(good, **changes)


def ids(store: Store) -> list[str]:
    return [r.request_id for r in store.query_usage(key_id=ANY_KEY, limit=1_000_000)]


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store.open(StoreConfig(url=SecretStr(store_url), data_dir=str(tmp_path)))
    yield s
    s.close()


# ---- a refused record is rejected alone ----------------------------------------------------------------------------


async def test_one_refused_record_is_rejected_and_the_rest_of_its_batch_is_written(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """200 good records and two with NUL (PostgreSQL refuses it in text) in one batch: the 200 are written."""
    caplog.set_level(logging.INFO, logger="unimodel.store.ledger")
    ledger = UsageLedger(store, flush_interval_s=60, flush_batch=1000)
    for i in range(202):
        if i == 57:
            ledger.record(rec(i, model="openai/gpt-4o\x00evil"))
        elif i == 140:
            ledger.record(rec(i, request_id="r140\x00"))
        else:
            ledger.record(rec(i))
    await ledger.flush()
    assert ids(store) == [f"r{i}" for i in range(202) if i not in (57, 140)]
    assert (ledger.written, ledger.rejected, ledger.dropped, ledger.buffered) == (200, 2, 0, 0)
    assert ledger.healthy and ledger.last_error is None
    assert ledger.recent_rejection() == (
        "usage record refused: request_id contains a NUL character (U+0000), which PostgreSQL cannot store"
    )
    rejected = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert rejected == [
        "usage record of request 'r57' rejected by the store, not written: usage record refused: "
        "model contains a NUL character (U+0000), which PostgreSQL cannot store",
        "usage record of request 'r140\\x00' rejected by the store, not written: usage record refused: "
        "request_id contains a NUL character (U+0000), which PostgreSQL cannot store",
    ]
    await ledger.aclose()


async def test_a_record_the_database_itself_refuses_is_rejected_alone(store: Store) -> None:
    """A refusal the store does not foresee (a NULL in a NOT NULL column) reaches the database and is split the
    same way: the database's own reason is kept."""
    ledger = UsageLedger(store, flush_interval_s=60, flush_batch=1000)
    for i in range(100):
        ledger.record(rec(i, model=None) if i == 99 else rec(i))
    await ledger.flush()
    assert ids(store) == [f"r{i}" for i in range(99)]
    assert (ledger.written, ledger.rejected, ledger.dropped) == (99, 1, 0)
    reason = ledger.recent_rejection() or ""
    assert "refused a statement" in reason and "model" in reason and "null" in reason.lower()
    await ledger.aclose()


def test_the_store_refuses_what_postgresql_could_not_hold_on_every_database(store: Store) -> None:
    """SQLite would take these; refusing them there too keeps the two databases' ledgers the same."""
    for bad, field in [
        (rec(0, model="a\x00b"), "model contains a NUL character"),
        (rec(0, provider="\x00"), "provider contains a NUL character"),
        (rec(0, key_id="k" * 33), "key_id is 33 characters long, the database keeps at most 32"),
        (rec(0, kind="closed-but-longer-than-16"), "kind is 25 characters long, the database keeps at most 16"),
        (rec(0, status=2**31), "status = 2147483648 does not fit the database's 32-bit integer column"),
        (rec(0, output_tokens=-(2**31) - 1), "output_tokens = -2147483649 does not fit"),
    ]:
        with pytest.raises(StoreError, match=field):
            store.write_usage([rec(1), bad])
    store.write_usage([rec(2, status=2**31 - 1, input_tokens=-(2**31), key_id="k" * 32)])
    assert ids(store) == ["r2"]  # nothing of a refused batch was written


async def test_readiness_forgets_a_rejection_after_its_window(tmp_path: Path) -> None:
    store = Store.open(StoreConfig(data_dir=str(tmp_path)))
    ledger = UsageLedger(store, flush_interval_s=60, rejected_window_s=0.3)
    ledger.record(rec(0, model="\x00"))
    await ledger.flush()
    assert ledger.recent_rejection() is not None
    await asyncio.sleep(0.4)
    assert ledger.recent_rejection() is None
    assert ledger.rejected == 1  # the count stays
    await ledger.aclose()
    store.close()


async def test_an_outage_during_the_split_keeps_every_record_not_yet_written(
    postgres_factory: Callable[[], PostgresServer], tmp_path: Path
) -> None:
    """The bad record is rejected (no database would take it); the good ones wait for the database, as in any
    outage, and are written when it is back."""
    server = postgres_factory()
    store = Store.open(StoreConfig(url=SecretStr(server.create_database("ledger")), data_dir=str(tmp_path)))
    ledger = UsageLedger(store, flush_interval_s=60, retry_initial_s=0.05)
    try:
        await asyncio.to_thread(server.stop)
        ledger.record(rec(0, model="\x00"))
        for i in range(1, 31):
            ledger.record(rec(i))
        with pytest.raises(StoreError, match="cannot reach the database"):
            await ledger.flush()
        assert (ledger.rejected, ledger.buffered, ledger.written, ledger.dropped) == (1, 30, 0, 0)
        assert not ledger.healthy
        await asyncio.to_thread(server.start)
        await ledger.flush()
        assert (ledger.rejected, ledger.buffered, ledger.written, ledger.dropped) == (1, 0, 30, 0)
        assert ledger.healthy
        assert ids(store) == [f"r{i}" for i in range(1, 31)]
    finally:
        await ledger.aclose()
        store.close()


def _on_gateway_loop(p: Platform, fn: Callable[[], None]) -> None:
    """Run `fn` on the gateway's event loop thread: the ledger's `record()` must be called there."""
    platform = p.live.app.state.platform
    loop = platform.ledger._task.get_loop()  # the loop the ledger's writer runs on

    async def call() -> None:
        fn()

    asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)


def rejected_total() -> float:
    """unimodel_usage_records_rejected_total in this process (the gateway under test runs in it)."""
    return REGISTRY.get_sample_value("unimodel_usage_records_rejected_total") or 0.0


def test_a_rejected_record_marks_the_gateway_degraded_and_counts_in_metrics(
    platform_factory: PlatformFactory, store_url: str
) -> None:
    p = platform_factory(store={"url": store_url})
    ledger = p.live.app.state.platform.ledger
    _, key = p.create_key()
    rejected_before = rejected_total()
    assert httpx.get(p.url + "/readyz").status_code == 200

    _on_gateway_loop(p, lambda: ledger.record(rec(0, request_id="injected", model="openai/\x00")))
    assert chat(p, key).status_code == 200
    assert chat(p, key).status_code == 200

    assert len(p.usage(key)["records"]) == 2  # the key's calls are written
    r = httpx.get(p.url + "/readyz")
    assert r.status_code == 200  # still serving: degraded, not out of the load balancer
    body = r.json()
    assert body["status"] == "degraded" and body["checks"]["store"] == {"ok": True}
    check = body["checks"]["usage_ledger"]
    assert check["ok"] is True and check["degraded"] is True and check["rejected"] == 1 and check["dropped"] == 0
    assert check["error"] == (
        "the store refused 1 usage record(s) since start, the last in the past 5 minutes, and they were not "
        "written: usage record refused: model contains a NUL character (U+0000), which PostgreSQL cannot store"
    )
    deadline = time.monotonic() + 5  # the platform copies the ledger's counts into the metrics every second
    while rejected_total() < rejected_before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rejected_total() == rejected_before + 1
    assert "unimodel_usage_records_rejected_total" in httpx.get(p.url + "/metrics", headers=p.admin).text

    ledger.rejected_window_s = 0.0  # the window over: ready again, the count stays
    r = httpx.get(p.url + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert r.json()["checks"]["usage_ledger"]["rejected"] == 1 and "degraded" not in r.json()["checks"]["usage_ledger"]
