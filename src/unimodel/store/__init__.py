"""Keys, provider keys and the usage ledger, kept in SQLite (a file in the data folder) or PostgreSQL.

The gateway never calls the store on its hot path: keys are cached in memory (refreshed with `changed_keys`),
usage records go through the buffered `UsageLedger`. Stored Responses API answers are the one exception, by
contract: the id a stored answer carries must work at once, from any gateway process, so it is written before the
answer's last event is sent (responses.py).
"""

from __future__ import annotations

from .db import ANY_KEY, CHANGE_OVERLAP, UNCHANGED, AnyKey, Store, Unchanged, hash_secret
from .ledger import UsageLedger
from .pricing import PriceTable, cost, price_for
from .responses import StoredResponse
from .types import ApiKey, CreatedKey, KeyNotFound, StoreError, StoreUnavailable, UsageRecord, UsageTotals

__all__ = [
    "ANY_KEY",
    "CHANGE_OVERLAP",
    "UNCHANGED",
    "AnyKey",
    "ApiKey",
    "CreatedKey",
    "KeyNotFound",
    "PriceTable",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredResponse",
    "Unchanged",
    "UsageLedger",
    "UsageRecord",
    "UsageTotals",
    "cost",
    "hash_secret",
    "price_for",
]
