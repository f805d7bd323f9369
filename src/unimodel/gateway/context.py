"""What the platform knows about one request while it is handled; routes fill in the model and its usage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request

from ..protocol import Usage
from .keycache import Principal

if TYPE_CHECKING:
    from ..runtime.service import Metered

ANONYMOUS = Principal(key_id=None, name="anonymous")
SCOPE_KEY = "unimodel.context"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    arrived: datetime  # UTC, for the ledger
    started: float  # perf_counter, for latency
    surface: str  # "v2", "openai", "admin", "other"
    method: str = "-"
    path: str = "-"
    principal: Principal = ANONYMOUS
    model: str | None = None  # set once a model call is routed; only model calls go into the ledger
    kind: Literal["open", "closed"] = "closed"
    provider: str | None = None
    status: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    inference_s: float | None = None
    units: float | None = None  # what a media call made or read, in `unit`: images, seconds (of audio), characters
    unit: str | None = None
    metered: Metered | None = None  # open models: the instance-seconds, known once the answer is done
    counted: bool = True  # False in the runtime process: the gateway process counts the request
    record: bool = True  # False when another process writes this request's usage record
    base_url: str | None = None  # the caller's base URL as the forwarding gateway process saw it (runtime process)
    on_finish: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def routed(self, model: str, kind: Literal["open", "closed"], provider: str | None = None) -> None:
        self.model, self.kind, self.provider = model, kind, provider

    def add_usage(self, usage: Usage) -> None:
        self.input_tokens = usage.input_tokens
        self.output_tokens = usage.output_tokens

    def add_units(self, units: float, unit: str) -> None:
        self.units, self.unit = units, unit

    def add_openai_usage(self, body: object) -> None:
        """Token counts from an OpenAI-shaped answer's `usage` (completions, embeddings), when it has one."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.input_tokens = prompt if isinstance(prompt, int) else None
            self.output_tokens = completion if isinstance(completion, int) else None


def context(request: Request) -> RequestContext:
    """The request's context; requests that bypassed the platform middleware (tests of bare routes) get a blank one."""
    ctx = request.scope.get(SCOPE_KEY)
    if ctx is None:
        import time
        from datetime import UTC

        ctx = request.scope[SCOPE_KEY] = RequestContext("-", datetime.now(UTC), time.perf_counter(), "other")
    assert isinstance(ctx, RequestContext)
    return ctx
