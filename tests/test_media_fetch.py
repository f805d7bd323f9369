"""The media fetcher: image URLs become inline data for inline-only providers, and never a way inside.

Every fetch that is allowed goes to a real image server on 127.0.0.1 (LiveServer). Every fetcher here sends
through `LoopbackOnly`, which fails the test if a request would leave loopback, and uses a fake resolver, so
no test asks DNS or the internet anything. Refusals are asserted to happen before any request is sent.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import json
import logging
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from unimodel.config import ConfigError, MediaConfig, ProviderConfig, Settings, load_settings
from unimodel.gateway import create_app
from unimodel.protocol import (
    ChatRequest,
    ImagePart,
    InvalidRequest,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from unimodel.providers import ProviderClient
from unimodel.providers.base import UpstreamRequest
from unimodel.providers.client import encode_taking_strings
from unimodel.providers.media import FAILED, REFUSED, MediaFetcher, address_problem
from unimodel.providers.openai import OpenAIAdapter

from .fakes.server import LiveServer


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()
SECRET = "sig=SECRET-TOKEN-123"


class ImageHost:
    """A small image server: what it was asked for, and how many requests it served at once."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (path, Host header)
        self.in_flight = 0
        self.peak = 0
        self.url = ""
        self.port = 0

    def reset(self) -> None:
        self.seen.clear()
        self.in_flight = self.peak = 0

    def app(self) -> Starlette:
        async def record(request: Request) -> None:
            self.seen.append((request.url.path, request.headers.get("host", "")))

        async def png(request: Request) -> Response:
            await record(request)
            return Response(PNG, media_type="image/png")

        async def octets(request: Request) -> Response:
            await record(request)
            return Response(PNG, media_type="application/octet-stream")

        async def page(request: Request) -> Response:
            await record(request)
            return Response("<html><body>not an image</body></html>", media_type="text/html")

        async def missing(request: Request) -> Response:
            await record(request)
            return PlainTextResponse("no", status_code=404)

        async def redirect_to(request: Request) -> Response:
            await record(request)
            return RedirectResponse(request.query_params["url"], status_code=302)

        async def loop(request: Request) -> Response:
            await record(request)
            return RedirectResponse("/loop", status_code=302)

        async def hop(request: Request) -> Response:
            await record(request)
            n = int(request.path_params["n"])
            return (
                RedirectResponse(f"/hop/{n - 1}", status_code=301) if n > 0 else Response(PNG, media_type="image/png")
            )

        async def big(request: Request) -> Response:
            await record(request)

            async def body() -> AsyncIterator[bytes]:
                for _ in range(64):
                    yield b"\x89PNG" + b"\0" * 4092  # 256 KB in all, chunked: no Content-Length

            return StreamingResponse(body(), media_type="image/png")

        async def big_declared(request: Request) -> Response:
            await record(request)
            return Response(b"\0" * 300_000, media_type="image/png")

        async def sized(request: Request) -> Response:
            await record(request)
            return Response(PNG + b"\0" * int(request.path_params["n"]), media_type="image/png")

        async def slow(request: Request) -> Response:
            await record(request)
            await asyncio.sleep(3)
            return Response(PNG, media_type="image/png")

        async def drip(request: Request) -> Response:
            await record(request)

            async def body() -> AsyncIterator[bytes]:
                yield PNG[:8]
                for _ in range(30):  # each byte well inside a read timeout; the whole far past timeout_s
                    await asyncio.sleep(0.1)
                    yield b"\0"

            return StreamingResponse(body(), media_type="image/png")

        async def gallery(request: Request) -> Response:
            await record(request)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(0.25)
            finally:
                self.in_flight -= 1
            return Response(PNG, media_type="image/png")

        return Starlette(
            routes=[
                Route("/cat.png", png),
                Route("/cat.bin", octets),
                Route("/page.html", page),
                Route("/missing.png", missing),
                Route("/to", redirect_to),
                Route("/loop", loop),
                Route("/hop/{n}", hop),
                Route("/big.png", big),
                Route("/big-declared.png", big_declared),
                Route("/sized/{n}", sized),
                Route("/slow.png", slow),
                Route("/drip.png", drip),
                Route("/gallery/{i}", gallery),
            ]
        )


