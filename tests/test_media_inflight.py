"""`[media] max_inflight_bytes`: the image bytes fetched for inline-only providers (and the media of open models),
held by all requests together until each one's upstream call is sent (an open model's: until its instance has
answered), stay under one cap; requests past it wait in line, then get a 503.

Real HTTP on loopback throughout: an image host whose `/held/…` images answer only once a test opens its gate (so
a request can be kept mid-fetch without timing), the faithful Gemini fake upstream, and the gateway or a
ProviderClient with its real (aiohttp) transport. What is held is read off `MediaFetcher.inflight` and the
`unimodel_media_inflight_bytes` gauge.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from unimodel.config import MediaConfig, ProviderConfig, Settings
from unimodel.gateway import create_app
from unimodel.protocol import (
    ChatRequest,
    Finish,
    ImagePart,
    InvalidRequest,
    Message,
    TextPart,
    UpstreamError,
)
from unimodel.providers import ProviderClient
from unimodel.providers.google import GoogleAdapter
from unimodel.providers.media import BUSY, FAILED, REFUSED, MediaFetcher
from unimodel.providers.media_room import InflightBytes
from unimodel.runtime.backend import LocalBackend, worker_command

from .fakes.google_fake import create_google_app
from .fakes.script import FakeReply, FakeScript, RecordedRequest
from .fakes.server import LiveServer

GOOGLE_KEY = "AIzaSyTest-inflight-GOOGLEkey000000"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"
CAP_GAUGE = "unimodel_media_inflight_bytes"
FAKE_WORKER = str(Path(__file__).parent / "fakes" / "fake_worker.py")


def image(size: int) -> bytes:
    return PNG_HEAD + b"\0" * (size - len(PNG_HEAD))


class ImageHost:
    """`/png/<n>`: an n-byte PNG with Content-Length; `/chunked/<n>`: the same without one; `/held/<n>`: answers
    once `gate` is set (`arrived` counts those waiting); `/missing.png`: 404."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.arrived = 0
        self.url = ""

    def app(self) -> Starlette:
        async def png(request: Request) -> Response:
            return Response(image(int(request.path_params["n"])), media_type="image/png")

        async def chunked(request: Request) -> Response:
            data = image(int(request.path_params["n"]))

            async def body() -> AsyncIterator[bytes]:
                for start in range(0, len(data), 1000):
                    yield data[start : start + 1000]

            return StreamingResponse(body(), media_type="image/png")

        async def held(request: Request) -> Response:
            self.arrived += 1
            await asyncio.to_thread(self.gate.wait)  # set from the test's thread
            return Response(image(int(request.path_params["n"])), media_type="image/png")

        async def missing(request: Request) -> Response:
            return PlainTextResponse("no such image", status_code=404)

        return Starlette(
            routes=[
                Route("/png/{n:int}", png),
                Route("/chunked/{n:int}", chunked),
                Route("/held/{n:int}/{tag}", held),
                Route("/missing.png", missing),
            ]
        )


@pytest.fixture(scope="module")
def host_server() -> Iterator[ImageHost]:
    host = ImageHost()
    with LiveServer(host.app()) as server:
        host.url = server.url
        yield host
        host.gate.set()  # let any held answer go before the server stops


@pytest.fixture
def host(host_server: ImageHost) -> Iterator[ImageHost]:
    host_server.gate.clear()
    host_server.arrived = 0
    yield host_server
    host_server.gate.set()


class WatchingScript(FakeScript):
    """A Gemini script that notes, as each request reaches the upstream, the bytes the gateway holds."""

    def __init__(self) -> None:
        super().__init__(api_key=GOOGLE_KEY)
        self.watch: Callable[[], int] = lambda: 0
        self.held_on_arrival: list[int] = []

    def record(self, request: RecordedRequest) -> None:
        self.held_on_arrival.append(self.watch())
        super().record(request)


@pytest.fixture
def gemini() -> Iterator[tuple[WatchingScript, str]]:
    script = WatchingScript()
    with LiveServer(create_google_app(script)) as server:
        yield script, server.url


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state (not a time): fails only if it never comes within 20 s."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def inline_data(body: Any) -> list[str]:
    return [p["inlineData"]["data"] for c in body["contents"] for p in c["parts"] if "inlineData" in p]


def gauge() -> float | None:
    return REGISTRY.get_sample_value(CAP_GAUGE)


