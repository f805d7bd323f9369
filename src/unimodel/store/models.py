"""The tables, as typed SQLAlchemy declarative models.

The migrations in `migrations/versions/` create these tables; the models are what the code queries through, so the
two must agree (tests/test_store.py checks that a migrated database holds exactly these columns).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Dialect, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC on the way in and out, on every database.

    PostgreSQL keeps `timestamptz` and answers in the session's zone; SQLite keeps text without a zone. Values are
    converted to UTC before they are stored (a naive value is taken as UTC already) and come back tagged UTC, so
    comparisons and the text order SQLite sorts by agree with time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    """A gateway key. `secret_hash` is the SHA-256 of the secret: the secret itself is never stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    rps: Mapped[float | None] = mapped_column(Float)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every change to the key or its provider keys: gateways poll `updated_at > watermark`.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ProviderKeyRow(Base):
    """A provider key a gateway key holds, Fernet-encrypted (see crypto.py)."""

    __tablename__ = "provider_keys"

    key_id: Mapped[str] = mapped_column(String(32), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageRow(Base):
    """One request in the usage ledger. Free-form strings are unbounded so that no value can fail a whole batch."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_key_id_time", "key_id", "time"),)

    # 64-bit on PostgreSQL; SQLite's rowid is 64-bit already but autoincrements only as INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    request_id: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    inference_s: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    units: Mapped[float | None] = mapped_column(Float)  # media calls: images, seconds of audio, characters
    unit: Mapped[str | None] = mapped_column(String(16))


class ResponseRow(Base):
    """A Responses API answer kept for `GET`/`DELETE /v1/responses/{id}` and `previous_response_id`: readable only
    with the key that made it (`key_id` None: anonymous callers, who share one scope), until `expires_at`.

    `response` is the Response object and `input_items` every item the model was given (the conversation so far), as
    JSON text: the store keeps them, the frontend reads them.
    """

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    input_items: Mapped[str] = mapped_column(Text)
