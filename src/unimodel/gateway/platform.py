"""The platform around every request: who calls (gateway keys), how much they may (limits), what it cost (the
usage ledger), and whether the parts it depends on are up (readiness)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ..config import Price, Settings
from ..protocol import AuthenticationError, RateLimited, UnimodelError
from ..store import ApiKey, Store, UsageLedger, UsageRecord, cost, price_for
from . import metrics
from .auth import gateway_key
from .context import ANONYMOUS, RequestContext
from .keycache import KeyCache, KeyStoreUnavailable, Principal
from .limits import Limiter, RateDecision, create_limiter

log = logging.getLogger("unimodel.platform")


class StartupRefused(Exception):
    """The server must not start as configured; the message says why and what to change."""


class StoreUnreachable(UnimodelError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=503, code="store_unavailable", retry_after=5)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_mode(settings: Settings) -> Literal["keys", "open"]:
    """`[auth] mode`, defaulting to open on loopback and keys elsewhere; open on a public address is refused."""
    loopback = is_loopback(settings.server.host)
    mode = settings.auth.mode or ("open" if loopback else "keys")
    if mode == "open" and not loopback:
        raise StartupRefused(
            f'[auth] mode = "open" lets anyone call any model, so it is allowed only on a loopback address, and '
            f'the server is set to listen on {settings.server.host}. Use mode = "keys" (create a key with '
            f"`unimodel keys create --name NAME`) or listen on 127.0.0.1."
        )
    return mode


class Platform:
    def __init__(self, settings: Settings, store: Store, *, limiter: Limiter | None = None) -> None:
        self.settings = settings
        self.mode = auth_mode(settings)
        self.store = store
        self.keys = KeyCache(store, settings.auth.cache_ttl_s)
        self.ledger = UsageLedger.from_config(store, settings.store)
        self.limiter = limiter or create_limiter(settings.limits)
        self._prices: dict[str, Price | None] = {}
        self._dropped_seen = 0
        self._metrics_task: asyncio.Task[None] | None = None
        # Which model ids may be metric labels as they are (create_app sets the catalog's): callers choose ids, and
        # each label value is a time series kept forever, so ids outside the catalog share one bucket.
        self.listed_model: Callable[[str], bool] = lambda model: False
        self.anonymous = Principal(
            key_id=None,
            name="anonymous",
            rps=settings.limits.rps,
            concurrency=settings.limits.concurrency,
        )

    async def start(self) -> None:
        await self.keys.start()
        await self.ledger.start()
        self._metrics_task = asyncio.create_task(self._report(), name="unimodel-platform-metrics")

    async def aclose(self) -> None:
        if self._metrics_task is not None:
            self._metrics_task.cancel()
        await self.keys.aclose()
        await self.ledger.aclose()
        await self.limiter.aclose()
        self._update_metrics()
        await asyncio.to_thread(self.store.close)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._update_metrics()

    def _update_metrics(self) -> None:
        metrics.USAGE_BUFFERED.set(self.ledger.buffered)
        metrics.STORE_UP.set(1 if self.ledger.healthy else 0)
        dropped = self.ledger.dropped
        if dropped > self._dropped_seen:
            metrics.USAGE_DROPPED.inc(dropped - self._dropped_seen)
            self._dropped_seen = dropped
        rejected, rejected_seen = self.ledger.rejected, int(getattr(self, "_rejected_seen", 0))
        if rejected > rejected_seen:
            metrics.USAGE_REJECTED.inc(rejected - rejected_seen)
            self._rejected_seen = rejected

    # -- who is calling -------------------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str], *, required: bool = False) -> Principal:
        """The caller's principal. Keys mode (or `required`): a valid, unrevoked key or a 401. Open mode: the
        key's principal when a valid one is sent (its limits and stored provider keys apply), else anonymous —
        SDKs insist on sending some key, so an unknown one is not an error there."""
        secret = gateway_key(headers)
        strict = required or self.mode == "keys"
        if secret is None:
            if strict:
                raise AuthenticationError(
                    "This server needs a gateway key: send it as 'Authorization: Key <key>' (Bytez SDKs), "
                    "'Authorization: Bearer <key>' (OpenAI and Anthropic SDKs) or 'x-api-key: <key>' (Claude Code). "
                    "An admin creates keys with `unimodel keys create`.",
                    code="missing_api_key",
                )
            return self.anonymous
        try:
            found = await self.keys.lookup(secret)
        except KeyStoreUnavailable:
            if not strict:
                return self.anonymous
            raise StoreUnreachable(
                "The key store is unreachable and this key has not been used on this server yet; try again shortly."
            ) from None
        if found is None or not found[0].active:
            if not strict:
                return self.anonymous
            what = "has been revoked" if found is not None else "is not a key of this server"
            raise AuthenticationError(
                f"The gateway key in 'Authorization' (or 'x-api-key') {what}.", code="invalid_api_key"
            )
        key, provider_keys = found
        return self._principal(key, provider_keys)

    def _principal(self, key: ApiKey, provider_keys: dict[str, str]) -> Principal:
        limits = self.settings.limits
        return Principal(
            key_id=key.id,
            name=key.name,
            admin=key.admin,
            rps=limits.rps if key.rps is None else key.rps,
            concurrency=limits.concurrency if key.concurrency is None else key.concurrency,
            provider_keys=provider_keys,
        )

    # -- limits -----------------------------------------------------------------------------------------------

    async def check_rate(self, principal: Principal) -> RateDecision | None:
        """Counts the request against the key's rate; None when the key is unlimited. Refusal is the caller's
        to answer (it needs the decision for the headers)."""
        if principal.rps <= 0:
            return None
        decision = await self.limiter.hit(principal.limit_key, principal.rps)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("rps").inc()
        return decision

    async def acquire_open_slot(self, ctx: RequestContext) -> None:
        """Takes one of the key's concurrent open-model slots until the request finishes, or raises a 429."""
        principal = ctx.principal
        if principal.concurrency <= 0:
            return
        lease = uuid.uuid4().hex
        decision = await self.limiter.acquire(principal.limit_key, principal.concurrency, lease)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("concurrency").inc()
            raise RateLimited(
                f"This key already has {decision.limit} open-model requests in flight, its limit; wait for one "
                "to finish.",
                code="concurrency_limit_exceeded",
                retry_after=1,
            )
        key = principal.limit_key

        async def release() -> None:
            await self.limiter.release(key, lease)

        ctx.on_finish.append(release)

    # -- usage ------------------------------------------------------------------------------------------------

    def finish(self, ctx: RequestContext, latency_s: float) -> None:
        """Metrics for every request; a ledger record for every model call."""
        model = self.model_label(ctx)
        if ctx.counted:
            metrics.requests(ctx.surface, model, str(ctx.status or 499)).inc()
            metrics.latency(ctx.surface, model).observe(latency_s)
        if ctx.model is None or not ctx.record:
            return
        if ctx.input_tokens:
            metrics.tokens(model, "input").inc(ctx.input_tokens)
        if ctx.output_tokens:
            metrics.tokens(model, "output").inc(ctx.output_tokens)
        if ctx.metered is not None:
            ctx.inference_s = ctx.metered.seconds
        price = self._price(ctx.model)
        self.ledger.record(
            UsageRecord(
                time=ctx.arrived,
                request_id=ctx.request_id,
                key_id=ctx.principal.key_id,
                model=ctx.model,
                kind=ctx.kind,
                provider=ctx.provider,
                status=ctx.status or 499,
                input_tokens=ctx.input_tokens,
                output_tokens=ctx.output_tokens,
                inference_s=ctx.inference_s,
                cost_usd=None
                if price is None
                else cost(price, ctx.input_tokens or 0, ctx.output_tokens or 0, ctx.inference_s or 0.0),
                latency_ms=round(latency_s * 1000, 3),
                units=ctx.units,
                unit=ctx.unit,
            )
        )

    def model_label(self, ctx: RequestContext) -> str:
        """The `model` label of a request's metrics: the id when the catalog lists it, else `<provider>/other` for
        a closed provider's unlisted model, else `other`; `-` when no model was called."""
        if ctx.model is None:
            return "-"
        if self.listed_model(ctx.model):
            return ctx.model
        return f"{ctx.provider}/other" if ctx.provider else "other"

    def _price(self, model: str) -> Price | None:
        if model not in self._prices:
            if len(self._prices) > 10_000:
                self._prices.clear()
            self._prices[model] = price_for(model, self.settings.prices)
        return self._prices[model]

    # -- readiness --------------------------------------------------------------------------------------------

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), timeout=2.0)
            checks["store"] = {"ok": True}
        except Exception as exc:  # the reason is shown to operators; it names no secret
            checks["store"] = {"ok": False, "error": str(exc) or type(exc).__name__}
        ledger = self.ledger
        # Not ok (not ready) while the store is unreachable. Degraded, but still ready, for `rejected_window_s`
        # (5 min) after the store refused a record: the other records are written, and a caller who found a value
        # the database refuses must not be able to take every gateway out of its load balancer.
        rejection = ledger.recent_rejection()
        error = ledger.last_error if ledger.last_error and not ledger.healthy else None
        if error is None and rejection is not None:
            error = (
                f"the store refused {ledger.rejected} usage record(s) since start, the last in the past "
                f"{ledger.rejected_window_s / 60:g} minutes, and they were not written: {rejection}"
            )
        checks["usage_ledger"] = {
            "ok": ledger.healthy,
            "buffered": ledger.buffered,
            "dropped": ledger.dropped,
            "rejected": ledger.rejected,
            **({"degraded": True} if rejection is not None else {}),
            **({"error": error} if error else {}),
        }
        limiter_ok = bool(getattr(self.limiter, "healthy", True))
        checks["limits"] = {"ok": limiter_ok, "shared": self.settings.limits.redis_url is not None}
        ready = all(check["ok"] for check in checks.values())
        return ready, checks


__all__ = ["ANONYMOUS", "Platform", "StartupRefused", "auth_mode", "is_loopback"]
