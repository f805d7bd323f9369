"""`GET /models/v2/media/{id}`: the generated media a v2 run answered with a URL (media_store.py)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..frontends import bytez_v2
from .context import context
from .http import guarded
from .media_store import MEDIA_PATH, MediaStore

v2 = guarded(bytez_v2.SURFACE.error_body)


def routes(store: MediaStore) -> list[Route]:
    @v2
    async def get_media(request: Request) -> Response:
        """The item's bytes with its content type, for the key that made it; a 404 for anyone else."""
        item = await store.get(request.path_params["media_id"], context(request).principal.key_id)
        return Response(
            item.data,
            media_type=item.content_type,
            headers={
                "cache-control": f"private, max-age={max(0, int(item.expires - time.time()))}",
                "x-content-type-options": "nosniff",
            },
        )

    return [Route(MEDIA_PATH + "{media_id}", get_media, methods=["GET"])]