# ---- through the gateway ----


def gateway_app(upstream: str, **media: Any) -> Any:
    settings = Settings(
        providers={"google": ProviderConfig(base_url=upstream, api_key=GOOGLE_KEY, max_retries=0)},
        media=MediaConfig(allow_hosts=["127.0.0.1"], **media),
    )
    return create_app(settings)


def images_body(*urls: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "What is in these?"}]
    content += [{"type": "image", "url": url} for url in urls]
    return {"messages": [{"role": "user", "content": content}]}


async def test_requests_past_the_cap_wait_in_line_and_the_bytes_held_never_pass_it(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    script, upstream = gemini
    # Each request has two images of at most 10 KB, so it asks for 20 KB: two fit under 45 KB, a third does not.
    app = gateway_app(upstream, max_bytes=10_000, max_inflight_bytes=45_000, inflight_wait_s=30)
    inflight: InflightBytes = app.state.gateway._media.inflight
    script.watch = lambda: inflight.used
    with LiveServer(app) as gateway:
        url = gateway.url + "/models/v2/google/gemini-2.5-flash"
        async with httpx.AsyncClient(timeout=30) as client:

            def ask(n: int) -> asyncio.Task[httpx.Response]:
                urls = (f"{host.url}/held/8000/{n}a", f"{host.url}/held/8000/{n}b")
                return asyncio.create_task(client.post(url, json=images_body(*urls)))

            first = [ask(n) for n in range(2)]
            await until(lambda: host.arrived == 4, "both requests fetching")
            assert inflight.used == 40_000 and gauge() == 40_000
            later = [ask(n) for n in range(2, 5)]
            await until(lambda: inflight.waiting == 3, "three requests in line")
            assert inflight.used == 40_000  # nobody got in past the cap
            host.gate.set()
            answers = await asyncio.gather(*first, *later)
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert all(inline_data(body) == [base64.b64encode(image(8000)).decode()] * 2 for body in script.bodies())
    assert max(script.held_on_arrival) <= 45_000
    assert inflight.peak <= 45_000 and inflight.queued == 3
    assert inflight.used == 0 and inflight.waiting == 0 and gauge() == 0


async def test_a_request_that_finds_no_room_in_time_gets_a_503_media_busy_with_retry_after(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    _, upstream = gemini
    app = gateway_app(upstream, max_bytes=10_000, max_inflight_bytes=25_000, inflight_wait_s=0.2)
    inflight: InflightBytes = app.state.gateway._media.inflight
    with LiveServer(app) as gateway:
        async with httpx.AsyncClient(timeout=30) as client:
            holder = asyncio.create_task(
                client.post(
                    gateway.url + "/models/v2/google/gemini-2.5-flash",
                    json=images_body(f"{host.url}/held/8000/a", f"{host.url}/held/8000/b"),
                )
            )
            await until(lambda: host.arrived == 2, "the first request fetching")
            v2 = await client.post(
                gateway.url + "/models/v2/google/gemini-2.5-flash", json=images_body(f"{host.url}/png/9000")
            )
            picture = {"type": "image_url", "image_url": {"url": f"{host.url}/png/9000"}}
            oai = await client.post(
                gateway.url + "/v1/chat/completions",
                json={"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": [picture]}]},
            )
            assert inflight.waiting == 0 and inflight.used == 20_000  # the refused requests left the line
            host.gate.set()
            held = await holder
    assert (v2.status_code, v2.json()["code"], v2.headers["retry-after"]) == (503, BUSY, "2")
    assert v2.json()["error"].startswith("unimodel already holds as many fetched image bytes as it may at once")
    assert "[media] max_inflight_bytes" in v2.json()["error"] and "within 0.2 s" in v2.json()["error"]
    assert (oai.status_code, oai.json()["error"]["code"], oai.headers["retry-after"]) == (503, BUSY, "2")
    assert held.status_code == 200, held.text
    assert inflight.used == 0


