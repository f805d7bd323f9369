"""Image URLs fetched for providers that take images only as inline data — without opening a way inside.

A caller's URL must not reach the server's own network (PROTOCOL.md, "Inputs fetched by URL"), so a fetch

- takes only http(s), no credentials in the URL, and only the `[media] ports` (80, 443) of a public host;
- resolves the host here and is refused when ANY of its addresses is loopback, private, CGNAT, link-local,
  multicast, reserved or unspecified — also when hidden inside an IPv4-mapped, NAT64, 6to4 or Teredo IPv6
  address — or a cloud metadata endpoint; numeric hosts in non-standard forms (`2130706433`, `0x7f.1`) are
  refused outright, because resolvers disagree about what they mean;
- connects to the address it checked (Host header and TLS SNI/certificate keep the name), so a second DNS
  answer cannot swap in another address (DNS rebinding);
- follows redirects by hand, at most `max_redirects`, checking every hop like the first URL;
- has `timeout_s` in all, and reads the body in chunks, abandoning it past `max_bytes`.

`[media] allow_hosts` names addresses, CIDRs or host names fetched anyway, on any port; a metadata endpoint
must be named exactly (a CIDR such as fd00::/8 does not open fd00:ec2::254). Every refusal is a 400 naming
the image's position; URLs are echoed and logged as scheme, host and port only (query strings carry tokens).

Fetched bytes count against `[media] max_inflight_bytes`, shared by every request of the process, from before
the first byte is read until the caller lets go of the request's `MediaHold` (ProviderClient: once the provider
has started answering; it keeps the body until then, to retry it). A request asks up front for all it may need
(its images' cap, at most `max_total_bytes`), waits in line for it up to `inflight_wait_s` (then a 503
`media_busy`), and gives back what its images turn out not to need as it learns their sizes (the room itself:
media_room.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import NoReturn

import httpx

from ..config import MediaConfig
from ..protocol import (
    ChatRequest,
    ImagePart,
    InvalidRequest,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnimodelError,
)
from .content import sniff_image_mime
from .media_room import Gauge, InflightBytes, MediaHold

__all__ = [
    "BUSY",
    "FAILED",
    "REFUSED",
    "AllowList",
    "InflightBytes",
    "MediaBusy",
    "MediaFetcher",
    "MediaHold",
    "Resolver",
    "address_problem",
]

log = logging.getLogger("unimodel.media")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the host's addresses as text; the default asks the system resolver (`loop.getaddrinfo`)."""

REFUSED = "image_fetch_refused"  # the gateway's policy said no
FAILED = "image_fetch_failed"  # the fetch was allowed but did not produce an image
BUSY = "media_busy"  # no room under [media] max_inflight_bytes in time
BUSY_RETRY_AFTER_S = 2.0  # room opens as earlier requests reach their provider, usually within seconds

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer — a public address
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
# What inet_aton would read as an IPv4 address: 1 to 4 decimal, octal (0…) or hex (0x…) numbers.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)
_WEB_URL = re.compile(r"\s*https?:", re.IGNORECASE)  # what the fetch step takes; a redirect may go anywhere
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_PLURAL = {"image": "images", "audio": "audio files"}
_HEADERS = {"accept": "image/*", "accept-encoding": "identity", "user-agent": "unimodel-media-fetch"}


def address_problem(ip: IPAddress) -> str | None:
    """What makes `ip` unfit to fetch from ("a loopback address" …), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_problem(ip.ipv4_mapped)
        if ip in _NAT64:  # what a DNS64 resolver answers for an IPv4-only host: judge the IPv4 address
            problem = address_problem(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
            return f"{problem} inside an IPv6 address" if problem is not None else None
        for inner in _embedded_ipv4(ip):
            problem = address_problem(inner)
            if problem is not None:
                return f"{problem} inside an IPv6 address"
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip in _CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address routes to: 6to4 (2002::/16), Teredo (2001::/32)."""
    out: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    return out


def _canonical(ip: IPAddress) -> IPAddress:
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None else ip


