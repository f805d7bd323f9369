"""Times in usage queries: normalised to UTC where they are parsed, so that a malformed or out-of-range `from` is the
caller's 400 naming the parameter, not a 503 naming the database (real SQLite and PostgreSQL, a running gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from unimodel.config import StoreConfig
from unimodel.gateway.routes_admin import parse_time
from unimodel.protocol import InvalidRequest
from unimodel.store import ANY_KEY, Store, UsageRecord

from .platform_helpers import PlatformFactory, chat


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store.open(StoreConfig(url=SecretStr(store_url), data_dir=str(tmp_path)))
    yield s
    s.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-01T10:00:00+02:00", datetime(2026, 5, 1, 8, tzinfo=UTC)),
        ("2026-05-01", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01T10:00:00", datetime(2026, 5, 1, 10, tzinfo=UTC)),
        ("0001-01-01T23:59:00+23:59", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T00:00:00-23:59", datetime(9999, 12, 31, 23, 59, tzinfo=UTC)),
        ("1777629600", datetime(2026, 5, 1, 10, tzinfo=UTC)),
        ("1777629600.5", datetime(2026, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC)),
    ],
)
def test_usage_times_are_normalised_to_utc(value: str, expected: datetime) -> None:
    parsed = parse_time(value, "from")
    assert parsed == expected and parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0001-01-01T00:00:00+23:59", "is outside the years 1 to 9999 once converted to UTC"),
        ("9999-12-31T23:59:59-00:01", "is outside the years 1 to 9999 once converted to UTC"),
        ("99999999999999", "Unix seconds is past the year 9999"),
        ("9" * 400, "Unix seconds is past the year 9999"),
        ("yesterday", "'yesterday' is not an ISO 8601 date or time"),
    ],
)
def test_out_of_range_or_malformed_times_are_a_400_naming_the_parameter(value: str, reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_time(value, "to")
    assert caught.value.param == "to" and caught.value.status == 400 and caught.value.code == "invalid_request"
    assert str(caught.value).startswith("to: ") and reason in str(caught.value)


def test_the_widest_time_range_is_one_every_database_can_query(store: Store) -> None:
    moment = datetime(2026, 5, 1, 12, tzinfo=UTC)
    store.write_usage(
        [UsageRecord(moment, "r0", None, "openai/gpt-4o", "closed", "openai", 200, 1, 1, None, None, 1.0)]
    )
    start, end = parse_time("0001-01-01T23:59:00+23:59", "from"), parse_time("9999-12-31T00:00:00-23:59", "to")
    assert [r.request_id for r in store.query_usage(key_id=ANY_KEY, start=start, end=end)] == ["r0"]
    assert store.usage_totals(key_id=ANY_KEY, start=start, end=end).requests == 1


def test_bad_usage_queries_are_400s_naming_the_parameter(platform_factory: PlatformFactory, store_url: str) -> None:
    """The report: `from=0001-01-01T00:00:00+23:59` was a 503 naming the database file."""
    p = platform_factory(store={"url": store_url})
    _, key = p.create_key()
    assert chat(p, key).status_code == 200
    own = {"authorization": f"Bearer {key}"}
    cases: list[tuple[str, dict[str, str], dict[str, str], str, str]] = [
        ("/models/v2/usage", own, {"from": "0001-01-01T00:00:00+23:59"}, "from", "outside the years 1 to 9999"),
        ("/models/v2/admin/usage", p.admin, {"to": "9999-12-31T23:59:59-05:00"}, "to", "outside the years 1"),
        ("/models/v2/usage", own, {"from": "2026-05-02", "to": "2026-05-01"}, "from", "later than to"),
        ("/models/v2/admin/usage", p.admin, {"from": "1777629600", "to": "1"}, "from", "swap them"),
        ("/models/v2/usage", own, {"model": "openai/\x00"}, "model", "contains a NUL character"),
        ("/models/v2/admin/usage", p.admin, {"key": "key_\x00"}, "key", "contains a NUL character"),
    ]
    for path, headers, query, param, message in cases:
        r = httpx.get(p.url + path, params=query, headers=headers)
        assert r.status_code == 400, (path, query, r.text)
        error = r.json()["error"]
        assert r.json()["code"] == "invalid_request"
        assert message in error and error.startswith(f"{param}: "), (query, error)
        assert "sqlite" not in error and "postgresql" not in error  # the caller's mistake, not the database's
    same = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-01T02:00:00+02:00"}  # an empty range, not a mistake
    assert p.usage(key, **same)["records"] == []
    assert len(p.usage(key, **{"from": "0001-01-01T23:59:00+23:59"})["records"]) == 1
