"""The store against real databases: an SQLite file and a PostgreSQL 15 server (tests/fixtures_pg.py).

Every test taking `store_url` runs once per database, each time on a fresh, empty one.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from unimodel.config import StoreConfig
from unimodel.store import (
    ANY_KEY,
    UNCHANGED,
    KeyNotFound,
    Store,
    StoreError,
    StoreUnavailable,
    UsageRecord,
    hash_secret,
)
from unimodel.store import engine as engines
from unimodel.store.crypto import SecretBox, fernet_key
from unimodel.store.migrate import head_revision
from unimodel.store.models import Base

from .fixtures_pg import free_port


@pytest.fixture(autouse=True)
def _no_secret_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIMODEL_SECRET_KEY", raising=False)


def store_config(url: str, data_dir: Path) -> StoreConfig:
    return StoreConfig(url=SecretStr(url), data_dir=str(data_dir))


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store.open(store_config(store_url, tmp_path / "data"))
    yield s
    s.close()


def raw_rows(url: str, table: str) -> list[tuple[object, ...]]:
    """Rows as the database holds them, read without the store."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


def usage(
    time: datetime, key_id: str | None, model: str = "openai/gpt-4o", status: int = 200, **kw: object
) -> UsageRecord:
    fields: dict[str, object] = {
        "request_id": f"req-{time.timestamp()}-{key_id}",
        "kind": "closed",
        "provider": "openai",
        "input_tokens": 10,
        "output_tokens": 5,
        "inference_s": None,
        "cost_usd": 0.25,
        "latency_ms": 12.5,
    }
    fields.update(kw)
    return UsageRecord(time=time, key_id=key_id, model=model, status=status, **fields)  # type: ignore[arg-type]


# ---- opening and migrations ----------------------------------------------------------------------------------------


def test_migrations_create_the_tables_on_an_empty_database(store_url: str, tmp_path: Path) -> None:
    Store.open(store_config(store_url, tmp_path)).close()
    engine = sa.create_engine(store_url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == {
            "alembic_version",
            "api_keys",
            "provider_keys",
            "usage",
            "responses",
        }
        for table in Base.metadata.sorted_tables:  # the migration and the models agree
            assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.columns.keys())
        usage_indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("usage")}
        assert usage_indexes["ix_usage_key_id_time"] == ["key_id", "time"]
        assert usage_indexes["ix_usage_time"] == ["time"]
        key_indexes = {ix["name"]: ix for ix in inspector.get_indexes("api_keys")}
        assert key_indexes["ix_api_keys_secret_hash"]["unique"]
        assert inspector.get_pk_constraint("provider_keys")["constrained_columns"] == ["key_id", "provider"]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    finally:
        engine.dispose()


def test_reopening_is_idempotent_and_keeps_data(store_url: str, tmp_path: Path) -> None:
    config = store_config(store_url, tmp_path)
    first = Store.open(config)
    created = first.create_key("alice")
    first.close()
    again = Store.open(config)
    assert again.get_key(created.key.id).name == "alice"
    again.close()
    checked = Store.open(config, migrate=False)
    assert [k.id for k in checked.list_keys()] == [created.key.id]
    checked.close()