class LoopbackOnly(httpx.AsyncBaseTransport):
    """Sends to loopback addresses only, and records every request; anything else fails the test."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        address = ipaddress.ip_address(request.url.host)  # always an address: the fetcher pins what it checked
        assert address.is_loopback, f"a test tried to send traffic to {address}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FakeDNS:
    """A resolver with fixed answers that records what it was asked; unknown names do not resolve."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


@pytest.fixture(scope="module")
def host() -> Iterator[ImageHost]:
    image_host = ImageHost()
    with LiveServer(image_host.app()) as server:
        image_host.url, image_host.port = server.url, server.port
        yield image_host


@pytest.fixture
def image_host(host: ImageHost) -> ImageHost:
    host.reset()
    return host


def url_of(host: ImageHost, path: str) -> str:
    return host.url + path


Fetcher = tuple[MediaFetcher, LoopbackOnly, FakeDNS]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[Any]:
    made: list[MediaFetcher] = []

    def make(answers: dict[str, list[str]] | None = None, **config: Any) -> Fetcher:
        transport, dns = LoopbackOnly(), FakeDNS(answers)
        fetcher = MediaFetcher(MediaConfig(**config), transport=transport, resolver=dns)
        made.append(fetcher)
        return fetcher, transport, dns

    yield make
    for fetcher in made:
        await fetcher.aclose()


def ask(*parts: TextPart | ImagePart) -> ChatRequest:
    """A request whose image sits at messages[1].content[1] when given (text, image)."""
    return ChatRequest(model="m", messages=(Message("system", (TextPart("Be brief."),)), Message("user", tuple(parts))))


def image_of(request: ChatRequest, i: int = 1, j: int = 1) -> ImagePart:
    part = request.messages[i].parts[j]
    assert isinstance(part, ImagePart)
    return part


# ---- refusals: before any byte is sent ----

PUBLIC = "93.184.215.14"  # answered by the fake resolver only; nothing here connects to it


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/a.png", "points at 127.0.0.1, a loopback address"),
        ("http://127.0.0.1:8080/a.png", "loopback address"),
        ("http://localhost/a.png", "'localhost', which resolves to a loopback address"),
        ("http://img.localhost/a.png", "loopback address"),
        ("http://[::1]/a.png", "points at ::1, a loopback address"),
        ("http://10.0.0.1/a.png", "private address"),
        ("http://192.168.1.1/a.png", "private address"),
        ("http://172.16.0.1/a.png", "private address"),
        ("http://169.254.169.254/latest/meta-data/iam", "cloud metadata address"),
        ("http://169.254.1.1/a.png", "link-local address"),
        ("http://100.64.0.1/a.png", "shared (CGNAT) address"),
        ("http://100.100.100.200/latest/meta-data/", "cloud metadata address"),
        ("http://0.0.0.0/a.png", "unspecified address"),
        ("http://224.0.0.1/a.png", "multicast address"),
        ("http://[::]/a.png", "unspecified address"),
        ("http://[::ffff:127.0.0.1]/a.png", "loopback address"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("http://[64:ff9b::a00:1]/a.png", "private address inside an IPv6 address"),  # NAT64 of 10.0.0.1
        ("http://[2002:7f00:1::]/a.png", "loopback address inside an IPv6 address"),  # 6to4 of 127.0.0.1
        ("http://[fe80::1]/a.png", "link-local address"),
        ("http://[fc00::1]/a.png", "private address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
        ("http://2130706433/a.png", "numeric address in a non-standard form"),  # 127.0.0.1 as one number
        ("http://0x7f.1/a.png", "numeric address in a non-standard form"),
        ("http://127.1/a.png", "numeric address in a non-standard form"),
        ("http://017700000001/a.png", "numeric address in a non-standard form"),
        ("http://0177.0.0.1/a.png", "not a valid URL"),  # octal quad: httpx refuses to parse it
        ("http://%31%32%37.0.0.1/a.png", "does not give a valid host name"),  # percent-encoded 127
        ("http://user:hunter2@images.example/a.png", "carries credentials"),
        ("http://metadata.google.internal/computeMetadata/v1/", "a cloud metadata host"),
        ("http://metadata/computeMetadata/v1/", "a cloud metadata host"),
        ("http://mixed.example/a.png", "'mixed.example', which resolves to a private address"),
        ("http://rebind.example/a.png", "loopback address"),
        ("http://images.example:8080/a.png", "port 8080; images are fetched from ports 80, 443 only"),
        ("https://images.example:22/a.png", "port 22"),
    ],
)
async def test_non_public_and_malformed_image_urls_are_refused_before_any_request(
    make_fetcher: Any, caplog: pytest.LogCaptureFixture, url: str, why: str
) -> None:
    answers = {
        "mixed.example": [PUBLIC, "10.0.0.5"],  # ANY bad address refuses
        "rebind.example": ["::ffff:127.0.0.1"],
        "images.example": [PUBLIC],
    }
    fetcher, transport, dns = make_fetcher(answers)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.inline_images(ask(TextPart("What is this?"), ImagePart(url=f"{url}?{SECRET}")))
    err = caught.value
    assert (err.status, err.code, err.param) == (400, REFUSED, "messages[1].content[1]")
    assert err.message.startswith("messages[1].content[1]: ")
    assert why in err.message
    assert transport.requests == []
    assert "SECRET" not in err.message and "SECRET" not in caplog.text and "hunter2" not in err.message
    assert "metadata" not in dns.asked and "metadata.google.internal" not in dns.asked


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://images.example/a.png", "gopher://127.0.0.1:70/"])
async def test_only_http_and_https_are_fetched(make_fetcher: Any, url: str) -> None:
    fetcher, transport, dns = make_fetcher({"images.example": [PUBLIC]})
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.fetch(url, "messages[0].content[0]")
    scheme = url.partition(":")[0]
    assert caught.value.code == REFUSED
    assert caught.value.message == (
        f"messages[0].content[0]: the image URL uses {scheme}:, and only http and https images are fetched."
    )
    assert transport.requests == [] and dns.asked == []


