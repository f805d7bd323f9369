"""Stored answers of the Responses API: the `Store` methods that keep, read, delete and expire them.

A response belongs to the gateway key that made it (`key_id`; None for anonymous callers, who share one scope): a
read or delete with another key finds nothing, exactly as for an id that never existed. A response past its
`expires_at` is not found either, and `purge_responses` deletes such rows in batches.

Like every store method these are synchronous and short; the gateway runs them in a thread.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Engine, delete, insert, select

from .models import ResponseRow

_INSERT = insert(ResponseRow)  # built once: its compiled form is cached by SQLAlchemy either way


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored response. `response` (the Response object) and `input_items` (every item the model was given)
    are JSON text, written and read by the Responses frontend; the store does not look inside."""

    id: str
    key_id: str | None
    model: str
    status: str
    created_at: datetime
    expires_at: datetime
    previous_response_id: str | None
    response: str
    input_items: str


class ResponseMethods:
    """Mixed into `Store` (db.py), whose engines and error translation these use."""

    _engine: Engine
    _writer: Engine

    def _errors(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # db.Store's

    def save_response(self, stored: StoredResponse) -> None:
        """Keep a response (a new id: the gateway makes ids of 192 random bits)."""
        row = {
            "id": stored.id,
            "key_id": stored.key_id,
            "model": stored.model,
            "status": stored.status,
            "created_at": stored.created_at,
            "expires_at": stored.expires_at,
            "previous_response_id": stored.previous_response_id,
            "response": stored.response,
            "input_items": stored.input_items,
        }
        with self._errors(), self._writer.begin() as conn:
            conn.execute(_INSERT, row)

    def get_response(
        self, response_id: str, *, key_id: str | None, now: datetime | None = None
    ) -> StoredResponse | None:
        """The response with this id made with this key (None: anonymously), unless it has expired; else None."""
        stmt = select(ResponseRow).where(*_mine(response_id, key_id, now))
        with self._errors(), self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return StoredResponse(
            id=row.id,
            key_id=row.key_id,
            model=row.model,
            status=row.status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            previous_response_id=row.previous_response_id,
            response=row.response,
            input_items=row.input_items,
        )

    def delete_response(self, response_id: str, *, key_id: str | None, now: datetime | None = None) -> bool:
        """Delete the response with this id made with this key; False when there is none (or it has expired)."""
        with self._errors(), self._writer.begin() as conn:
            result = conn.execute(delete(ResponseRow).where(*_mine(response_id, key_id, now)))
        return bool(getattr(result, "rowcount", 0))

    def purge_responses(self, *, now: datetime | None = None, limit: int = 10_000) -> int:
        """Delete up to `limit` expired responses (oldest expiry first); how many went."""
        expired = (
            select(ResponseRow.id)
            .where(ResponseRow.expires_at <= (now or datetime.now(UTC)))
            .order_by(ResponseRow.expires_at)
            .limit(limit)
        )
        with self._errors(), self._writer.begin() as conn:
            ids = list(conn.execute(expired).scalars())
            if not ids:
                return 0
            conn.execute(delete(ResponseRow).where(ResponseRow.id.in_(ids)))
        return len(ids)


def _mine(response_id: str, key_id: str | None, now: datetime | None) -> list[ColumnElement[bool]]:
    owner = ResponseRow.key_id.is_(None) if key_id is None else ResponseRow.key_id == key_id
    return [ResponseRow.id == response_id, owner, ResponseRow.expires_at > (now or datetime.now(UTC))]
