"""Which backend answers a model id — decided here, once, for every surface and the cluster API.

    backend = await backend_for(gateway, model_id, ctx, request.headers)    # model_backends.py
    target = await resolve(gateway, model_id, ctx.principal)                # the decision alone
    OpenTarget(model_id)     an open model this process runs: configured, bundled, pulled, or adopted just now
                             by its Hugging Face id (the id is the one it is served under)
    ForwardTarget(model_id)  a gateway process of `serve --workers N`: the runtime process runs the open models and
                             decides (and pulls a new one once for every gateway process)
    Route(provider, model)   a closed provider

In that order: an open model this server serves wins (PROTOCOL.md: a configured model wins over a provider
prefix), then a provider prefix, then a bare Claude name (`claude-sonnet-4-5`, as Claude Code sends it: Anthropic's),
then the Hugging Face Hub — an id nothing else claims is pulled on first use when the caller may make the server
pull (`[hub] pull`; always in open mode, which serves loopback callers only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import ModelNotFound
from ..protocol.model_ids import check_model_id
from .catalog import Route
from .context import RequestContext
from .keycache import Principal
from .model_backends import ClosedBackend, ForwardedBackend, ModelBackend, OpenBackend

if TYPE_CHECKING:
    from .service import Gateway


@dataclass(frozen=True, slots=True)
class OpenTarget:
    model_id: str


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    model_id: str


Target = OpenTarget | ForwardTarget | Route

# Model names a provider's own clients send without the provider prefix (Claude Code: `claude-sonnet-4-5`).
BARE_NAMES = (("claude-", "anthropic"),)


def bare_name(model_id: str) -> Route | None:
    """The provider route of a bare provider model name (no `/`), or None."""
    if "/" in model_id:
        return None
    return next((Route(provider, model_id) for start, provider in BARE_NAMES if model_id.startswith(start)), None)


def may_pull(gateway: Gateway, principal: Principal) -> bool:
    """Whether this caller may make the server download a model it does not have."""
    return gateway.platform.mode == "open" or gateway.settings.hub.pull == "any" or principal.admin


async def resolve(gateway: Gateway, model_id: str, principal: Principal, *, pull: bool = True) -> Target:
    """The backend for `model_id`. `pull=False` (reading a cluster's status) never asks the Hub: a model that is
    neither served nor pulled is then a 404."""
    check_model_id(model_id)
    open_models = gateway.open.catalog
    served = open_models.canonical(model_id)
    if served is not None:
        return ForwardTarget(served) if gateway.link is not None else OpenTarget(served)
    try:
        return gateway.catalog.resolve(model_id)
    except ModelNotFound:
        if (route := bare_name(model_id)) is not None:
            return route
        if gateway.link is not None:
            return ForwardTarget(model_id)
        if not pull:
            served = open_models.adopt_local(model_id)
            if served is None:
                raise
            return OpenTarget(served)
    return OpenTarget(await open_models.adopt(model_id, may_pull=may_pull(gateway, principal)))


async def backend_for(gateway: Gateway, model_id: str, ctx: RequestContext, headers: Mapping[str, str]) -> ModelBackend:
    """The backend that answers a call of `model_id` (model_backends.py), noted on the request's context."""
    target = await resolve(gateway, model_id, ctx.principal)
    if isinstance(target, ForwardTarget):
        return ForwardedBackend(gateway, target.model_id, ctx)
    if isinstance(target, OpenTarget):
        return OpenBackend(gateway, target.model_id, ctx)
    return ClosedBackend(gateway, f"{target.provider}/{target.model}", target, ctx, headers)  # bare names prefixed