async def test_a_host_that_does_not_resolve_is_a_failed_fetch(make_fetcher: Any) -> None:
    fetcher, transport, dns = make_fetcher()
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.fetch("http://nowhere.example/a.png", "messages[0].content[0]")
    assert caught.value.code == FAILED and "could not be resolved" in caught.value.message
    assert dns.asked == ["nowhere.example"] and transport.requests == []


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("2002:808:808::", None),  # 6to4 of 8.8.8.8
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
        ("168.63.129.16", "a cloud metadata address"),  # Azure's is a public address
        ("198.18.0.1", "a private address"),  # benchmarking
        ("240.0.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
        ("2001:db8::1", "a private address"),
        ("64:ff9b::a9fe:101", "a link-local address inside an IPv6 address"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address inside an IPv6 address"),
        ("64:ff9b:1::a00:1", "a reserved address"),  # local-use NAT64 prefix
    ],
)
def test_address_classification(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


# ---- allowed fetches from a real loopback server ----


async def test_an_allowed_loopback_png_becomes_base64_with_its_mime(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, transport, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    original = ask(TextPart("What is this?"), ImagePart(url=url_of(image_host, f"/cat.png?{SECRET}"), detail="low"))
    inlined = await fetcher.inline_images(original)
    assert image_of(inlined) == ImagePart(data=PNG_B64, mime_type="image/png", detail="low")
    assert inlined.messages[0] == original.messages[0] and image_of(original).url is not None
    port = image_host.port
    assert image_host.seen == [("/cat.png", f"127.0.0.1:{port}")]
    assert len(transport.requests) == 1


async def test_an_untyped_image_gets_its_mime_sniffed(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.0/8"])
    part = await fetcher.fetch(url_of(image_host, "/cat.bin"))
    assert (part.data, part.mime_type) == (PNG_B64, "image/png")


async def test_a_host_name_is_resolved_once_and_the_checked_address_is_what_gets_connected(
    make_fetcher: Any, image_host: ImageHost
) -> None:
    # images.test resolves only through the fake resolver: the fetch succeeding proves nothing resolved it
    # again, and the transport sees the address, with the name kept in the Host header.
    port = image_host.port
    fetcher, transport, dns = make_fetcher({"images.test": ["127.0.0.1"]}, allow_hosts=["*.test"])
    part = await fetcher.fetch(f"http://images.test:{port}/cat.png")
    assert part.data == PNG_B64
    assert dns.asked == ["images.test"]
    assert [str(r.url.host) for r in transport.requests] == ["127.0.0.1"]
    assert image_host.seen == [("/cat.png", f"images.test:{port}")]


async def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(
    make_fetcher: Any, image_host: ImageHost
) -> None:
    port = image_host.port
    fetcher, transport, _ = make_fetcher({"images.test": ["127.0.0.2", "127.0.0.1"]}, allow_hosts=["127.0.0.0/8"])
    part = await fetcher.fetch(f"http://images.test:{port}/cat.png")
    assert part.data == PNG_B64
    assert [str(r.url.host) for r in transport.requests] == ["127.0.0.2", "127.0.0.1"]


async def test_https_connects_to_the_checked_address_with_the_name_as_sni_and_host() -> None:
    seen: list[httpx.Request] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})

    dns = FakeDNS({"cdn.example": [PUBLIC]})
    fetcher = MediaFetcher(MediaConfig(), transport=httpx.MockTransport(cdn), resolver=dns)
    try:
        part = await fetcher.fetch("https://cdn.example/cat.png?x=1")
    finally:
        await fetcher.aclose()
    assert part.data == PNG_B64
    (request,) = seen
    assert str(request.url) == f"https://{PUBLIC}/cat.png?x=1"
    assert request.headers["host"] == "cdn.example"
    assert request.extensions["sni_hostname"] == "cdn.example"


async def test_a_cidr_does_not_open_a_metadata_address_but_naming_it_exactly_does() -> None:
    def metadata(request: httpx.Request) -> httpx.Response:  # a stand-in: nothing leaves the process
        return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})

    broad = MediaFetcher(
        MediaConfig(allow_hosts=["169.254.0.0/16", "fd00::/8"]), transport=httpx.MockTransport(metadata)
    )
    exact = MediaFetcher(MediaConfig(allow_hosts=["169.254.169.254"]), transport=httpx.MockTransport(metadata))
    try:
        for url in ("http://169.254.169.254/x.png", "http://[fd00:ec2::254]/x.png"):
            with pytest.raises(InvalidRequest, match="cloud metadata address"):
                await broad.fetch(url)
        assert (await broad.fetch("http://169.254.1.1/x.png")).data == PNG_B64  # the rest of the CIDR is open
        assert (await exact.fetch("http://169.254.169.254/x.png")).data == PNG_B64
    finally:
        await broad.aclose()
        await exact.aclose()