class AllowList:
    """`[media] allow_hosts`: addresses and CIDRs, exact host names, and `*.domain` for its subdomains."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        for entry in entries:
            entry = entry.lower().rstrip(".")
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("*."):
                    self.suffixes.append(entry[1:])
                else:
                    self.names.add(entry)

    def allows_host(self, host: str) -> bool:
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        ip = _canonical(ip)
        return any(ip in network for network in self.networks)

    def names_address(self, ip: IPAddress) -> bool:
        """True when an entry is exactly this one address (how a metadata endpoint must be allowed)."""
        ip = _canonical(ip)
        return any(network.num_addresses == 1 and ip in network for network in self.networks)


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """A vetted hop: the URL as given, and the checked addresses to connect to instead of its host."""

    url: httpx.URL
    host: str  # ASCII (IDNA), lower case, no trailing dot, no brackets
    literal: bool  # the host is an IP address
    addresses: tuple[IPAddress, ...]

    @property
    def origin(self) -> str:
        """scheme://host[:port] — what messages and logs may show of the URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.url.scheme}://{host}" + (f":{self.url.port}" if self.url.port else "")

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + (f":{self.url.port}" if self.url.port else "")


class MediaBusy(UnimodelError):
    """No room under `[media] max_inflight_bytes` opened within `inflight_wait_s`."""

    status = 503
    code = BUSY


