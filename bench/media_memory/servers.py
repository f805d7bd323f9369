"""The two servers the media-memory benchmark needs, in one process on 127.0.0.1 (aiohttp):

- an image host: ``GET /img/<anything>.png`` answers the same ``--image-bytes`` PNG (a PNG signature, then
  random bytes, so nothing compresses it), with ``Content-Length`` and ``image/png``;
- a Gemini sink: ``POST /<version>/models/<model>:generateContent`` reads and discards the body and answers a
  canned ``GenerateContentResponse``; ``GET /stats`` gives ``{"requests": n, "max_body_bytes": b,
  "total_body_bytes": t}``.

Run: ``python servers.py --image-bytes 4194304``; it prints ``READY <image port> <sink port>`` once both listen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from aiohttp import web

GEMINI_ANSWER = json.dumps(
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Twelve images."}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 3100, "candidatesTokenCount": 3, "totalTokenCount": 3103},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "bench-response",
    }
).encode()


def image_host(size: int) -> web.Application:
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    app = web.Application()
    app.router.add_get("/img/{name:.+}", serve)
    return app


def gemini_sink() -> web.Application:
    stats = {"requests": 0, "max_body_bytes": 0, "total_body_bytes": 0}

    async def generate(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(1 << 20):  # discarded as read: the sink holds no body
            size += len(chunk)
        stats["requests"] += 1
        stats["max_body_bytes"] = max(stats["max_body_bytes"], size)
        stats["total_body_bytes"] += size
        return web.Response(body=GEMINI_ANSWER, content_type="application/json")

    async def report(request: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/{version}/models/{method}", generate)
    app.router.add_get("/stats", report)
    return app


async def main(size: int) -> None:
    runners = [web.AppRunner(image_host(size), access_log=None), web.AppRunner(gemini_sink(), access_log=None)]
    ports = []
    for runner in runners:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        ports.append(server.sockets[0].getsockname()[1])
    print(f"READY {ports[0]} {ports[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-bytes", type=int, default=4 * 1024 * 1024)
    asyncio.run(main(parser.parse_args().image_bytes))