async def test_a_redirect_from_an_allowed_host_to_a_refused_address_is_refused(
    make_fetcher: Any, image_host: ImageHost
) -> None:
    fetcher, transport, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    for target, why in (
        ("http://10.0.0.1/a.png", "a redirect of the image URL points at 10.0.0.1, a private address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://2130706433/", "non-standard form"),
        ("file:///etc/passwd", "uses file:"),
    ):
        image_host.reset()
        transport.requests.clear()
        with pytest.raises(InvalidRequest) as caught:
            await fetcher.fetch(
                url_of(image_host, "/to?" + str(httpx.QueryParams({"url": target}))), "messages[0].content[0]"
            )
        assert caught.value.code == REFUSED
        assert why in caught.value.message
        assert len(transport.requests) == 1 and image_host.seen[0][0] == "/to"  # the first hop only


async def test_redirects_within_allowed_hosts_are_followed(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    part = await fetcher.fetch(url_of(image_host, "/hop/3"))
    assert part.data == PNG_B64
    assert [path for path, _ in image_host.seen] == ["/hop/3", "/hop/2", "/hop/1", "/hop/0"]


async def test_a_redirect_loop_stops_after_max_redirects(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.fetch(url_of(image_host, "/loop"), "messages[0].content[0]")
    assert caught.value.code == FAILED
    assert caught.value.message == "messages[0].content[0]: the image URL redirected more than 3 times."
    assert [path for path, _ in image_host.seen] == ["/loop"] * 4

    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"], max_redirects=0)
    with pytest.raises(InvalidRequest, match="more than 0 times"):
        await fetcher.fetch(url_of(image_host, "/hop/1"))


@pytest.mark.parametrize("path", ["/big.png", "/big-declared.png"])
async def test_an_image_over_max_bytes_is_refused(make_fetcher: Any, image_host: ImageHost, path: str) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"], max_bytes=64 * 1024)
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.fetch(url_of(image_host, path), "messages[1].content[0]")
    assert caught.value.code == REFUSED
    assert caught.value.message == "messages[1].content[0]: the image is larger than 64 KB."


async def test_the_images_of_one_request_share_a_byte_budget(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"], max_total_bytes=100_000)
    request = ask(
        TextPart("Compare"),
        ImagePart(url=url_of(image_host, "/sized/60000")),
        ImagePart(url=url_of(image_host, "/sized/60001")),
    )
    with pytest.raises(InvalidRequest, match=r"together are larger than 97\.7 KB") as caught:
        await fetcher.inline_images(request)
    assert caught.value.code == REFUSED


@pytest.mark.parametrize("path", ["/slow.png", "/drip.png"])
async def test_a_slow_image_server_times_out_within_timeout_s(
    make_fetcher: Any, image_host: ImageHost, path: str
) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"], timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.fetch(url_of(image_host, path), "messages[1].content[1]")
    assert time.monotonic() - started < 2.0
    assert caught.value.code == FAILED
    assert caught.value.message == "messages[1].content[1]: fetching the image URL timed out after 0.5 s."


async def test_a_body_that_is_not_an_image_names_the_position(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    with pytest.raises(InvalidRequest) as caught:
        await fetcher.inline_images(ask(TextPart("What is this?"), ImagePart(url=url_of(image_host, "/page.html"))))
    assert (caught.value.code, caught.value.param) == (FAILED, "messages[1].content[1]")
    assert caught.value.message == (
        "messages[1].content[1]: the image URL did not return an image (content type: text/html)."
    )


async def test_an_error_status_from_the_image_host_is_a_failed_fetch(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    with pytest.raises(InvalidRequest, match=r"answered HTTP 404 for the image URL\.$") as caught:
        await fetcher.fetch(url_of(image_host, f"/missing.png?{SECRET}"))
    assert caught.value.code == FAILED and "SECRET" not in caught.value.message


async def test_the_images_of_one_request_are_fetched_concurrently_up_to_the_bound(
    make_fetcher: Any, image_host: ImageHost
) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"], max_concurrency=2)
    urls = [url_of(image_host, f"/gallery/{i}") for i in range(5)]
    request = ask(TextPart("Which is best?"), *(ImagePart(url=u) for u in urls), ImagePart(url=urls[0]))
    inlined = await fetcher.inline_images(request)
    assert all(image_of(inlined, 1, j).data == PNG_B64 for j in range(1, 7))
    assert image_host.peak == 2
    assert sorted(path for path, _ in image_host.seen) == [f"/gallery/{i}" for i in range(5)]  # the repeat once


async def test_too_many_image_urls_are_refused_before_fetching(make_fetcher: Any, image_host: ImageHost) -> None:
    fetcher, transport, _ = make_fetcher(allow_hosts=["127.0.0.1"], max_images=2)
    request = ask(TextPart("x"), *(ImagePart(url=url_of(image_host, f"/gallery/{i}")) for i in range(3)))
    with pytest.raises(InvalidRequest, match=r"has 3 image URLs; .* at most 2 per request") as caught:
        await fetcher.inline_images(request)
    assert caught.value.code == REFUSED and transport.requests == []


async def test_inline_images_data_urls_and_other_schemes_are_left_to_the_provider(make_fetcher: Any) -> None:
    fetcher, transport, _ = make_fetcher()
    request = ask(
        TextPart("x"),
        ImagePart(url=f"data:image/png;base64,{PNG_B64}"),
        ImagePart(data=PNG_B64, mime_type="image/png"),
        ImagePart(url="gs://bucket/cat.png"),  # Gemini reads Cloud Storage itself
        ImagePart(url="file:///etc/passwd"),  # the adapter refuses what its provider cannot take
        ImagePart(url="http://10.0.0.1/kept.png"),  # kept by the caller's `keep`: not fetched, not refused
    )
    assert await fetcher.inline_images(request, keep=lambda url: url.endswith("/kept.png")) is request
    assert transport.requests == []


async def test_tool_result_images_are_fetched_and_named_by_their_position(
    make_fetcher: Any, image_host: ImageHost
) -> None:
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"])

    def conversation(url: str) -> ChatRequest:
        return ChatRequest(
            model="m",
            messages=(
                Message("user", (TextPart("Take a screenshot"),)),
                Message("assistant", (ToolCallPart("call_1", "screenshot", "{}"),)),
                Message("tool", (ToolResultPart("call_1", (TextPart("done"), ImagePart(url=url))),)),
            ),
        )

    inlined = await fetcher.inline_images(conversation(url_of(image_host, "/cat.png")))
    result = inlined.messages[2].parts[0]
    assert isinstance(result, ToolResultPart)
    assert result.content == (TextPart("done"), ImagePart(data=PNG_B64, mime_type="image/png"))

    with pytest.raises(InvalidRequest) as caught:
        await fetcher.inline_images(conversation("http://10.1.2.3/shot.png"))
    assert caught.value.param == "messages[2].content[1]"


# ---- through ProviderClient ----


class InlineOnlyOpenAI(OpenAIAdapter):
    """The OpenAI adapter, told that its provider takes images only inline (as Gemini does)."""

    info = dataclasses.replace(OpenAIAdapter.info, inline_images=True)

    def reads_url(self, url: str) -> bool:  # like Gemini's Files API: the provider reads it with the caller's key
        return url.startswith(f"{self.base_url}/files/")


def completion(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "A cat."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        },
    )


class Provider:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return completion(request)


async def test_an_inline_only_provider_receives_base64_not_the_url(make_fetcher: Any, image_host: ImageHost) -> None:
    provider = Provider()
    fetcher, _, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    adapter = InlineOnlyOpenAI(ProviderConfig(base_url="https://api.provider.test/v1", max_retries=0))
    client = ProviderClient(adapter, httpx.MockTransport(provider.handler), fetcher)
    url = url_of(image_host, "/cat.png")
    try:
        result = await client.complete(ask(TextPart("What is this?"), ImagePart(url=url)), "sk-test")
    finally:
        await client.aclose()
    assert result.text == "A cat."
    (body,) = provider.bodies
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
    }
    assert url not in json.dumps(body)
    assert image_host.seen == [("/cat.png", f"127.0.0.1:{image_host.port}")]


async def test_a_refused_image_url_stops_the_call_before_the_provider_is_asked(make_fetcher: Any) -> None:
    provider = Provider()
    fetcher, transport, _ = make_fetcher()
    adapter = InlineOnlyOpenAI(ProviderConfig(base_url="https://api.provider.test/v1", max_retries=0))
    client = ProviderClient(adapter, httpx.MockTransport(provider.handler), fetcher)
    request = ask(TextPart("x"), ImagePart(url="http://169.254.169.254/latest/meta-data/"))
    try:
        for call in (client.complete, client.stream):
            with pytest.raises(InvalidRequest) as caught:
                await call(request, "sk-test")
            assert (caught.value.status, caught.value.code) == (400, REFUSED)
    finally:
        await client.aclose()
    assert provider.bodies == [] and transport.requests == []


async def test_a_url_the_provider_reads_itself_is_left_for_the_provider(make_fetcher: Any) -> None:
    provider = Provider()
    fetcher, transport, dns = make_fetcher()
    adapter = InlineOnlyOpenAI(ProviderConfig(base_url="https://api.provider.test/v1", max_retries=0))
    client = ProviderClient(adapter, httpx.MockTransport(provider.handler), fetcher)
    url = "https://api.provider.test/v1/files/abc-123"  # like Gemini's Files API: read with the caller's key
    try:
        await client.complete(ask(TextPart("x"), ImagePart(url=url)), "sk-test")
    finally:
        await client.aclose()
    assert provider.bodies[0]["messages"][1]["content"][1]["image_url"] == {"url": url}
    assert transport.requests == [] and dns.asked == []


async def test_a_client_given_no_fetcher_fetches_nothing(image_host: ImageHost) -> None:
    provider = Provider()
    adapter = InlineOnlyOpenAI(ProviderConfig(base_url="https://api.provider.test/v1", max_retries=0))
    client = ProviderClient(adapter, httpx.MockTransport(provider.handler))  # the adapter sees the URL
    url = url_of(image_host, "/cat.png")
    try:
        await client.complete(ask(TextPart("x"), ImagePart(url=url)), "sk-test")
    finally:
        await client.aclose()
    assert provider.bodies[0]["messages"][1]["content"][1]["image_url"] == {"url": url}
    assert image_host.seen == []


async def test_a_provider_that_takes_urls_gets_the_url_untouched(make_fetcher: Any, image_host: ImageHost) -> None:
    provider = Provider()
    fetcher, transport, _ = make_fetcher(allow_hosts=["127.0.0.1"])
    adapter = OpenAIAdapter(ProviderConfig(base_url="https://api.provider.test/v1", max_retries=0))
    client = ProviderClient(adapter, httpx.MockTransport(provider.handler), fetcher)
    url = url_of(image_host, "/cat.png")
    try:
        await client.complete(ask(TextPart("x"), ImagePart(url=url)), "sk-test")
    finally:
        await client.aclose()
    assert provider.bodies[0]["messages"][1]["content"][1]["image_url"] == {"url": url}
    assert image_host.seen == [] and transport.requests == []


def test_a_body_encoded_string_by_string_is_byte_for_byte_what_to_json_gives() -> None:
    text = 'a "quoted" \\ back\\slash, a new\nline, é, ✓, \x01 ' * 3000  # long, and full of escapes
    data = base64.b64encode(PNG * 8000).decode()
    body: dict[str, Any] = {
        "contents": [
            {"role": "user", "parts": [{"text": text}, {"inlineData": {"mimeType": "image/png", "data": data}}]}
        ],
        "pair": (data, 1),
        "short": "kept as it is",
    }
    expected = to_json(body)
    upstream = UpstreamRequest("https://api.provider.test/v1/x", {}, body)
    assert encode_taking_strings(upstream) == expected
    assert upstream.body == {}  # taken: nothing else holds the image strings once they are encoded


# ---- through the gateway: [media] settings reach the clients of inline-only providers ----


def test_gemini_through_the_gateway_gets_the_image_inline_and_a_refusal_is_a_v2_400(image_host: ImageHost) -> None:
    bodies: list[dict[str, Any]] = []

    def gemini(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        answer = {"role": "model", "parts": [{"text": "A cat."}]}
        return httpx.Response(
            200, json={"responseId": "r1", "candidates": [{"content": answer, "finishReason": "STOP"}]}
        )

    settings = Settings(
        providers={"google": {"base_url": "https://gemini.test", "max_retries": 0}},
        media=MediaConfig(allow_hosts=["127.0.0.1"]),
    )

    def ask_gateway(gateway: LiveServer, image_url: str) -> httpx.Response:
        content = [{"type": "text", "text": "What is this?"}, {"type": "image", "url": image_url}]
        return httpx.post(
            gateway.url + "/models/v2/google/gemini-2.5-flash",
            json={"messages": [{"role": "user", "content": content}]},
            headers={"provider-key": "test-google-key"},
            timeout=30,
        )

    with LiveServer(create_app(settings, httpx.MockTransport(gemini))) as gateway:
        ok = ask_gateway(gateway, url_of(image_host, "/cat.png"))
        refused = ask_gateway(gateway, f"http://169.254.169.254/latest/meta-data/?{SECRET}")
    assert ok.status_code == 200, ok.text
    assert ok.json()["output"] == {"role": "assistant", "content": "A cat."}
    (body,) = bodies  # the refused request never reached the provider
    assert {"inlineData": {"mimeType": "image/png", "data": PNG_B64}} in body["contents"][0]["parts"]
    assert refused.status_code == 400
    assert refused.json()["code"] == REFUSED
    assert refused.json()["error"].startswith("messages[0].content[1]: the image URL points at 169.254.169.254, ")
    assert "SECRET" not in refused.text


# ---- configuration ----


def test_the_media_section_is_read_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "unimodel.toml"
    path.write_text(
        '[media]\nallow_hosts = ["127.0.0.1", "10.0.0.0/8", "images.internal", "*.cdn.internal."]\n'
        "max_bytes = 1048576\ntimeout_s = 3\nmax_redirects = 1\n"
    )
    media = load_settings(path).media
    assert media.allow_hosts == ["127.0.0.1", "10.0.0.0/8", "images.internal", "*.cdn.internal"]
    assert (media.max_bytes, media.timeout_s, media.max_redirects, media.ports) == (1048576, 3.0, 1, [80, 443])


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "http://images.internal", "300.1.1.1", "images internal"])
def test_a_bad_allow_hosts_entry_is_a_config_error_naming_it(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "unimodel.toml"
    path.write_text(f"[media]\nallow_hosts = [{json.dumps(entry)}]\n")
    with pytest.raises(ConfigError, match=r"media\.allow_hosts") as caught:
        load_settings(path)
    assert entry in str(caught.value)
