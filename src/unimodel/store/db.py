"""The store: gateway keys, the provider keys they hold, the usage ledger (and stored responses, responses.py), in
SQLite or PostgreSQL.

Every method is synchronous and short; the gateway calls them through `asyncio.to_thread`, never on the event loop.
Every failure is a StoreError (StoreUnavailable when the database cannot be reached) whose message names the
database with its password hidden and never contains a secret, a hash or a ciphertext.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import string
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Engine, String, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from ..config import StoreConfig
from . import engine as engines
from .crypto import SecretBox
from .migrate import current_revision, head_revision, upgrade
from .models import ApiKeyRow, ProviderKeyRow, UsageRow
from .responses import ResponseMethods
from .types import ApiKey, CreatedKey, KeyNotFound, StoreError, StoreUnavailable, UsageRecord, UsageTotals

SECRET_PREFIX = "um_"
SECRET_LENGTH = 40  # base62 characters after the prefix: about 238 random bits
PREFIX_LENGTH = 10  # characters of the secret kept for display ("um_" + 7)
# changed_keys looks this far behind its watermark: a change made by another process (another clock, or a
# transaction that commits a moment after it took its timestamp) can land just before a watermark already handed
# out. Keys inside the window come back again; callers apply them idempotently.
CHANGE_OVERLAP = timedelta(seconds=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BASE62 = string.ascii_letters + string.digits
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class AnyKey(enum.Enum):
    """`query_usage(key_id=ANY_KEY)`: records of every key and anonymous ones (`key_id=None` means anonymous only)."""

    ANY_KEY = "any"


class Unchanged(enum.Enum):
    """`update_limits(rps=UNCHANGED)`: leave the value as it is (None means "the server's default")."""

    UNCHANGED = "unchanged"


ANY_KEY = AnyKey.ANY_KEY
UNCHANGED = Unchanged.UNCHANGED


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a gateway key's secret: what the store keeps and looks keys up by. A fast hash is right here:
    the secrets are long random strings, not passwords, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(SECRET_LENGTH))


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def _now() -> datetime:
    return datetime.now(UTC)


class Store(ResponseMethods):
    """A connection pool to the store's database; safe to share between threads. Build it with `Store.open`.
    The Responses API's stored answers are its methods too (responses.py)."""

    def __init__(self, engine: Engine, url: URL, *, data_dir: str, default_sqlite: bool) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**engines.WRITE)
        self._url = url
        self._data_dir = data_dir
        self._default_sqlite = default_sqlite
        self._box: SecretBox | None = None
        self._box_lock = threading.Lock()

    @classmethod
    def open(cls, config: StoreConfig, *, migrate: bool = True) -> Store:
        """Connect, bring the schema to head (`migrate`) or check it is there, and make sure a query runs.

        Raises StoreUnavailable with a message that names the database (password hidden) and what to check.
        """
        default_sqlite = config.url is None
        url = engines.parse_url(config.sqlalchemy_url())
        eng = engines.create(url, default_sqlite=default_sqlite)
        store = cls(eng, url, data_dir=config.data_dir, default_sqlite=default_sqlite)
        try:
            with store._errors():
                # Siblings starting at once (`serve --workers N`) hold an SQLite file's locks in turn: wait, never fail.
                engines.retry_while_busy(lambda: store._open_schema(migrate=migrate))
        except BaseException as e:
            eng.dispose()
            if isinstance(e, StoreError) and not isinstance(e, StoreUnavailable):
                raise StoreUnavailable(str(e)) from e  # e.g. no right to create the tables: the store can't be used
            raise
        return store

    @property
    def url_for_display(self) -> str:
        """The database URL with its password replaced by ***."""
        return engines.display(self._url)

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a query now."""
        with self._errors(), self._engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").all()

    def close(self) -> None:
        self._engine.dispose()

    # ---- gateway keys ------------------------------------------------------------------------------------------

    def create_key(
        self, name: str, *, rps: float | None = None, concurrency: int | None = None, admin: bool = False
    ) -> CreatedKey:
        """A new key. Its secret is in the answer, and only there: the store keeps its hash."""
        if not name.strip():
            raise ValueError("a key needs a name (who or what it is for)")
        _check_limits(rps, concurrency)
        secret = new_secret()
        now = _now()
        row = ApiKeyRow(
            id=new_key_id(),
            name=name,
            prefix=secret[:PREFIX_LENGTH],
            secret_hash=hash_secret(secret),
            rps=rps,
            concurrency=concurrency,
            admin=admin,
            created_at=now,
            revoked_at=None,
            updated_at=now,
        )
        with self._errors(), Session(self._writer) as session, session.begin():
            session.add(row)
            session.flush()
            key = _api_key(row, ())
        return CreatedKey(key=key, secret=secret)

    def list_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first."""
        where = [] if include_revoked else [ApiKeyRow.revoked_at.is_(None)]
        return self._keys(*where)

    def get_key(self, key_id: str) -> ApiKey:
        keys = self._keys(ApiKeyRow.id == key_id)
        if not keys:
            raise KeyNotFound(f"no gateway key has the id {key_id!r}")
        return keys[0]

    def find_key(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, revoked ones included (check `.active`), or None."""
        keys = self._keys(ApiKeyRow.secret_hash == hash_secret(secret))
        return keys[0] if keys else None

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key (again: no change). Gateways see it within their cache refresh interval."""
        now = _now()
        with self._errors(), Session(self._writer) as session, session.begin():
            session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=now, updated_at=now)
            )
        return self.get_key(key_id)

    def update_limits(
        self,
        key_id: str,
        *,
        rps: float | Unchanged | None = UNCHANGED,
        concurrency: int | Unchanged | None = UNCHANGED,
    ) -> ApiKey:
        """Set a key's own limits; None means "the server's default", UNCHANGED leaves a value as it is."""
        _check_limits(None if rps is UNCHANGED else rps, None if concurrency is UNCHANGED else concurrency)
        values: dict[str, Any] = {"updated_at": _now()}
        if rps is not UNCHANGED:
            values["rps"] = rps
        if concurrency is not UNCHANGED:
            values["concurrency"] = concurrency
        with self._errors(), Session(self._writer) as session, session.begin():
            session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(**values))
        return self.get_key(key_id)

    def changed_keys(
        self, since: datetime | None, *, overlap: timedelta = CHANGE_OVERLAP
    ) -> tuple[list[ApiKey], datetime]:
        """Keys changed (created, revoked, limits or provider keys changed) after `since` — all keys when None — and
        the watermark to pass next time. Keys changed up to `overlap` before `since` come back again (see
        CHANGE_OVERLAP); a gateway refreshes its in-memory cache with this every couple of seconds."""
        where = [] if since is None else [ApiKeyRow.updated_at > since - overlap]
        keys, latest = self._keys_and_latest(*where)
        floor = since if since is not None else _EPOCH
        return keys, max(latest, floor) if latest is not None else floor

    # ---- provider keys -----------------------------------------------------------------------------------------

    def set_provider_key(self, key_id: str, provider: str, secret: str) -> None:
        """Store (or replace) the key this gateway key uses for `provider`, encrypted with the master key."""
        if not _PROVIDER_NAME.fullmatch(provider):
            raise ValueError(f"invalid provider name {provider!r}: letters, digits, '_', '.', '-' (at most 64)")
        if not secret.strip():
            raise ValueError("the provider key is empty")
        ciphertext = self._secret_box().encrypt(secret.strip())
        now = _now()
        table = ProviderKeyRow.__table__
        with self._errors(), Session(self._writer) as session, session.begin():
            self._touch(session, key_id, now)
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(table).values(key_id=key_id, provider=provider, ciphertext=ciphertext, updated_at=now)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key_id", "provider"],
                    set_={"ciphertext": stmt.excluded.ciphertext, "updated_at": stmt.excluded.updated_at},
                )
            )

    def delete_provider_key(self, key_id: str, provider: str) -> bool:
        """Forget the key for `provider`; False when there was none. KeyNotFound when the gateway key is unknown."""
        with self._errors(), Session(self._writer) as session, session.begin():
            deleted = session.execute(
                delete(ProviderKeyRow).where(ProviderKeyRow.key_id == key_id, ProviderKeyRow.provider == provider)
            )
            if _rowcount(deleted):
                self._touch(session, key_id, _now())
                return True
            if session.get(ApiKeyRow, key_id) is None:
                raise KeyNotFound(f"no gateway key has the id {key_id!r}")
            return False

    def provider_keys(self, key_id: str) -> dict[str, str]:
        """Provider → decrypted key for one gateway key. For the gateway's upstream calls only: never show these."""
        with self._errors(), self._engine.connect() as conn:
            rows = conn.execute(
                select(ProviderKeyRow.provider, ProviderKeyRow.ciphertext).where(ProviderKeyRow.key_id == key_id)
            ).all()
        if not rows:
            return {}
        box = self._secret_box()
        return {provider: box.decrypt(ciphertext) for provider, ciphertext in rows}

    # ---- usage ledger ------------------------------------------------------------------------------------------

    def write_usage(self, records: Sequence[UsageRecord]) -> None:
        """Insert records in one transaction (one multi-row INSERT per batch of rows).

        A record no database could hold is refused (StoreError, naming the field) before anything is sent, so that
        SQLite and PostgreSQL accept exactly the same records; the ledger then writes the others without it.
        """
        if not records:
            return
        for r in records:
            problem = _unstorable(r)
            if problem is not None:
                raise StoreError(f"usage record refused: {problem}")
        rows = [
            {
                "time": r.time,
                "request_id": r.request_id,
                "key_id": r.key_id,
                "model": r.model,
                "kind": r.kind,
                "provider": r.provider,
                "status": r.status,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "inference_s": r.inference_s,
                "cost_usd": r.cost_usd,
                "latency_ms": r.latency_ms,
                "units": r.units,
                "unit": r.unit,
            }
            for r in records
        ]
        with self._errors(), self._writer.begin() as conn:
            conn.execute(insert(UsageRow), rows)

    def query_usage(
        self,
        *,
        key_id: str | AnyKey | None,
        start: datetime | None = None,
        end: datetime | None = None,
        model: str | None = None,
        limit: int = 1000,
    ) -> list[UsageRecord]:
        """The first `limit` records in time order with `start <= time < end`. `key_id`: one key's records, None for
        anonymous ones, ANY_KEY for all. `model`: an exact model id."""
        stmt = (
            select(UsageRow)
            .where(*_usage_filters(key_id, start, end, model))
            .order_by(UsageRow.time, UsageRow.id)
            .limit(limit)
        )
        with self._errors(), Session(self._engine) as session:
            return [_usage_record(row) for row in session.scalars(stmt)]

    def usage_totals(
        self,
        *,
        key_id: str | AnyKey | None,
        start: datetime | None = None,
        end: datetime | None = None,
        model: str | None = None,
    ) -> UsageTotals:
        """Sums over the records `query_usage` would select, without a limit, computed by the database."""
        stmt = select(
            func.count(),
            func.coalesce(func.sum(case((UsageRow.status >= 400, 1), else_=0)), 0),
            func.coalesce(func.sum(UsageRow.input_tokens), 0),
            func.coalesce(func.sum(UsageRow.output_tokens), 0),
            func.coalesce(func.sum(UsageRow.inference_s), 0.0),
            func.coalesce(func.sum(UsageRow.cost_usd), 0.0),
        ).where(*_usage_filters(key_id, start, end, model))
        with self._errors(), self._engine.connect() as conn:
            requests, errors, input_tokens, output_tokens, inference_s, cost_usd = conn.execute(stmt).one()
        return UsageTotals(
            requests=int(requests),
            errors=int(errors),
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            inference_s=float(inference_s),
            cost_usd=float(cost_usd),
        )

    # ---- internals ---------------------------------------------------------------------------------------------

    def _errors(self) -> AbstractContextManager[None]:
        return engines.translate_errors(self._url, default_sqlite=self._default_sqlite)

    def _open_schema(self, *, migrate: bool) -> None:
        if migrate:
            upgrade(self._engine)
        else:
            self._check_schema()
        with self._engine.connect() as conn:
            conn.execute(select(ApiKeyRow.id).limit(1)).all()

    def _check_schema(self) -> None:
        with self._engine.connect() as conn:
            current = current_revision(conn)
        head = head_revision()
        if current != head:
            raise StoreUnavailable(
                f"the database {self.url_for_display} is at schema revision {current or 'none (empty)'}, "
                f"this unimodel needs {head} — open it once with migrations on"
            )

    def _secret_box(self) -> SecretBox:
        with self._box_lock:
            if self._box is None:
                self._box = SecretBox.load(self._data_dir)
            return self._box

    def _touch(self, session: Session, key_id: str, now: datetime) -> None:
        """Bump a key's updated_at, so gateways reload it; KeyNotFound when there is no such key."""
        result = session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(updated_at=now))
        if not _rowcount(result):
            raise KeyNotFound(f"no gateway key has the id {key_id!r}")

    def _keys(self, *where: ColumnElement[bool]) -> list[ApiKey]:
        return self._keys_and_latest(*where)[0]

    def _keys_and_latest(self, *where: ColumnElement[bool]) -> tuple[list[ApiKey], datetime | None]:
        """Keys matching `where` with their provider names (one query), and their latest updated_at."""
        stmt = (
            select(ApiKeyRow, ProviderKeyRow.provider)
            .outerjoin(ProviderKeyRow, ProviderKeyRow.key_id == ApiKeyRow.id)
            .where(*where)
            .order_by(ApiKeyRow.created_at, ApiKeyRow.id, ProviderKeyRow.provider)
        )
        rows: dict[str, tuple[ApiKeyRow, list[str]]] = {}
        with self._errors(), Session(self._engine) as session:
            for row, provider in session.execute(stmt):
                entry = rows.setdefault(row.id, (row, []))
                if provider is not None:
                    entry[1].append(provider)
        latest = max((row.updated_at for row, _ in rows.values()), default=None)
        return [_api_key(row, tuple(providers)) for row, providers in rows.values()], latest