def test_processes_starting_at_once_migrate_once(store_url: str, tmp_path: Path) -> None:
    """Several gateways opening one empty database together: the lock makes one migrate and the others wait."""
    config = store_config(store_url, tmp_path)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            Store.open(config).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_opening_waits_for_a_sibling_holding_a_fresh_files_write_lock(tmp_path: Path) -> None:
    """The cause of the flaky start above: `PRAGMA journal_mode=WAL` on a file not yet in WAL mode reads it, then
    needs its write lock, and SQLite refuses that upgrade at once ("database is locked") instead of waiting while
    a sibling holds the lock — as a sibling does while it switches the same fresh file to WAL."""
    sibling = sqlite3.connect(tmp_path / "unimodel.db", isolation_level=None, check_same_thread=False)
    sibling.execute("BEGIN IMMEDIATE")  # the write lock of a fresh, empty file, still in rollback-journal mode
    release = threading.Timer(0.5, sibling.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        store = Store.open(StoreConfig(data_dir=str(tmp_path)))
    finally:
        release.join()
        sibling.close()
    assert time.monotonic() - started >= 0.4  # it waited for the sibling instead of failing
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert store.list_keys() == []
    store.close()


def test_opening_waits_out_a_migration_longer_than_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start behind a queue of siblings may wait longer than one busy timeout: it waits on, within a bound."""
    Store.open(StoreConfig(data_dir=str(tmp_path))).close()
    monkeypatch.setattr(engines, "SQLITE_BUSY_TIMEOUT_MS", 100)
    sibling = sqlite3.connect(tmp_path / "unimodel.db", isolation_level=None, check_same_thread=False)
    sibling.execute("BEGIN IMMEDIATE")  # a sibling migrating: it holds the write lock for 10 busy timeouts
    release = threading.Timer(1.0, sibling.execute, ("COMMIT",))
    release.start()
    try:
        Store.open(StoreConfig(data_dir=str(tmp_path))).close()
    finally:
        release.join()
    monkeypatch.setattr(engines, "OPEN_BUSY_WAIT_S", 0.5)
    sibling.execute("BEGIN IMMEDIATE")  # and one that never lets go: the wait is bounded, and says why
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"unimodel\.db: database is locked — check \[store\] data_dir"):
        Store.open(StoreConfig(data_dir=str(tmp_path)))
    assert time.monotonic() - started < 3
    sibling.close()


_WORKER = """
import sys
from datetime import UTC, datetime
from unimodel.config import StoreConfig
from unimodel.store import Store, UsageRecord

store = Store.open(StoreConfig(data_dir=sys.argv[1]))
for i in range(20):
    store.create_key(f"{sys.argv[2]}-{i}")
    store.write_usage([UsageRecord(datetime.now(UTC), f"{sys.argv[2]}-{i}-{j}", None, "m", "open", None, 200,
                                   None, None, 0.1, None, 1.0) for j in range(50)])
store.close()
"""


def test_gateway_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    """Four processes open a new SQLite file at the same moment, migrate it, and write to it at once."""
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), f"p{n}"], stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    store = Store.open(StoreConfig(data_dir=str(tmp_path)))
    assert len(store.list_keys()) == 80
    assert store.usage_totals(key_id=None).requests == 4 * 20 * 50
    store.close()


def test_sqlite_default_creates_a_private_data_dir_and_uses_wal(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet"
    store = Store.open(StoreConfig(data_dir=str(data_dir)))
    try:
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        assert (data_dir / "unimodel.db").exists()
        assert store.url_for_display == f"sqlite:///{data_dir / 'unimodel.db'}"
        with store._engine.connect() as conn:  # every pooled connection gets the pragmas
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        store.close()


def test_opening_without_migrations_refuses_an_empty_database(store_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="schema revision none"):
        Store.open(store_config(store_url, tmp_path), migrate=False)


def test_a_schema_from_a_newer_unimodel_is_refused(store_url: str, tmp_path: Path) -> None:
    config = store_config(store_url, tmp_path)
    Store.open(config).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreUnavailable, match=r"9999.*newer unimodel"):
        Store.open(config)


def test_an_unreachable_postgres_is_named_with_its_password_hidden(tmp_path: Path) -> None:
    port = free_port()
    config = store_config(f"postgresql+psycopg://u:hunter2@127.0.0.1:{port}/x", tmp_path)
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(config)
    message = str(caught.value)
    assert f"postgresql+psycopg://u:***@127.0.0.1:{port}/x" in message
    assert "connection refused" in message.lower()
    assert "check [store] url" in message
    assert "hunter2" not in message
    assert "hunter2" not in repr(caught.value)


def test_plain_postgresql_urls_mean_psycopg(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable, match=re.escape(f"postgresql+psycopg://u:***@127.0.0.1:{port}/x")):
        Store.open(store_config(f"postgresql://u:pw@127.0.0.1:{port}/x", tmp_path))


def test_an_unusable_sqlite_folder_says_which_setting_to_check(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match=r"check \[store\] data_dir"):
        Store.open(StoreConfig(data_dir=str(blocker / "data")))


def test_an_unparsable_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot parse the \[store\] url") as caught:
        Store.open(store_config("::not a url hunter2::", tmp_path))
    assert "hunter2" not in str(caught.value)


# ---- gateway keys --------------------------------------------------------------------------------------------------


def test_keys_create_find_list_revoke(store: Store) -> None:
    created = store.create_key("alice", rps=2.5, concurrency=3, admin=True)
    key, secret = created.key, created.secret
    assert re.fullmatch(r"um_[A-Za-z0-9]{40}", secret)
    assert re.fullmatch(r"key_[0-9a-f]{16}", key.id)
    assert key.prefix == secret[:10]
    assert (key.name, key.rps, key.concurrency, key.admin, key.active) == ("alice", 2.5, 3, True, True)
    assert key.created_at.tzinfo is not None and key.created_at.utcoffset() == timedelta(0)
    assert secret not in repr(key) and key.secret_hash not in repr(key)

    found = store.find_key(secret)
    assert found == key and found.secret_hash == hash_secret(secret)
    assert store.find_key(secret + "x") is None
    assert store.get_key(key.id) == key

    other = store.create_key("bob").key
    assert [k.id for k in store.list_keys()] == [key.id, other.id]

    revoked = store.revoke_key(key.id)
    assert revoked.revoked_at is not None and not revoked.active
    assert store.revoke_key(key.id).revoked_at == revoked.revoked_at  # idempotent
    found_revoked = store.find_key(secret)  # still found, so the gateway can say "revoked"
    assert found_revoked is not None and not found_revoked.active
    assert [k.id for k in store.list_keys(include_revoked=False)] == [other.id]

    with pytest.raises(KeyNotFound, match="key_0000"):
        store.get_key("key_0000")
    with pytest.raises(KeyNotFound):
        store.revoke_key("key_0000")


def test_update_limits_leaves_unchanged_values(store: Store) -> None:
    key = store.create_key("alice", rps=5, concurrency=2).key
    assert (store.update_limits(key.id, rps=1.5).rps, store.get_key(key.id).concurrency) == (1.5, 2)
    updated = store.update_limits(key.id, concurrency=None)
    assert (updated.rps, updated.concurrency) == (1.5, None)
    updated = store.update_limits(key.id, rps=None, concurrency=UNCHANGED)
    assert (updated.rps, updated.concurrency) == (None, None)
    with pytest.raises(ValueError, match="rps"):
        store.update_limits(key.id, rps=-1)
    with pytest.raises(KeyNotFound):
        store.update_limits("key_0000", rps=1)


def test_only_the_hash_of_a_secret_is_stored(store: Store, store_url: str) -> None:
    created = store.create_key("alice")
    stored = " ".join(str(v) for row in raw_rows(store_url, "api_keys") for v in row)
    assert created.secret not in stored
    assert created.secret[10:] not in stored  # not even the part after the display prefix
    assert hash_secret(created.secret) in stored


def test_provider_keys_are_encrypted_at_rest(store: Store, store_url: str) -> None:
    key = store.create_key("alice").key
    store.set_provider_key(key.id, "openai", "sk-proj-PLAINTEXT-openai-1")
    store.set_provider_key(key.id, "anthropic", "sk-ant-PLAINTEXT-2")
    store.set_provider_key(key.id, "openai", "sk-proj-PLAINTEXT-openai-3")  # replaces
    assert store.provider_keys(key.id) == {"openai": "sk-proj-PLAINTEXT-openai-3", "anthropic": "sk-ant-PLAINTEXT-2"}
    assert store.get_key(key.id).providers == ("anthropic", "openai")
    rows = raw_rows(store_url, "provider_keys")
    assert len(rows) == 2
    assert "PLAINTEXT" not in " ".join(str(v) for row in rows for v in row)
    listed = repr(store.list_keys()) + repr(store.changed_keys(None))
    assert "PLAINTEXT" not in listed

    assert store.delete_provider_key(key.id, "anthropic") is True
    assert store.delete_provider_key(key.id, "anthropic") is False
    assert store.provider_keys(key.id) == {"openai": "sk-proj-PLAINTEXT-openai-3"}
    with pytest.raises(KeyNotFound):
        store.set_provider_key("key_0000", "openai", "sk-x")
    with pytest.raises(KeyNotFound):
        store.delete_provider_key("key_0000", "openai")
    with pytest.raises(ValueError, match="provider name"):
        store.set_provider_key(key.id, "bad name!", "sk-x")


def test_a_changed_secret_key_fails_clearly(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = store_config(store_url, tmp_path)
    monkeypatch.setenv("UNIMODEL_SECRET_KEY", "the first passphrase")
    first = Store.open(config)
    key = first.create_key("alice").key
    first.set_provider_key(key.id, "openai", "sk-PLAINTEXT-value")
    ciphertext = str(raw_rows(store_url, "provider_keys")[0][2])
    first.close()

    monkeypatch.setenv("UNIMODEL_SECRET_KEY", "another passphrase")
    second = Store.open(config)
    with pytest.raises(StoreError, match=r"secret key .*changed") as caught:
        second.provider_keys(key.id)
    assert "PLAINTEXT" not in str(caught.value) and ciphertext not in str(caught.value)
    assert second.get_key(key.id).providers == ("openai",)  # the rest of the store still works
    second.close()


def test_the_generated_secret_key_file_is_private(store: Store, store_url: str, tmp_path: Path) -> None:
    key = store.create_key("alice").key
    store.set_provider_key(key.id, "openai", "sk-1")
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "sk-1" not in path.read_text()

    os.chmod(path, 0o644)
    loose = Store.open(store_config(store_url, tmp_path / "data"))
    with pytest.raises(StoreError, match=r"readable by other users \(mode 0644\).*chmod 600"):
        loose.provider_keys(key.id)
    loose.close()


def test_processes_creating_the_secret_key_at_once_agree_on_it(tmp_path: Path) -> None:
    boxes: list[SecretBox] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        boxes.append(SecretBox.load(tmp_path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token = boxes[0].encrypt("x")
    assert all(box.decrypt(token) == "x" for box in boxes)
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary files left behind


def test_the_secret_key_may_be_a_fernet_key_or_any_passphrase() -> None:
    fernet = "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="
    assert fernet_key(fernet) == fernet.encode()
    derived = fernet_key("correct horse battery staple")
    assert derived == fernet_key("correct horse battery staple") and len(derived) == 44
    assert derived != fernet_key("correct horse battery stapler")


def test_changed_keys_follows_creation_revocation_and_provider_keys(store: Store) -> None:
    none, start = store.changed_keys(None)
    assert none == [] and start.tzinfo is not None

    alice = store.create_key("alice").key
    bob = store.create_key("bob").key
    changed, mark = store.changed_keys(None)
    assert [k.id for k in changed] == [alice.id, bob.id]
    assert store.changed_keys(mark, overlap=timedelta(0)) == ([], mark)
    assert {k.id for k in store.changed_keys(mark)[0]} == {alice.id, bob.id}  # the overlap window repeats them

    store.revoke_key(alice.id)
    changed, mark2 = store.changed_keys(mark, overlap=timedelta(0))
    assert [k.id for k in changed] == [alice.id] and changed[0].revoked_at is not None
    assert mark2 > mark

    store.set_provider_key(bob.id, "openai", "sk-1")
    changed, mark3 = store.changed_keys(mark2, overlap=timedelta(0))
    assert [(k.id, k.providers) for k in changed] == [(bob.id, ("openai",))]
    store.delete_provider_key(bob.id, "openai")
    changed, mark4 = store.changed_keys(mark3, overlap=timedelta(0))
    assert [(k.id, k.providers) for k in changed] == [(bob.id, ())]
    store.update_limits(bob.id, rps=1)
    assert [k.rps for k in store.changed_keys(mark4, overlap=timedelta(0))[0]] == [1]
    assert store.delete_provider_key(bob.id, "nothing-here") is False
    assert store.changed_keys(store.changed_keys(mark4)[1], overlap=timedelta(0))[0] == []


# ---- usage ledger --------------------------------------------------------------------------------------------------


def test_usage_write_query_and_totals(store: Store) -> None:
    alice = store.create_key("alice").key.id
    bob = store.create_key("bob").key.id
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    records = [
        usage(t0, alice),
        usage(t0 + timedelta(minutes=1), bob, model="anthropic/claude", status=429, cost_usd=None),
        usage((t0 + timedelta(minutes=2)).astimezone(plus2), None, kind="open", provider=None, inference_s=1.5),
        usage(t0 + timedelta(minutes=3), alice, status=500, input_tokens=None, output_tokens=None),
        usage(t0 + timedelta(days=1), alice),
    ]
    store.write_usage(records[::-1])  # written in any order, read in time order
    store.write_usage([])

    everything = store.query_usage(key_id=ANY_KEY)
    assert everything == records  # UsageRecord equality: same instants, fields and values
    assert all(r.time.utcoffset() == timedelta(0) for r in everything)
    assert everything[2].time == t0 + timedelta(minutes=2) and everything[2].time.tzinfo == UTC

    assert [r.key_id for r in store.query_usage(key_id=None)] == [None]
    assert store.query_usage(key_id=alice) == [records[0], records[3], records[4]]
    assert store.query_usage(key_id=ANY_KEY, model="anthropic/claude") == [records[1]]
    window = store.query_usage(key_id=ANY_KEY, start=t0 + timedelta(minutes=1), end=t0 + timedelta(minutes=3))
    assert window == records[1:3]  # start inclusive, end exclusive
    assert store.query_usage(key_id=ANY_KEY, start=(t0 + timedelta(minutes=3)).astimezone(plus2)) == records[3:]
    assert store.query_usage(key_id=ANY_KEY, limit=2) == records[:2]
    assert store.query_usage(key_id="key_0000") == []

    totals = store.usage_totals(key_id=ANY_KEY)
    assert (totals.requests, totals.errors, totals.input_tokens, totals.output_tokens) == (5, 2, 40, 20)
    assert totals.inference_s == pytest.approx(1.5)
    assert totals.cost_usd == pytest.approx(1.0)
    alice_day = store.usage_totals(key_id=alice, end=t0 + timedelta(hours=1))
    assert (alice_day.requests, alice_day.errors, alice_day.cost_usd) == (2, 1, pytest.approx(0.5))
    empty = store.usage_totals(key_id=ANY_KEY, model="nothing")
    assert (empty.requests, empty.errors, empty.input_tokens, empty.cost_usd) == (0, 0, 0, 0.0)


def test_usage_write_is_one_bulk_transaction(store: Store) -> None:
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    store.write_usage([usage(t0 + timedelta(milliseconds=i), None, request_id=f"r{i}") for i in range(2500)])
    assert store.usage_totals(key_id=None).requests == 2500
    assert [r.request_id for r in store.query_usage(key_id=ANY_KEY, limit=3)] == ["r0", "r1", "r2"]


def test_ping(store: Store) -> None:
    store.ping()
    store.close()
    store.ping()  # a closed store reconnects: close() only empties the pool
