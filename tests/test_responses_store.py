"""Stored Responses API answers in the store, on SQLite and PostgreSQL (each test runs on a fresh one of each)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from pydantic import SecretStr

from unimodel.config import StoreConfig
from unimodel.store import Store, StoredResponse
from unimodel.store.migrate import alembic_config

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store.open(StoreConfig(url=SecretStr(store_url), data_dir=str(tmp_path / "data")))
    yield s
    s.close()


def stored(response_id: str, key_id: str | None, *, days: float = 30, **kw: str) -> StoredResponse:
    fields = {
        "model": "openai/gpt-4o",
        "status": "completed",
        "previous_response_id": None,
        "response": json.dumps({"id": response_id, "output": []}),
        "input_items": '[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]',
    }
    fields.update(kw)
    return StoredResponse(
        id=response_id,
        key_id=key_id,
        created_at=NOW,
        expires_at=NOW + timedelta(days=days),
        **fields,  # type: ignore[arg-type]
    )


def test_a_saved_response_comes_back_whole(store: Store) -> None:
    text = "naïve ☃ \\u0000 and a NUL escaped in JSON"
    saved = stored("resp_a", "key_1", response=json.dumps({"text": text}), previous_response_id="resp_0")
    store.save_response(saved)
    assert store.get_response("resp_a", key_id="key_1", now=NOW) == saved


def test_another_key_or_anonymous_callers_do_not_see_it(store: Store) -> None:
    store.save_response(stored("resp_k", "key_1"))
    store.save_response(stored("resp_anon", None))
    assert store.get_response("resp_k", key_id="key_2", now=NOW) is None
    assert store.get_response("resp_k", key_id=None, now=NOW) is None
    assert store.get_response("resp_anon", key_id="key_1", now=NOW) is None
    assert store.get_response("resp_anon", key_id=None, now=NOW) is not None  # anonymous callers share one scope
    assert store.get_response("resp_missing", key_id="key_1", now=NOW) is None


def test_delete_is_scoped_and_happens_once(store: Store) -> None:
    store.save_response(stored("resp_d", "key_1"))
    assert store.delete_response("resp_d", key_id="key_2", now=NOW) is False
    assert store.get_response("resp_d", key_id="key_1", now=NOW) is not None
    assert store.delete_response("resp_d", key_id="key_1", now=NOW) is True
    assert store.delete_response("resp_d", key_id="key_1", now=NOW) is False
    assert store.get_response("resp_d", key_id="key_1", now=NOW) is None


def test_an_expired_response_is_not_found_and_is_purged(store: Store) -> None:
    store.save_response(stored("resp_old", "key_1", days=1))
    store.save_response(stored("resp_new", "key_1", days=10))
    later = NOW + timedelta(days=2)
    assert store.get_response("resp_old", key_id="key_1", now=later) is None
    assert store.delete_response("resp_old", key_id="key_1", now=later) is False
    assert store.purge_responses(now=later) == 1
    assert store.purge_responses(now=later) == 0
    assert store.get_response("resp_new", key_id="key_1", now=later) is not None


def test_purge_goes_in_batches(store: Store) -> None:
    for i in range(5):
        store.save_response(stored(f"resp_{i}", None, days=i + 1))
    far = NOW + timedelta(days=30)
    assert store.purge_responses(now=far, limit=2) == 2
    assert store.purge_responses(now=far, limit=10) == 3


def test_migration_0002_goes_up_and_down(store_url: str, tmp_path: Path) -> None:
    Store.open(StoreConfig(url=SecretStr(store_url), data_dir=str(tmp_path))).close()
    engine = sa.create_engine(store_url)
    try:
        inspector = sa.inspect(engine)
        assert "responses" in inspector.get_table_names()
        assert {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("responses")} == {
            "ix_responses_expires_at": ["expires_at"]
        }
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        assert "responses" not in sa.inspect(engine).get_table_names()
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    finally:
        engine.dispose()
    reopened = Store.open(StoreConfig(url=SecretStr(store_url), data_dir=str(tmp_path)))  # back to head
    reopened.save_response(stored("resp_again", None))
    assert reopened.get_response("resp_again", key_id=None, now=NOW) is not None
    reopened.close()