# What PostgreSQL refuses and SQLite would take: NUL in text, strings past a VARCHAR's length, integers past 32 bits.
_INT32 = range(-(2**31), 2**31)
_TEXT_FIELDS = {
    name: cast(String, UsageRow.__table__.c[name].type).length
    for name in ("request_id", "key_id", "model", "kind", "provider", "unit")
}
_INT_FIELDS = ("status", "input_tokens", "output_tokens")


def _unstorable(record: UsageRecord) -> str | None:
    """Why `record` cannot be stored on every database unimodel supports, or None."""
    for name, length in _TEXT_FIELDS.items():
        value = getattr(record, name)
        if value is None:
            continue
        if "\x00" in value:
            return f"{name} contains a NUL character (U+0000), which PostgreSQL cannot store"
        if length is not None and len(value) > length:
            return f"{name} is {len(value)} characters long, the database keeps at most {length}"
    for name in _INT_FIELDS:
        value = getattr(record, name)
        if value is not None and value not in _INT32:
            return f"{name} = {value} does not fit the database's 32-bit integer column"
    return None


def _check_limits(rps: float | None, concurrency: int | None) -> None:
    if rps is not None and not rps >= 0:
        raise ValueError("rps must be 0 (unlimited) or more")
    if concurrency is not None and concurrency < 0:
        raise ValueError("concurrency must be 0 (unlimited) or more")


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _api_key(row: ApiKeyRow, providers: tuple[str, ...]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        rps=row.rps,
        concurrency=row.concurrency,
        admin=row.admin,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        providers=providers,
        secret_hash=row.secret_hash,
    )


def _usage_filters(
    key_id: str | AnyKey | None, start: datetime | None, end: datetime | None, model: str | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if key_id is None:
        where.append(UsageRow.key_id.is_(None))
    elif not isinstance(key_id, AnyKey):
        where.append(UsageRow.key_id == key_id)
    if start is not None:
        where.append(UsageRow.time >= start)
    if end is not None:
        where.append(UsageRow.time < end)
    if model is not None:
        where.append(UsageRow.model == model)
    return where


def _usage_record(row: UsageRow) -> UsageRecord:
    return UsageRecord(
        time=row.time,
        request_id=row.request_id,
        key_id=row.key_id,
        model=row.model,
        kind=cast(Literal["open", "closed"], row.kind),
        provider=row.provider,
        status=row.status,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        inference_s=row.inference_s,
        cost_usd=row.cost_usd,
        latency_ms=row.latency_ms,
        units=row.units,
        unit=row.unit,
    )
