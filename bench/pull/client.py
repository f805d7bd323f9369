"""One download of the bench file, timed from inside the process (imports and start-up excluded).

    python bench/pull/client.py MODE ENDPOINT CACHE_DIR [--callers N]

MODE: `httpx` (a plain streamed GET of the resolve URL, redirects followed, 1 MiB writes: the Python wire
baseline), `hf_hub_download` (huggingface_hub alone), `unimodel` (HubClient.plan + Pull, progress read at
10 Hz as the CLI does), `unimodel-shared` (N concurrent HubModels.ensure calls in one process). Prints one
JSON line: seconds, this process's CPU seconds, bytes, progress samples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

REPO_ID = "bench/blob-GGUF"
FILE = "blob.Q4_K_M.gguf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["httpx", "hf_hub_download", "unimodel", "unimodel-shared"])
    parser.add_argument("endpoint")
    parser.add_argument("cache", type=Path)
    parser.add_argument("--callers", type=int, default=8)
    args = parser.parse_args()
    import httpx
    import huggingface_hub

    from unimodel.config import HubConfig
    from unimodel.runtime.hub import HubModels

    models = HubModels(HubConfig(endpoint=args.endpoint, cache_dir=str(args.cache)), environ={})
    samples = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.mode == "httpx":
        args.cache.mkdir(parents=True, exist_ok=True)
        url = f"{args.endpoint}/{REPO_ID}/resolve/main/{FILE}"
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as r, open(args.cache / FILE, "wb") as f:
            for chunk in r.iter_bytes(1024 * 1024):
                f.write(chunk)
        path = args.cache / FILE
    elif args.mode == "hf_hub_download":
        path = Path(
            huggingface_hub.hf_hub_download(REPO_ID, FILE, endpoint=args.endpoint, cache_dir=args.cache, token=False)
        )
    elif args.mode == "unimodel":
        pull = models.pull(models.client.plan(REPO_ID))
        while not pull.done():
            pull.progress()
            samples += 1
            time.sleep(0.1)
        path = pull.result().path
    else:

        async def shared() -> Path:
            results = await asyncio.gather(*(models.ensure(REPO_ID) for _ in range(args.callers)))
            assert len({r.path for r in results}) == 1
            return results[0].path

        path = asyncio.run(shared())
    seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "bytes": os.path.getsize(path), "samples": samples}))


if __name__ == "__main__":
    main()