class Budget:
    """Bytes the images of one request may still take together, and what each image may still need of the
    room its request holds (`claims`: the size cap, then the declared length, then the real size)."""

    def __init__(self, limit: int, hold: MediaHold | None = None, claims: dict[str, int] | None = None) -> None:
        self.limit = limit
        self.left = limit
        self._hold = hold
        self._claims = claims or {}

    def take(self, size: int, where: str) -> None:
        self.left -= size
        if self.left < 0:
            _fail(REFUSED, where, f"the images of this request together are larger than {_size(self.limit)}")

    def expect(self, where: str, size: int) -> None:
        """The image at `where` will take at most `size` bytes: give back the room it no longer needs."""
        if self._hold is None or where not in self._claims:
            return
        self._claims[where] = min(self._claims[where], size)
        self._hold.shrink_to(sum(self._claims.values()))


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` from the system resolver, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class MediaFetcher:
    """Fetches image URLs safely and inlines them into requests; one instance serves every provider.

    `transport` replaces httpx's network transport (tests); `resolver` replaces the system resolver; `gauge`
    follows the bytes held under `max_inflight_bytes` (`inflight`, shared by every request this fetcher serves).
    """

    def __init__(
        self,
        config: MediaConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        gauge: Gauge | None = None,
    ) -> None:
        self.config = config or MediaConfig()
        self.allow = AllowList(self.config.allow_hosts)
        self.inflight = InflightBytes(self.config.max_inflight_bytes, gauge)
        self._transport = transport
        self._resolve = resolver or system_resolve
        self._http: httpx.AsyncClient | None = None

    def hold(self) -> MediaHold:
        """Room under `max_inflight_bytes` for one request, empty until `inline_images` reserves it."""
        return MediaHold(self.inflight)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def inline_images(
        self, request: ChatRequest, keep: Callable[[str], bool] | None = None, hold: MediaHold | None = None
    ) -> ChatRequest:
        """`request` with every http(s) image URL replaced by the fetched image as base64 data.

        Other URLs (data:, gs:// …), base64 images and the URLs `keep` accepts (those the provider reads
        itself) are left as they are. Raises InvalidRequest (400) naming the image's position, e.g.
        `messages[2].content[1]`, when a URL is refused or its fetch fails, and MediaBusy (503) when no room
        opened under `max_inflight_bytes` within `inflight_wait_s`.

        The fetched bytes stay counted in `hold` until the caller leaves its `with` block (once the request has
        been sent on); without one, they are counted only while they are fetched.
        """
        wanted: dict[str, str] = {}  # url → where it first appears
        for where, part in _images(request):
            url = part.url
            if part.data is None and url is not None and _WEB_URL.match(url) and not (keep and keep(url)):
                wanted.setdefault(url, where)
        if not wanted:
            return request
        if len(wanted) > self.config.max_images:
            raise InvalidRequest(
                f"The request has {len(wanted)} image URLs; this provider takes images only as inline data and "
                f"unimodel fetches at most {self.config.max_images} per request. Send the others as base64.",
                code=REFUSED,
                param="messages",
            )
        if hold is None:
            with self.hold() as own:
                return await self.inline_images(request, keep, own)
        budget = await self.budget(hold, list(wanted.values()), "image")
        fetched = await self._fetch_all(wanted, budget)
        return dataclasses.replace(request, messages=tuple(_swap_message(m, fetched) for m in request.messages))

    async def budget(self, hold: MediaHold, places: list[str], kind: str = "image") -> Budget:
        """Room under `max_inflight_bytes`, taken into `hold`, for the media of one request at `places` (each at
        most `max_bytes` until its size is known, then what it really takes); the budget their fetches share.
        Raises MediaBusy (503) when no room opened within `inflight_wait_s`."""
        # A request's media never take more than the cap: it could never get that much room.
        limit = min(self.config.max_total_bytes, self.inflight.capacity)
        try:
            await hold.reserve(min(limit, len(places) * self.config.max_bytes), self.config.inflight_wait_s)
        except TimeoutError:
            raise MediaBusy(
                f"unimodel already holds as many fetched {kind} bytes as it may at once ([media] max_inflight_bytes, "
                f"{_size(self.inflight.capacity)}) and no room opened within {self.config.inflight_wait_s:g} s. "
                f"Retry shortly, or send the {kind} as base64.",
                retry_after=BUSY_RETRY_AFTER_S,
            ) from None
        return Budget(limit, hold, {where: self.config.max_bytes for where in places})

    async def fetch(self, url: str, where: str = "image", budget: Budget | None = None) -> ImagePart:
        """The image at `url` as an ImagePart with base64 `data` and `mime_type`; `where` names it in errors."""
        body, content_type, origin = await self.fetch_media(url, where, "image", budget)
        return _image_part(body, content_type, where, origin)

    async def fetch_media(
        self, url: str, where: str, kind: str = "image", budget: Budget | None = None
    ) -> tuple[bytearray, str, str]:
        """The body at `url` (any media: `kind` is "image" or "audio", for the `accept` header and the errors),
        its content type and the origin it came from, under the same guard and caps as every image fetch."""
        budget = budget or Budget(self.config.max_total_bytes)
        try:
            async with asyncio.timeout(self.config.timeout_s):
                body, content_type, origin = await self._fetch(url, where, budget, kind)
        except (TimeoutError, httpx.TimeoutException):
            _fail(FAILED, where, f"fetching the {kind} URL timed out after {self.config.timeout_s:g} s")
        if not body:
            _fail(FAILED, where, f"{origin} answered the {kind} URL with an empty body")
        return body, content_type, origin

    async def _fetch_all(self, wanted: dict[str, str], budget: Budget) -> dict[str, ImagePart]:
        limit = asyncio.Semaphore(self.config.max_concurrency)

        async def one(url: str, where: str) -> ImagePart:
            async with limit:
                return await self.fetch(url, where, budget)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = {url: group.create_task(one(url, where)) for url, where in wanted.items()}
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None  # the first failure; the other fetches were cancelled
        return {url: task.result() for url, task in tasks.items()}

    async def _fetch(self, url: str, where: str, budget: Budget, kind: str) -> tuple[bytearray, str, str]:
        try:
            current = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            _fail(REFUSED, where, f"the {kind} URL is not a valid URL")
        for hop in range(self.config.max_redirects + 1):
            subject = f"the {kind} URL" if hop == 0 else f"a redirect of the {kind} URL"
            target = await self._vet(current, where, subject, kind)
            response = await self._open(target, where, kind)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    try:
                        current = current.join(location)
                    except httpx.InvalidURL:
                        _fail(FAILED, where, f"{target.origin} redirected to an invalid URL")
                    continue
                if not 200 <= response.status_code < 300:
                    _fail(FAILED, where, f"{target.origin} answered HTTP {response.status_code} for the {kind} URL")
                body = await self._read(response, where, budget, kind)
                content_type = response.headers.get("content-type", "")
            finally:
                await response.aclose()
            return body, content_type, target.origin
        _fail(FAILED, where, f"the {kind} URL redirected more than {self.config.max_redirects} times")

    async def _vet(self, url: httpx.URL, where: str, subject: str, kind: str = "image") -> _Target:
        """The checked target of one hop, or a 400 saying why it is refused. Nothing is sent before this."""
        if url.scheme not in ("http", "https"):
            scheme = url.scheme if url.scheme.isalnum() and len(url.scheme) <= 16 else "other"
            _fail(REFUSED, where, f"{subject} uses {scheme}:, and only http and https {_PLURAL[kind]} are fetched")
        if url.userinfo:
            _fail(REFUSED, where, f"{subject} carries credentials (user:password@), which unimodel does not send")
        host = url.raw_host.decode("ascii").lower().rstrip(".")
        if not host:
            _fail(REFUSED, where, f"{subject} has no host")
        literal = _parse_address(host)
        if literal is None and _NUMERIC_HOST.fullmatch(host):
            _fail(REFUSED, where, f"{subject} gives the host '{host}', a numeric address in a non-standard form")
        if literal is None and not _HOST_NAME.fullmatch(host):
            _fail(REFUSED, where, f"{subject} does not give a valid host name")
        if literal is None and host in _METADATA_HOSTS and host not in self.allow.names:
            _fail(REFUSED, where, f"{subject} points at '{host}', a cloud metadata host")
        port = url.port or (443 if url.scheme == "https" else 80)
        host_allowed = literal is None and self.allow.allows_host(host)
        if literal is not None:
            addresses: tuple[IPAddress, ...] = (literal,)
        elif host == "localhost" or host.endswith(".localhost"):
            addresses = _LOOPBACK  # RFC 6761: always loopback, never asked of DNS
        else:
            addresses = await self._addresses(host, port, where, subject)
        for ip in addresses:
            problem = self._problem(ip, host_allowed)
            if problem is not None:
                shown = f"{host}," if literal is not None else f"'{host}', which resolves to"
                _fail(
                    REFUSED,
                    where,
                    f"{subject} points at {shown} {problem}; unimodel fetches {_PLURAL[kind]} only from public addresses "
                    "unless the server's [media] allow_hosts names them",
                )
        allowed = host_allowed or all(self.allow.allows_address(ip) for ip in addresses)
        if port not in self.config.ports and not allowed:
            ports = ", ".join(str(p) for p in self.config.ports)
            _fail(REFUSED, where, f"{subject} uses port {port}; {_PLURAL[kind]} are fetched from ports {ports} only")
        return _Target(url, host, literal is not None, addresses)

    def _problem(self, ip: IPAddress, host_allowed: bool) -> str | None:
        if _canonical(ip) in _METADATA_ADDRESSES:
            return None if self.allow.names_address(ip) else "a cloud metadata address"
        if host_allowed or self.allow.allows_address(ip):
            return None
        return address_problem(ip)

    async def _addresses(self, host: str, port: int, where: str, subject: str) -> tuple[IPAddress, ...]:
        try:
            found = await self._resolve(host, port)
        except OSError:
            _fail(FAILED, where, f"{subject} names the host '{host}', which could not be resolved")
        addresses: list[IPAddress] = []
        for text in found:
            ip = _parse_address(text)
            if ip is None:
                _fail(FAILED, where, f"the host '{host}' resolved to something that is not an address")
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            _fail(FAILED, where, f"{subject} names the host '{host}', which has no address")
        return tuple(addresses)

    async def _open(self, target: _Target, where: str, kind: str = "image") -> httpx.Response:
        """Send the GET to the vetted addresses in turn (never the name: no second DNS lookup)."""
        http = self._client()
        headers = {**_HEADERS, "accept": f"{kind}/*", "host": target.host_header}
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" and not target.literal else {}
        for ip in target.addresses:
            request = http.build_request(
                "GET", target.url.copy_with(host=str(ip)), headers=headers, extensions=extensions
            )
            try:
                return await http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                continue
            except httpx.TimeoutException:
                raise
            except httpx.TransportError as exc:
                _fail(FAILED, where, f"the connection to {target.origin} failed ({type(exc).__name__})")
        _fail(FAILED, where, f"could not connect to {target.origin}")

    async def _read(self, response: httpx.Response, where: str, budget: Budget, kind: str = "image") -> bytearray:
        """The body in one buffer (sized up front when declared): no list of chunks joined into a second copy."""
        cap = self.config.max_bytes
        header = response.headers.get("content-length", "")
        declared = int(header) if header.isdigit() else None
        if declared is not None:
            if declared > cap:
                _fail(REFUSED, where, f"the {kind} is larger than {_size(cap)}")
            budget.expect(where, declared)
        body = bytearray(declared or 0)
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                end = size + len(chunk)
                if end > cap:
                    _fail(REFUSED, where, f"the {kind} is larger than {_size(cap)}")
                if declared is not None and end > declared:
                    _fail(FAILED, where, f"the {kind} host sent more bytes than its Content-Length said")
                budget.take(len(chunk), where)
                body[size:end] = chunk
                size = end
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as exc:
            _fail(FAILED, where, f"the {kind} download broke off ({type(exc).__name__})")
        del body[size:]  # a declared length the body fell short of (httpx normally refuses that itself)
        budget.expect(where, size)
        return body

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
                # Connections go to pinned addresses under several names: never keep one for another host
                # (a pool cap would queue requests, and a queued one could take a just-freed connection).
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                follow_redirects=False,
                trust_env=False,  # a proxy from the environment would connect by name, undoing the pin
            )
        return self._http


def _image_part(body: bytearray, content_type: str, where: str, origin: str) -> ImagePart:
    encoded = base64.b64encode(body)
    body.clear()  # the raw bytes go before the text copy is made: at most two of the three forms at once
    data = encoded.decode("ascii")
    del encoded
    mime = content_type.partition(";")[0].strip().lower()
    if not mime.startswith("image/"):
        sniffed = sniff_image_mime(data)
        if sniffed is None:
            shown = mime[:60] or "none"
            _fail(FAILED, where, f"the image URL did not return an image (content type: {shown})")
        mime = sniffed
    return ImagePart(data=data, mime_type=mime)


def _images(request: ChatRequest) -> Iterator[tuple[str, ImagePart]]:
    """Each image with its position as the caller wrote it: `messages[i].content[j]`."""
    for i, message in enumerate(request.messages):
        j = 0
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                for k, item in enumerate(part.content):
                    if isinstance(item, ImagePart):
                        yield f"messages[{i}].content[{k}]", item
            elif not isinstance(part, ReasoningPart | ToolCallPart):  # those are not in the caller's content
                if isinstance(part, ImagePart):
                    yield f"messages[{i}].content[{j}]", part
                j += 1


def _swap_message(message: Message, fetched: dict[str, ImagePart]) -> Message:
    parts = tuple(_swap_part(p, fetched) for p in message.parts)
    return dataclasses.replace(message, parts=parts)


def _swap_part(part: Part, fetched: dict[str, ImagePart]) -> Part:
    if isinstance(part, ToolResultPart):
        return dataclasses.replace(part, content=tuple(_swap_content(c, fetched) for c in part.content))
    if isinstance(part, ImagePart):
        return _swap_content(part, fetched)
    return part


def _swap_content(part: TextPart | ImagePart, fetched: dict[str, ImagePart]) -> TextPart | ImagePart:
    if isinstance(part, ImagePart) and part.data is None and part.url in fetched:
        image = fetched[part.url]
        return ImagePart(data=image.data, mime_type=image.mime_type, detail=part.detail)
    return part


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _size(n: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _fail(code: str, where: str, detail: str) -> NoReturn:
    message = f"{where}: {detail}."
    log.info("image fetch %s: %s", "refused" if code == REFUSED else "failed", message)
    raise InvalidRequest(message, code=code, param=where)
