"""The fake Hub (tests/fakes/hf_hub.py) serving one large file, for bench/pull/run.py.

    python bench/pull/serve.py --file blob.bin --port 18080 [--throttle-mbps 0]

Repos: `bench/blob-GGUF` holding the file as `blob.Q4_K_M.gguf` (an LFS file: 302 to the fake CDN). `GET
/_bench/served` answers the bytes and bodies served so far; `POST /_bench/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fakes.hf_hub import FakeHub  # noqa: E402 - the repo root is on the path only now

REPO_ID = "bench/blob-GGUF"
FILE = "blob.Q4_K_M.gguf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--throttle-mbps", type=float, default=0.0, help="MB/s per body; 0: as fast as it goes")
    args = parser.parse_args()
    hub = FakeHub()
    hub.add_repo(REPO_ID, {FILE: args.file})
    hub.repos[REPO_ID.lower()].files[FILE].sha256  # noqa: B018 - hashed now, not during the first timed HEAD
    hub.throttle_bps = args.throttle_mbps * 1e6 or None

    async def served(request: Request) -> JSONResponse:
        return JSONResponse({"bytes": dict(hub.bytes_served), "bodies": dict(hub.body_starts)})

    async def reset(request: Request) -> JSONResponse:
        hub.bytes_served.clear()
        hub.body_starts.clear()
        hub.requests.clear()
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/_bench/served", served),
            Route("/_bench/reset", reset, methods=["POST"]),
            Mount("/", app=hub.app),
        ]
    )
    print(f"http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
