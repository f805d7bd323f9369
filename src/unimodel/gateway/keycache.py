"""Gateway keys on the hot path: an in-memory copy of the key table, refreshed in the background.

A request's key is hashed once and looked up in a dict; the store is read only for a key this process has not
seen yet (once) and by the refresh loop (keys changed since the last watermark, every `[auth] cache_ttl_s`). A key that is
unknown to the store is remembered as unknown for one refresh period, so a client retrying a bad key cannot turn
every request into a database query. Revocations made by any process apply everywhere within `cache_ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..store import ApiKey, Store, StoreError, hash_secret

log = logging.getLogger("unimodel.auth")

_MAX_UNKNOWN = 10_000  # remembered bad-key hashes; the set is cleared when it grows past this


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a gateway key, or nobody (open mode)."""

    key_id: str | None
    name: str
    admin: bool = False
    rps: float = 0.0  # 0: unlimited
    concurrency: int = 0  # 0: unlimited
    provider_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def limit_key(self) -> str:
        return self.key_id or "anonymous"


class KeyStoreUnavailable(Exception):
    """A key this process has not seen could not be checked because the store is unreachable."""


@dataclass(slots=True)
class _Entry:
    key: ApiKey
    provider_keys: dict[str, str]


class KeyCache:
    def __init__(self, store: Store, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._id_of: dict[str, str] = {}  # secret hash → key id
        self._by_id: dict[str, _Entry] = {}
        self._unknown: dict[str, float] = {}  # secret hash → until when it is known to be no key
        self._watermark: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self.healthy = True

    async def start(self) -> None:
        """Take the current watermark, then refresh in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="unimodel-key-cache")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_s)
            await self.refresh()

    async def refresh(self) -> None:
        """Apply the keys changed since the last refresh (revoked, limits or provider keys changed)."""
        try:
            changed, watermark = await asyncio.to_thread(self._store.changed_keys, self._watermark)
            updates = [(key, await self._provider_keys(key)) for key in changed if key.id in self._by_id]
        except StoreError as exc:
            self._set_health(False, str(exc))
            return
        self._set_health(True)
        self._watermark = watermark
        for key, provider_keys in updates:
            self._by_id[key.id] = _Entry(key, provider_keys)
        if changed:
            self._unknown.clear()  # a key created elsewhere may be one we refused a moment ago

    def _set_health(self, healthy: bool, why: str = "") -> None:
        if self.healthy and not healthy:
            log.warning("key store unreachable; keys already seen keep working: %s", why)
        elif healthy and not self.healthy:
            log.info("key store reachable again")
        self.healthy = healthy

    async def _provider_keys(self, key: ApiKey) -> dict[str, str]:
        if not key.providers or not key.active:
            return {}
        return await asyncio.to_thread(self._store.provider_keys, key.id)

    async def lookup(self, secret: str) -> tuple[ApiKey, dict[str, str]] | None:
        """The key and its provider keys, or None when no key has this secret. Revoked keys are returned
        (the caller says "revoked"). Raises KeyStoreUnavailable for an unseen key while the store is down."""
        digest = hash_secret(secret)
        key_id = self._id_of.get(digest)
        if key_id is not None:
            entry = self._by_id[key_id]
            return entry.key, entry.provider_keys
        now = self._clock()
        until = self._unknown.get(digest)
        if until is not None and now < until:
            return None
        try:
            key = await asyncio.to_thread(self._store.find_key, secret)
            provider_keys = await self._provider_keys(key) if key is not None else {}
        except StoreError as exc:
            self._set_health(False, str(exc))
            raise KeyStoreUnavailable(str(exc)) from None
        if key is None:
            if len(self._unknown) >= _MAX_UNKNOWN:
                self._unknown.clear()
            self._unknown[digest] = now + self._ttl_s
            return None
        self._id_of[digest] = key.id
        self._by_id[key.id] = _Entry(key, provider_keys)
        return key, provider_keys
