"""The gateway's backend side: one pooled client per provider, the open models, the catalog, provider keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from ..config import Settings
from ..protocol import AuthenticationError
from ..providers import ProviderClient, create_adapter
from ..providers.media import MediaFetcher
from ..runtime.backend import Backend
from ..runtime.service import OpenModels
from .catalog import Catalog, Route
from .keycache import Principal
from .media_store import MediaStore
from .metrics import MEDIA_INFLIGHT_BYTES

if TYPE_CHECKING:
    from .platform import Platform
    from .runtime_link import RuntimeLink


class Gateway:
    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.open = OpenModels(settings, backend)
        self.catalog = Catalog(settings.providers, self.open.catalog)
        self._transport = transport
        self._clients: dict[str, ProviderClient] = {}
        # Makes no connection until a provider needs an image fetched; one cap on fetched bytes for all providers.
        self._media = MediaFetcher(settings.media, gauge=MEDIA_INFLIGHT_BYTES)
        # Generated media (images, speech) whose output is a URL of this server's (GET /models/v2/media/{id}).
        self.media_store = MediaStore(settings.media.store, settings.store.data_dir)
        # Never shown in an upstream error, whichever provider's answer echoes them (providers/client.py).
        self._server_keys = tuple(
            p.api_key.get_secret_value() for p in settings.providers.values() if p.api_key is not None
        )
        self.platform: Platform  # set by create_app
        self.link: RuntimeLink | None = None  # set in a gateway process of `serve --workers N`

    @property
    def fetcher(self) -> MediaFetcher:
        """The guarded URL fetcher (providers/media.py) every media input fetched by this process goes through."""
        return self._media

    def client(self, provider: str) -> ProviderClient:
        client = self._clients.get(provider)
        if client is None:
            adapter = create_adapter(provider, self.settings.provider(provider))
            client = self._clients[provider] = ProviderClient(
                adapter, self._transport, self._media, secrets=self._server_keys
            )
        return client

    def provider_key(self, route: Route, headers: Mapping[str, str], principal: Principal | None = None) -> str:
        """The caller's `provider-key` header, else the one their gateway key holds, else the server-held key,
        else a 401 saying what to send."""
        key = headers.get("provider-key")
        if key:
            return key
        if principal is not None:
            stored = principal.provider_keys.get(route.provider)
            if stored:
                return stored
        configured = self.settings.provider(route.provider).api_key
        if configured is not None and configured.get_secret_value():
            return configured.get_secret_value()
        raise AuthenticationError(
            f"No key for provider '{route.provider}': send your {route.provider} API key in the 'provider-key' "
            f"header, store one on your gateway key (`unimodel keys set-provider KEY_ID {route.provider}`), or set "
            f"api_key under [providers.{route.provider}] in the server config.",
            code="missing_provider_key",
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        await self._media.aclose()
        await self.open.aclose()
        if self.link is not None:
            await self.link.aclose()
