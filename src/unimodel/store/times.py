"""Times people type to select usage (`from`, `to`): ISO 8601 text made timezone-aware UTC.

The store compares UTC times (models.UTCDateTime), so a time is moved to UTC where it is parsed: a moment that
leaves the years 1-9999 on the way (`0001-01-01T00:00:00+23:59`) is a bad value to report to whoever typed it, not
an error for the database to find later.
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_SHOWN = 64  # characters of a bad value quoted back in a message


def shown(text: str) -> str:
    """`text` as a message may quote it: control characters escaped, bounded."""
    return ascii(text[:MAX_SHOWN]) + ("…" if len(text) > MAX_SHOWN else "")


def to_utc(moment: datetime) -> datetime:
    """`moment` in UTC (a naive one is taken as UTC already); ValueError when that leaves the years 1-9999."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside the years 1 to 9999 once converted to UTC") from None


def parse_iso(text: str) -> datetime:
    """An ISO 8601 date or date-time as aware UTC (UTC when it names no zone); ValueError saying why not."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is not an ISO 8601 date or time (like 2026-11-25T10:00:00Z)") from None
    return to_utc(moment)
