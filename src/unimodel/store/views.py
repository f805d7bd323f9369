"""The one JSON form of keys and usage records, shared by the admin/usage API and the CLI's --json/csv output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .types import ApiKey, UsageRecord, UsageTotals

RECORD_FIELDS = (
    "time",
    "requestId",
    "keyId",
    "model",
    "kind",
    "provider",
    "status",
    "inputTokens",
    "outputTokens",
    "inferenceSeconds",
    "costUsd",
    "latencyMs",
    "units",
    "unit",
)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the microsecond."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as shown to people: never its secret or hash."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "rps": key.rps,
        "concurrency": key.concurrency,
        "admin": key.admin,
        "createdAt": iso(key.created_at),
        "revokedAt": iso(key.revoked_at) if key.revoked_at else None,
        "providers": list(key.providers),
    }


def record_view(record: UsageRecord) -> dict[str, Any]:
    values = (
        iso(record.time),
        record.request_id,
        record.key_id,
        record.model,
        record.kind,
        record.provider,
        record.status,
        record.input_tokens,
        record.output_tokens,
        None if record.inference_s is None else round(record.inference_s, 6),
        None if record.cost_usd is None else round(record.cost_usd, 10),
        record.latency_ms,
        record.units,
        record.unit,
    )
    return dict(zip(RECORD_FIELDS, values, strict=True))


def totals_view(totals: UsageTotals) -> dict[str, Any]:
    return {
        "requests": totals.requests,
        "errors": totals.errors,
        "inputTokens": totals.input_tokens,
        "outputTokens": totals.output_tokens,
        "inferenceSeconds": round(totals.inference_s, 6),
        "costUsd": round(totals.cost_usd, 10),
    }
