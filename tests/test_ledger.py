"""The buffered usage ledger against real databases, including one taken away and brought back; and pricing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from unimodel.config import Price, StoreConfig
from unimodel.store import ANY_KEY, PriceTable, Store, UsageLedger, UsageRecord, cost, price_for

from .fixtures_pg import PostgresServer

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def rec(i: int, *, status: int = 200) -> UsageRecord:
    return UsageRecord(
        time=T0 + timedelta(milliseconds=i),
        request_id=f"r{i}",
        key_id=None,
        model="openai/gpt-4o",
        kind="closed",
        provider="openai",
        status=status,
        input_tokens=1,
        output_tokens=1,
        inference_s=None,
        cost_usd=None,
        latency_ms=1.0,
    )


async def wait_for(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def ids(store: Store) -> list[str]:
    return [r.request_id for r in store.query_usage(key_id=ANY_KEY, limit=1_000_000)]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(StoreConfig(data_dir=str(tmp_path)))
    yield store
    store.close()


async def test_full_batches_are_written_at_once_and_the_rest_on_close(sqlite_store: Store) -> None:
    ledger = UsageLedger(sqlite_store, flush_interval_s=60, flush_batch=10)
    await ledger.start()
    for i in range(10):
        ledger.record(rec(i))
    await wait_for(lambda: ledger.written == 10)  # a full batch goes at once; the interval (60 s) never came
    for i in range(10, 15):
        ledger.record(rec(i))
    await asyncio.sleep(0.2)
    assert (ledger.written, ledger.buffered) == (10, 5)  # a partial batch waits for the interval
    await ledger.aclose()
    assert (ledger.written, ledger.buffered, ledger.dropped) == (15, 0, 0)
    assert ids(sqlite_store) == [f"r{i}" for i in range(15)]
    ledger.record(rec(99))  # after close: counted, never raises
    assert ledger.dropped == 1


async def test_records_are_written_every_interval(sqlite_store: Store) -> None:
    ledger = UsageLedger.from_config(sqlite_store, StoreConfig(flush_interval_s=0.05, flush_batch=1000))
    await ledger.start()
    ledger.record(rec(1))
    ledger.record(rec(2))
    await wait_for(lambda: ledger.written == 2, within_s=5)
    assert ledger.healthy and ledger.last_error is None
    await ledger.aclose()


async def test_record_is_cheap_and_never_touches_the_database(sqlite_store: Store) -> None:
    ledger = UsageLedger(sqlite_store, flush_interval_s=60, flush_batch=1_000_000)
    record = rec(0)
    started = time.perf_counter()
    for _ in range(100_000):
        ledger.record(record)
    elapsed = time.perf_counter() - started
    assert ledger.buffered == 100_000 and ledger.written == 0
    assert elapsed < 1.0, f"100k record() calls took {elapsed:.2f} s"


async def test_overflow_drops_the_oldest_and_counts_them(sqlite_store: Store) -> None:
    ledger = UsageLedger(sqlite_store, flush_interval_s=60, flush_batch=4, max_buffered=10)
    for i in range(15):  # no writer running: nothing leaves the buffer
        ledger.record(rec(i))
    assert (ledger.buffered, ledger.dropped) == (10, 5)
    await ledger.aclose()
    assert ids(sqlite_store) == [f"r{i}" for i in range(5, 15)]


async def test_losing_the_database_buffers_then_recovers(
    postgres_factory: Callable[[], PostgresServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = postgres_factory()
    store = Store.open(StoreConfig(url=SecretStr(server.create_database("ledger")), data_dir=str(tmp_path)))
    ledger = UsageLedger(store, flush_interval_s=0.05, flush_batch=100, retry_initial_s=0.05, retry_max_s=0.2)
    await ledger.start()
    caplog.set_level(logging.INFO, logger="unimodel.store.ledger")
    try:
        for i in range(10):
            ledger.record(rec(i))
        await wait_for(lambda: ledger.written == 10)

        await asyncio.to_thread(server.stop)
        for i in range(10, 40):
            ledger.record(rec(i))
        await wait_for(lambda: not ledger.healthy)
        assert ledger.last_error is not None and "cannot reach the database" in ledger.last_error
        with pytest.raises(Exception, match="cannot reach"):
            store.ping()
        await asyncio.sleep(0.5)  # several retries while it is down
        assert ledger.buffered == 30 and ledger.written == 10 and ledger.dropped == 0

        await asyncio.to_thread(server.start)
        await wait_for(lambda: ledger.buffered == 0 and ledger.healthy)
        assert ledger.written == 40 and ledger.last_error is None
    finally:
        await ledger.aclose()
        store.close()
    assert ids(store) == [f"r{i}" for i in range(40)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one warning per outage, not one per retry
    assert "usage store unreachable" in warnings[0].getMessage()
    assert "30 records buffered" in warnings[0].getMessage()
    assert any("reachable again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_closing_with_the_database_down_gives_up_in_bounded_time(
    postgres_factory: Callable[[], PostgresServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = postgres_factory()
    store = Store.open(StoreConfig(url=SecretStr(server.create_database("ledger")), data_dir=str(tmp_path)))
    ledger = UsageLedger(store, flush_interval_s=60, retry_initial_s=0.05, close_timeout_s=0.5)
    await ledger.start()
    await asyncio.to_thread(server.stop)
    for i in range(7):
        ledger.record(rec(i))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="unimodel.store.ledger"):
        await ledger.aclose()
    assert time.monotonic() - started < 5
    assert (ledger.buffered, ledger.dropped, ledger.written) == (0, 7, 0)
    assert any("7 usage records lost" in r.getMessage() for r in caplog.records)
    store.close()


async def test_a_record_the_database_refuses_is_rejected_and_the_ledger_goes_on(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(StoreConfig(url=SecretStr(postgres_url), data_dir=str(tmp_path)))
    before = store.usage_totals(key_id=ANY_KEY).requests
    ledger = UsageLedger(store, flush_interval_s=0.02, flush_batch=1)
    await ledger.start()
    caplog.set_level(logging.WARNING, logger="unimodel.store.ledger")
    ledger.record(rec(0, status=2**40))  # out of range for the status column: refused, not unreachable
    ledger.record(rec(1))
    await wait_for(lambda: ledger.written == 1)
    assert (ledger.rejected, ledger.dropped) == (1, 0) and ledger.healthy  # rejected, not dropped: no outage
    await ledger.aclose()
    assert store.usage_totals(key_id=ANY_KEY).requests == before + 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "usage record of request 'r0' rejected by the store, not written: usage record refused: "
        "status = 1099511627776 does not fit the database's 32-bit integer column"
    ]
    store.close()


# ---- pricing -------------------------------------------------------------------------------------------------------


def test_price_for_prefers_the_exact_id_then_the_longest_glob() -> None:
    exact = Price(input_per_mtok=1)
    provider_wide = Price(input_per_mtok=2)
    family = Price(input_per_mtok=3)
    anything = Price(per_request=0.001)
    prices = {"*": anything, "openai/*": provider_wide, "openai/gpt-4o*": family, "openai/gpt-4o": exact}
    assert price_for("openai/gpt-4o", prices) is exact
    assert price_for("openai/gpt-4o-mini", prices) is family
    assert price_for("openai/o3", prices) is provider_wide
    assert price_for("anthropic/claude", prices) is anything
    assert price_for("anthropic/claude", {"openai/*": provider_wide}) is None
    assert price_for("OPENAI/o3", {"openai/*": provider_wide}) is None  # case matters, on every platform


def test_cost_adds_tokens_inference_time_and_the_request_price() -> None:
    price = Price(input_per_mtok=2.5, output_per_mtok=10, per_inference_s=0.0001, per_request=0.002)
    assert cost(price, 1_000_000, 500_000, 20.0) == pytest.approx(2.5 + 5 + 0.002 + 0.002)
    assert cost(price, None, None, None) == pytest.approx(0.002)


def test_price_table_remembers_lookups() -> None:
    table = PriceTable({"openai/*": Price(input_per_mtok=1)})
    assert table.cost("openai/gpt-4o", 1_000_000, 0, None) == pytest.approx(1.0)
    assert table.cost("mistral/large", 1, 1, None) is None
    assert table.price("openai/gpt-4o") is table.price("openai/gpt-4o")
