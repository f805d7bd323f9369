"""Who may reach an open-mode server from a browser: the Host and Origin checks.

Open mode needs no key, so anything that can make the machine's browser send a request could spend the server-held
provider keys or read answers and usage: a page on another site posting `text/plain` (no CORS preflight), or a page
whose own name was rebound to 127.0.0.1 (DNS rebinding — the browser then thinks it is same-origin). So in open mode
the server answers only requests whose `Host` is a loopback name or address (or one `[server] allowed_hosts`
names), and refuses browser requests from any other origin unless `[server] cors_origins` lists it. Clients that are
not browsers send no `Origin` and no `Sec-Fetch-Site`, and are unaffected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from ..protocol import PermissionDenied

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_CROSS_SITE = frozenset({"cross-site", "same-site"})  # Sec-Fetch-Site values that mean "another origin"


def host_name(host_header: str) -> str:
    """The name or address part of a Host header (`[::1]:8080` → `::1`, `Example.com.:80` → `example.com`)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def is_loopback_name(name: str) -> bool:
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class OpenModeGuard:
    """The Host and Origin rules of open mode; `problem` answers the refusal to send, or None."""

    def __init__(self, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()) -> None:
        self.allowed_hosts = frozenset(allowed_hosts)
        self.cors_origins = frozenset(cors_origins)

    def host_allowed(self, host_header: str) -> bool:
        name = host_name(host_header)
        return is_loopback_name(name) or name in self.allowed_hosts

    def problem(self, headers: Mapping[str, str], scheme: str) -> PermissionDenied | None:
        host = headers.get("host")
        if host is not None and not self.host_allowed(host):  # HTTP/1.0 without Host: no browser sends that
            return PermissionDenied(
                f"This server runs without keys (open mode) and answers only requests addressed to a loopback name "
                f"or address; '{host_name(host)[:100]}' is neither. Call it as 127.0.0.1 or localhost, or add the "
                f"name to [server] allowed_hosts.",
                code="host_not_allowed",
            )
        origin = headers.get("origin")
        if origin is not None:
            own = f"{scheme}://{(host or '').strip().lower()}"
            if origin.lower().rstrip("/") in (own, *self.cors_origins):
                return None
            return PermissionDenied(
                f"This server runs without keys (open mode) and refuses browser requests from other sites; the "
                f"origin '{origin[:100]}' is not allowed. Add it to [server] cors_origins to allow it.",
                code="origin_not_allowed",
            )
        if headers.get("sec-fetch-site", "") in _CROSS_SITE:
            return PermissionDenied(
                "This server runs without keys (open mode) and refuses browser requests from other sites.",
                code="origin_not_allowed",
            )
        return None
