"""The media store (gateway/media_store.py): how long a put and a get take, by item size and by how many items
are kept (every put sweeps the directory, so its cost grows with the items kept).

    .venv/bin/python bench/media_store/run.py                       # sizes 64 KiB, 1 MiB, 8 MiB; 100 … 5000 kept
    .venv/bin/python bench/media_store/run.py --kept 100,1000 --rounds 50

A temporary directory (on the disk the system's temp dir is on) is used and removed; nothing listens anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from unimodel.gateway.media_store import MediaStore
from unimodel.media_settings import MediaStoreConfig


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:8.2f} ms   p99 {p99 * 1000:8.2f} ms"


async def by_size(root: Path, rounds: int) -> None:
    store = MediaStore(MediaStoreConfig(max_item_bytes=64 << 20, max_total_bytes=8 << 30), root / "by_size")
    for size in (64 << 10, 1 << 20, 8 << 20):
        data = bytes(size)
        puts, gets = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            ref = await store.put(data, "image/png", "key")
            puts.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert len((await store.get(ref.id, "key")).data) == size
            gets.append(time.perf_counter() - started)
        print(f"size {size >> 10:6d} KiB   put {quantiles(puts)}   get {quantiles(gets)}")


async def by_kept(root: Path, kept: list[int], rounds: int) -> None:
    store = MediaStore(MediaStoreConfig(max_total_bytes=8 << 30), root / "by_kept")
    have = 0
    for target in kept:
        while have < target:  # fill to `target` items of 4 KiB
            await store.put(bytes(4096), "audio/mpeg", None)
            have += 1
        puts = []
        for _ in range(rounds):
            started = time.perf_counter()
            await store.put(bytes(4096), "audio/mpeg", None)
            puts.append(time.perf_counter() - started)
            have += 1
        print(f"kept {target:6d} items   put (4 KiB, with its sweep) {quantiles(puts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--kept", default="100,1000,5000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unimodel-media-bench-") as tmp:
        asyncio.run(by_size(Path(tmp), args.rounds))
        asyncio.run(by_kept(Path(tmp), [int(k) for k in args.kept.split(",")], args.rounds))


if __name__ == "__main__":
    main()
