"""What the store holds, as plain values: gateway keys and usage records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


class StoreError(Exception):
    """A store operation failed; the message says why and never contains a secret."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (or migrated); the message names it with its password hidden."""


class KeyNotFound(StoreError):
    """No gateway key has that id."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A gateway key as stored: never the secret itself, only its id, a display prefix and its limits."""

    id: str  # "key_" + 16 hex chars; safe to log and show
    name: str
    prefix: str  # the secret's first characters, e.g. "um_3f9a1c", to recognise it in a list
    rps: float | None  # None: the server's default ([limits] rps)
    concurrency: int | None  # None: the server's default ([limits] concurrency)
    admin: bool
    created_at: datetime
    revoked_at: datetime | None
    providers: tuple[str, ...] = ()  # providers it holds a stored key for (names only)
    # SHA-256 hex of the secret (store.hash_secret): lets a gateway keep every key in memory and look a presented
    # key up by its hash without asking the database. Not a secret (the secret has ~238 random bits), but kept out
    # of repr and of every output all the same.
    secret_hash: str = field(default="", repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str  # shown once, at creation; only its hash is stored


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One request, as the usage ledger keeps it."""

    time: datetime  # when the request arrived (UTC)
    request_id: str
    key_id: str | None  # None: an anonymous call in open mode
    model: str
    kind: Literal["open", "closed"]
    provider: str | None  # the closed provider ("openai"), or None for open models
    status: int
    input_tokens: int | None
    output_tokens: int | None
    inference_s: float | None  # instance-seconds (open models)
    cost_usd: float | None  # from the [prices] table; None when no row matches
    latency_ms: float
    units: float | None = None  # what a media call made or read, in `unit`
    unit: str | None = None  # "images", "seconds" (of audio), "characters" (spoken)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int
    errors: int  # status >= 400
    input_tokens: int
    output_tokens: int
    inference_s: float
    cost_usd: float
