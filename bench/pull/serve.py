"""The fake Hub (tests/fakes/hf_hub.py) serving one large file, for bench/pull/run.py.

    python bench/pull/serve.py --file blob.bin --port 18080 [--throttle-mbps 0] [--repo ID --name FILE] [--warmup]

One repo (`bench/blob-GGUF` holding the file as `blob.Q4_K_M.gguf` unless --repo/--name say otherwise; an LFS
file: 302 to the fake CDN); with --warmup also `bench/warmup-GGUF`, one 1 MB file that is not a real GGUF
(for a server's first pull, never loaded). `GET /_bench/served` answers the bytes and bodies served so far, `GET
/_bench/events` the time (CLOCK_MONOTONIC, comparable across processes on this machine) each request arrived
and each answer's last byte left; `POST /_bench/reset` zeroes both; `POST /_bench/throttle?mbps=X` sets the
throttle from then on. The file's hashes and the model info (its
GGUF header) are computed at start, so the first timed request pays for none of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fakes.hf_hub import FakeHub, model_info_json  # noqa: E402 - the repo root is on the path only now

REPO_ID = "bench/blob-GGUF"
FILE = "blob.Q4_K_M.gguf"
WARMUP_REPO = "bench/warmup-GGUF"

Scope = dict[str, Any]


class Events:
    """An ASGI wrapper noting when each request arrives and when its answer's last byte is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_bench/"):
            await self.app(scope, receive, send)
            return
        event: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "arrived": time.monotonic(),
            "status": None,
            "ended": None,
        }
        self.seen.append(event)

        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                event["status"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                event["ended"] = time.monotonic()

        await self.app(scope, receive, noting)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--throttle-mbps", type=float, default=0.0, help="MB/s per body; 0: as fast as it goes")
    parser.add_argument("--repo", default=REPO_ID)
    parser.add_argument("--name", default=FILE, help="the file's name in the repo")
    parser.add_argument("--warmup", action="store_true", help=f"also serve {WARMUP_REPO}")
    args = parser.parse_args()
    hub = FakeHub()
    if args.warmup:
        hub.add_repo(WARMUP_REPO, {"warmup.Q4_K_M.gguf": bytes(1_000_000)})
    repo = hub.add_repo(args.repo, {args.name: args.file})
    repo.files[args.name].sha256  # noqa: B018 - hashed now, not during the first timed HEAD
    model_info_json(repo, blobs=True)  # the GGUF header read now, not during the first timed model-info call
    hub.throttle_bps = args.throttle_mbps * 1e6 or None
    events = Events(hub.app)

    async def served(request: Request) -> JSONResponse:
        return JSONResponse({"bytes": dict(hub.bytes_served), "bodies": dict(hub.body_starts)})

    async def seen(request: Request) -> JSONResponse:
        return JSONResponse(events.seen)

    async def reset(request: Request) -> JSONResponse:
        hub.bytes_served.clear()
        hub.body_starts.clear()
        hub.requests.clear()
        events.seen.clear()
        return JSONResponse({})

    async def throttle(request: Request) -> JSONResponse:
        hub.throttle_bps = float(request.query_params["mbps"]) * 1e6 or None
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/_bench/throttle", throttle, methods=["POST"]),
            Route("/_bench/served", served),
            Route("/_bench/events", seen),
            Route("/_bench/reset", reset, methods=["POST"]),
            Mount("/", app=events),
        ]
    )
    print(f"http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
