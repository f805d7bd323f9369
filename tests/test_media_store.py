"""The store of generated media (gateway/media_store.py): kept bytes come back with their content type, for their
owner only; the retention limit and the size caps remove or refuse what they must."""

from __future__ import annotations

from pathlib import Path

import pytest

from unimodel.gateway.media_store import RESCAN_S, MediaStore, MediaTooLarge
from unimodel.media_settings import MediaStoreConfig
from unimodel.protocol import NotFound


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def store(tmp_path: Path, clock: Clock, **config: object) -> MediaStore:
    return MediaStore(MediaStoreConfig.model_validate(config), tmp_path, clock=clock)


async def test_an_item_comes_back_whole_with_its_content_type_at_an_unguessable_url(tmp_path: Path) -> None:
    media = store(tmp_path, Clock())
    ref = await media.put(b"\x89PNG fake", "image/png", "key1", base_url="http://127.0.0.1:8080/")
    assert ref.url == f"http://127.0.0.1:8080/models/v2/media/{ref.id}" and len(ref.id) >= 32
    item = await media.get(ref.id, "key1")
    assert (item.data, item.content_type) == (b"\x89PNG fake", "image/png")
    assert (tmp_path / "media" / f"{ref.id}.bin").read_bytes() == b"\x89PNG fake"
    other = await media.put(b"x", "audio/wav", "key1")
    assert other.id != ref.id


async def test_another_key_an_unknown_id_and_a_path_get_the_same_404(tmp_path: Path) -> None:
    media = store(tmp_path, Clock())
    ref = await media.put(b"mine", "image/png", "key1")
    for media_id, owner in ((ref.id, "key2"), (ref.id, None), ("A" * 32, "key1"), ("../../etc/passwd", "key1")):
        with pytest.raises(NotFound):
            await media.get(media_id, owner)
    anyone = await media.put(b"open mode", "image/png", None)  # made without a key: anyone's
    assert (await media.get(anyone.id, "key2")).data == b"open mode"


async def test_the_retention_limit_removes_old_media(tmp_path: Path) -> None:
    clock = Clock()
    media = store(tmp_path, clock, retention_s=60)
    old = await media.put(b"old", "image/png", None)
    clock.now += 59
    assert (await media.get(old.id, None)).data == b"old"
    clock.now += 1
    with pytest.raises(NotFound):  # expired: a 404 at once, before any sweep
        await media.get(old.id, None)
    assert (tmp_path / "media" / f"{old.id}.bin").exists()
    new = await media.put(b"new", "image/png", None)  # a put sweeps
    assert not (tmp_path / "media" / f"{old.id}.bin").exists()
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == sorted([f"{new.id}.bin", f"{new.id}.json"])


async def test_the_total_cap_deletes_the_oldest_first_and_the_item_cap_refuses(tmp_path: Path) -> None:
    clock = Clock()
    media = store(tmp_path, clock, max_total_bytes=10, max_item_bytes=6)
    first = await media.put(b"aaaa", "image/png", None)
    clock.now += 1
    second = await media.put(b"bbbb", "image/png", None)
    clock.now += 1
    third = await media.put(b"cccc", "image/png", None)  # 12 bytes would pass 10: the oldest goes
    with pytest.raises(NotFound):
        await media.get(first.id, None)
    assert (await media.get(second.id, None)).data == b"bbbb"
    assert (await media.get(third.id, None)).data == b"cccc"
    with pytest.raises(MediaTooLarge) as refused:
        await media.put(b"1234567", "image/png", None)
    assert refused.value.status == 502 and "max_item_bytes" in refused.value.message


async def test_a_store_in_another_process_serves_what_this_one_made(tmp_path: Path) -> None:
    clock = Clock()
    ref = await store(tmp_path, clock).put(b"shared", "audio/mpeg", "k")
    assert (await store(tmp_path, clock).get(ref.id, "k")).content_type == "audio/mpeg"


async def test_the_total_cap_counts_what_other_processes_kept(tmp_path: Path) -> None:
    clock = Clock()
    one, other = store(tmp_path, clock, max_total_bytes=10), store(tmp_path, clock, max_total_bytes=10)
    first = await one.put(b"aaaa", "image/png", None)
    clock.now += 1
    second = await other.put(b"bbbb", "image/png", None)  # its first put reads the directory: 8 bytes kept
    clock.now += 1
    await one.put(b"cc", "image/png", None)  # within RESCAN_S: `one` counts only its own 4 + 2 bytes
    assert (await one.get(first.id, None)).data == b"aaaa"
    clock.now += RESCAN_S
    await one.put(b"dd", "image/png", None)  # re-read: 4 + 4 + 2 + 2 passes 10, the oldest goes
    with pytest.raises(NotFound):
        await one.get(first.id, None)
    assert (await one.get(second.id, None)).data == b"bbbb"


def test_urls_start_with_the_requests_own_base_or_the_configured_public_url() -> None:
    from pydantic import ValidationError
    from starlette.requests import Request

    from unimodel.gateway.media_store import media_base_url

    scope = {"type": "http", "scheme": "http", "server": ("10.0.0.5", 8080), "path": "/v1/images/generations",
             "root_path": "", "query_string": b"", "headers": [(b"host", b"models.lan:8080")]}  # fmt: skip
    assert media_base_url(Request(scope), MediaStoreConfig()) == "http://models.lan:8080"
    behind = MediaStoreConfig(public_url="https://models.example.com/")
    assert media_base_url(Request(scope), behind) == "https://models.example.com"
    with pytest.raises(ValidationError, match="must start with http"):
        MediaStoreConfig(public_url="models.example.com")
