"""Generated media (images, speech) kept for a while and served by the server itself at `GET /models/v2/media/{id}`.

    store = MediaStore(settings.media.store, settings.store.data_dir)
    ref = await store.put(png_bytes, "image/png", owner=ctx.principal.key_id, base_url=media_base_url(request, cfg))
    ref.url   # http://host:8080/models/v2/media/<id>: the v2 output of a text-to-image run
    item = await store.get(media_id, owner)       # NotFound for an unknown, expired or someone else's id

Each item is two files in the store's directory: `<id>.bin` (the bytes) and `<id>.json` (content type, size, owner,
when it was made), the second written last, so an item exists once both are there. Files, not memory: every process
of `serve --workers N` shares `[store] data_dir`, so any of them serves what another made.

- Ids are `secrets.token_urlsafe` (192 bits): unguessable, and safe as file names (checked again on the way in).
- Scope: with gateway keys on, an item belongs to the key that made it (`owner`, the key's id); another key or an
  unknown id get the same 404, so ids cannot be probed. Items made in open mode (no key) are anyone's.
- Retention: an item older than `retention_s` is a 404 and is deleted by the next sweep; a sweep runs with every
  `put` and deletes the oldest items first while the kept bytes would pass `max_total_bytes`. A sweep reads an
  index of the kept items this process holds (O(1) a put), re-read from the directory every `RESCAN_S`: with
  several processes, the total may pass the cap by what the others added since, for at most that long.
- An output larger than `max_item_bytes` is refused (502 `media_too_large`, naming the setting and the way around it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from ..media_settings import MediaStoreConfig
from ..protocol import NotFound, UnimodelError
from .context import context

MEDIA_PATH = "/models/v2/media/"
RESCAN_S = 60.0  # how often a put re-reads the directory rather than trusting this process's own index
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A kept item: its id, and the URL to hand back (`base_url` + `/models/v2/media/<id>`)."""

    id: str
    content_type: str
    size: int
    url: str


@dataclass(frozen=True, slots=True)
class StoredMedia:
    data: bytes
    content_type: str
    created: float  # Unix time
    expires: float


@dataclass(frozen=True, slots=True)
class _Meta:
    id: str
    content_type: str
    size: int
    owner: str | None
    created: float


class MediaTooLarge(UnimodelError):
    status = 502
    code = "media_too_large"


class MediaStore:
    """Generated media on disk, scoped by owner, bounded in age and total size. `clock` is injected (tests)."""

    def __init__(
        self, config: MediaStoreConfig, data_dir: str | Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.root = Path(config.dir or Path(data_dir) / "media").expanduser()
        self._clock = clock
        self._lock = threading.Lock()  # one sweep-and-write at a time in this process
        # What is kept, oldest first, and its bytes: read from disk at the first put and every RESCAN_S after (so
        # items other processes made count too), kept up to date by this process's puts in between.
        self._index: dict[str, _Meta] | None = None
        self._total = 0
        self._scanned = 0.0

    async def put(self, data: bytes, content_type: str, owner: str | None, *, base_url: str = "") -> MediaRef:
        """Keep `data` and return its reference; `owner` is the gateway key's id (None in open mode)."""
        if len(data) > self.config.max_item_bytes:
            raise MediaTooLarge(
                f"The generated output is {len(data)} bytes, over the {self.config.max_item_bytes} bytes the server "
                "keeps for one URL ([media.store] max_item_bytes); ask for the bytes themselves instead (b64_json, or "
                "json: false with stream: true on /models/v2)."
            )
        media_id = secrets.token_urlsafe(24)
        meta = _Meta(media_id, content_type, len(data), owner, self._clock())
        await asyncio.to_thread(self._write, meta, data)
        return MediaRef(media_id, content_type, len(data), f"{base_url.rstrip('/')}{MEDIA_PATH}{media_id}")

    async def get(self, media_id: str, owner: str | None) -> StoredMedia:
        """The item, for the key that made it (or anyone, for an item made without a key); else a 404."""
        return await asyncio.to_thread(self._read, media_id, owner)

    def sweep(self, incoming: int = 0) -> int:
        """Delete expired items, then the oldest while the kept bytes plus `incoming` pass the total cap; how many
        were deleted."""
        with self._lock:
            return self._sweep(incoming)

    def _write(self, meta: _Meta, data: bytes) -> None:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep(len(data))
            _atomic_write(self.root / f"{meta.id}.bin", data)
            record = {"content_type": meta.content_type, "size": meta.size, "owner": meta.owner}
            _atomic_write(self.root / f"{meta.id}.json", json.dumps({**record, "created": meta.created}).encode())
            assert self._index is not None  # the sweep above made it
            self._index[meta.id] = meta
            self._total += meta.size

    def _read(self, media_id: str, owner: str | None) -> StoredMedia:
        missing = NotFound(f"No media '{media_id[:64]}' (it may have expired, or belong to another key).")
        if not _ID.fullmatch(media_id):
            raise missing
        meta = self._meta(self.root / f"{media_id}.json")
        if meta is None or (meta.owner is not None and meta.owner != owner):
            raise missing
        expires = meta.created + self.config.retention_s
        if self._clock() >= expires:
            raise missing
        try:
            data = (self.root / f"{media_id}.bin").read_bytes()
        except FileNotFoundError:
            raise missing from None
        return StoredMedia(data, meta.content_type, meta.created, expires)

    def _sweep(self, incoming: int) -> int:
        now = self._clock()
        if self._index is None or now - self._scanned >= RESCAN_S:
            self._rescan(now)
        assert self._index is not None
        removed = 0
        for meta in list(self._index.values()):  # oldest first: expired ones, then what the total cap needs
            if now - meta.created < self.config.retention_s and self._total + incoming <= self.config.max_total_bytes:
                break
            removed += self._remove(meta.id)
        return removed

    def _rescan(self, now: float) -> None:
        """Read every record on disk (items other processes made included), oldest first."""
        try:
            entries = [e for e in os.scandir(self.root) if e.name.endswith(".json")]
        except FileNotFoundError:
            entries = []
        found = (self._meta(Path(entry.path)) for entry in entries)
        self._index = {m.id: m for m in sorted((m for m in found if m is not None), key=lambda m: m.created)}
        self._total = sum(m.size for m in self._index.values())
        self._scanned = now

    def _remove(self, media_id: str) -> int:
        if self._index is not None and (meta := self._index.pop(media_id, None)) is not None:
            self._total -= meta.size
        for suffix in (".json", ".bin"):  # the record first: an item without one is not served
            (self.root / f"{media_id}{suffix}").unlink(missing_ok=True)
        return 1

    @staticmethod
    def _meta(path: Path) -> _Meta | None:
        try:
            raw = json.loads(path.read_bytes())
            owner = raw.get("owner")
            return _Meta(
                path.stem,
                str(raw["content_type"]),
                int(raw["size"]),
                owner if isinstance(owner, str) else None,
                float(raw["created"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # gone meanwhile, or not one of ours


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def media_base_url(request: Request, config: MediaStoreConfig) -> str:
    """Where the caller reaches this server: `[media.store] public_url`, else the base URL the caller used — in the
    runtime process of `serve --workers N`, the one the forwarding gateway process saw (sent with the internal
    token), not the runtime's own internal address."""
    if config.public_url:
        return config.public_url
    return context(request).base_url or str(request.base_url).rstrip("/")