def test_images_that_together_pass_the_cap_are_refused_rather_than_waited_for(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    script, upstream = gemini
    app = gateway_app(upstream, max_bytes=10_000, max_inflight_bytes=25_000, inflight_wait_s=30)
    with LiveServer(app) as gateway:
        r = httpx.post(
            gateway.url + "/models/v2/google/gemini-2.5-flash",
            json=images_body(*(f"{host.url}/png/9000?n={n}" for n in range(3))),  # 27 KB > 25 KB: could never fit
            timeout=30,
        )
    assert (r.status_code, r.json()["code"]) == (400, REFUSED)
    assert "the images of this request together are larger than 24.4 KB" in r.json()["error"]
    assert script.requests == [] and app.state.gateway._media.inflight.used == 0


# ---- ProviderClient: what is held while, and that it always comes back ----


def client_for(upstream: str, **media: Any) -> tuple[ProviderClient, MediaFetcher]:
    fetcher = MediaFetcher(MediaConfig(allow_hosts=["127.0.0.1"], **media))
    adapter = GoogleAdapter(ProviderConfig(base_url=upstream, max_retries=0))
    return ProviderClient(adapter, media=fetcher), fetcher


def ask(*urls: str, stream: bool = False) -> ChatRequest:
    parts = (TextPart("What is this?"), *(ImagePart(url=u) for u in urls))
    return ChatRequest(model="gemini-2.5-flash", messages=(Message("user", parts),), stream=stream)


async def test_a_request_holds_what_its_images_took_until_its_upstream_call_is_sent_then_nothing(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    script, upstream = gemini
    client, fetcher = client_for(upstream, max_bytes=10_000)
    script.watch = lambda: fetcher.inflight.used
    try:
        result = await client.complete(
            ask(f"{host.url}/png/8000", f"{host.url}/png/7000", f"{host.url}/chunked/5000"), GOOGLE_KEY
        )
    finally:
        await client.aclose()
        await fetcher.aclose()
    assert result.text
    # Asked for 3 x 10 KB up front; by the time the body reached the provider, only the bytes fetched.
    assert script.held_on_arrival == [8000 + 7000 + 5000]
    assert fetcher.inflight.peak == 30_000
    assert fetcher.inflight.used == 0


async def test_a_stream_gives_its_room_back_once_it_is_open_before_its_events_are_read(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    script, upstream = gemini
    client, fetcher = client_for(upstream, max_bytes=10_000)
    script.watch = lambda: fetcher.inflight.used
    try:
        events = await client.stream(ask(f"{host.url}/png/8000", stream=True), GOOGLE_KEY)
        assert fetcher.inflight.used == 0
        assert isinstance([e async for e in events][-1], Finish)
    finally:
        await client.aclose()
        await fetcher.aclose()
    assert script.held_on_arrival == [8000]


@pytest.mark.parametrize("status", [400, 500, 503])
async def test_the_room_comes_back_when_the_upstream_answers_an_error(
    host: ImageHost, gemini: tuple[WatchingScript, str], status: int
) -> None:
    script, upstream = gemini
    script.push(FakeReply(status=status))
    client, fetcher = client_for(upstream, max_bytes=10_000)
    try:
        with pytest.raises((InvalidRequest, UpstreamError)):
            await client.complete(ask(f"{host.url}/png/8000"), GOOGLE_KEY)
    finally:
        await client.aclose()
        await fetcher.aclose()
    assert len(script.requests) == 1 and fetcher.inflight.used == 0


@pytest.mark.parametrize(
    ("path", "code"), [("/missing.png", FAILED), ("/png/12000", REFUSED), ("/chunked/12000", REFUSED)]
)
async def test_the_room_comes_back_when_an_image_fetch_fails(
    host: ImageHost, gemini: tuple[WatchingScript, str], path: str, code: str
) -> None:
    script, upstream = gemini
    client, fetcher = client_for(upstream, max_bytes=10_000)
    try:
        with pytest.raises(InvalidRequest) as caught:
            await client.complete(ask(f"{host.url}/png/8000", host.url + path), GOOGLE_KEY)
    finally:
        await client.aclose()
        await fetcher.aclose()
    assert caught.value.code == code
    assert script.requests == [] and fetcher.inflight.used == 0


async def test_the_room_comes_back_when_the_caller_goes_away_mid_fetch(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    script, upstream = gemini
    client, fetcher = client_for(upstream, max_bytes=10_000)
    try:
        call = asyncio.create_task(client.complete(ask(f"{host.url}/held/8000/x"), GOOGLE_KEY))
        await until(lambda: host.arrived == 1, "the image fetch under way")
        assert fetcher.inflight.used == 10_000
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert fetcher.inflight.used == 0
    finally:
        host.gate.set()
        await client.aclose()
        await fetcher.aclose()
    assert script.requests == []


async def test_a_caller_that_goes_away_while_in_line_leaves_the_line_and_takes_nothing(
    host: ImageHost, gemini: tuple[WatchingScript, str]
) -> None:
    _, upstream = gemini
    client, fetcher = client_for(upstream, max_bytes=10_000, max_inflight_bytes=15_000, inflight_wait_s=30)
    try:
        first = asyncio.create_task(client.complete(ask(f"{host.url}/held/8000/y"), GOOGLE_KEY))
        await until(lambda: host.arrived == 1, "the first request fetching")
        second = asyncio.create_task(client.complete(ask(f"{host.url}/png/8000"), GOOGLE_KEY))
        await until(lambda: fetcher.inflight.waiting == 1, "the second request in line")
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert (fetcher.inflight.waiting, fetcher.inflight.used) == (0, 10_000)
        host.gate.set()
        assert (await first).text
    finally:
        host.gate.set()
        await client.aclose()
        await fetcher.aclose()
    assert fetcher.inflight.used == 0


# ---- the line itself ----


async def test_room_is_granted_in_arrival_order_so_small_requests_do_not_starve_a_large_one() -> None:
    line = InflightBytes(100)
    await line.acquire(60, wait_s=30)
    large = asyncio.create_task(line.acquire(50, wait_s=30))
    await until(lambda: line.waiting == 1, "the large request in line")
    small = asyncio.create_task(line.acquire(10, wait_s=30))  # would fit now, but arrived after the large one
    await until(lambda: line.waiting == 2, "the small request in line")
    assert not small.done() and line.used == 60
    line.release(60)
    await asyncio.gather(large, small)
    assert line.used == 60 and line.waiting == 0 and line.peak == 60


async def test_a_waiter_that_times_out_lets_the_ones_behind_it_in() -> None:
    line = InflightBytes(100)
    await line.acquire(60, wait_s=30)
    large = asyncio.create_task(line.acquire(50, wait_s=0.05))
    await until(lambda: line.waiting == 1, "the large request in line")
    small = asyncio.create_task(line.acquire(10, wait_s=30))
    with pytest.raises(TimeoutError):
        await large
    await small  # the head left: the small one fits and goes
    assert line.used == 70 and line.waiting == 0


async def test_an_open_models_fetched_media_count_under_the_cap_until_its_instance_answers(
    host: ImageHost, gemini: tuple[WatchingScript, str], tmp_path: Path
) -> None:
    # the gateway fetches an open model's image URL and sends the bytes inline: they are held like a provider's
    _, upstream = gemini
    settings = Settings(
        providers={"google": ProviderConfig(base_url=upstream, api_key=GOOGLE_KEY, max_retries=0)},
        media=MediaConfig(allow_hosts=["127.0.0.1"], max_bytes=10_000, max_inflight_bytes=15_000, inflight_wait_s=0.2),
        models=[{"id": "acme/see", "task": "image-classification", "engine_args": {"delay_s": 1.5}}],
        runtime={"default_models": False, "log_dir": str(tmp_path)},
    )
    command = functools.partial(worker_command, program=[sys.executable, FAKE_WORKER])
    app = create_app(settings, backend=LocalBackend(settings.runtime, command_for=command))
    inflight: InflightBytes = app.state.gateway._media.inflight
    with LiveServer(app) as gateway:
        async with httpx.AsyncClient(timeout=60) as client:
            run = asyncio.create_task(
                client.post(gateway.url + "/models/v2/acme/see", json={"input": f"{host.url}/png/9000"})
            )
            await until(lambda: inflight.used == 9000, "the open model's image fetched and held")
            busy = await client.post(
                gateway.url + "/models/v2/google/gemini-2.5-flash", json=images_body(f"{host.url}/png/9000")
            )
            assert inflight.used == 9000  # still held: the instance has not answered yet
            answer = await run
    assert (busy.status_code, busy.json()["code"]) == (503, BUSY)
    assert answer.status_code == 200, answer.text
    sent = base64.b64encode(image(9000)).decode()
    assert answer.json()["output"] == f"echo: data:image/png;base64,{sent}"  # the fake worker echoes what it got
    assert inflight.used == 0 and gauge() == 0
