"""A surface: one wire format's place on the server — its path prefixes, its error body, its stream's media type.

Each frontend declares its surface once (bytez_v2.SURFACE, bytez_v2.ADMIN, openai_compat.SURFACE); the
middleware (metrics labels, refusals), the app's error handler, the routes and the OpenAPI document read them
through `surface_of(path)` — which surface owns a path is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol import UnimodelError

ErrorEncoder = Callable[[UnimodelError], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Surface:
    name: str  # the `surface` label of the metrics
    prefixes: tuple[str, ...]  # the paths it owns (a longer prefix of another surface's is listed first)
    error_body: ErrorEncoder
    stream_media_type: str | None = None

    def owns(self, path: str) -> bool:
        return path.startswith(self.prefixes)


def surface_of(path: str) -> Surface:
    """The surface that owns `path`; paths outside every surface (/healthz, /) answer in the v2 shape."""
    # the frontends declare their surfaces with this module's type
    from . import anthropic_messages, bytez_v2, openai_compat, openai_responses

    for surface in (
        anthropic_messages.SURFACE,
        openai_responses.SURFACE,
        openai_compat.SURFACE,
        bytez_v2.ADMIN,
        bytez_v2.SURFACE,
    ):
        if surface.owns(path):
            return surface
    return bytez_v2.OTHER
