"""The cluster API of PROTOCOL.md: an open model's instances, configured and inspected over HTTP.

Any caller may read a cluster (GET). Changing one (PUT, PATCH, DELETE) changes it for everyone, so when keys are
on it takes an admin key; and no request can take a model past the instances its configuration allows
(`max_instances`): the operator's config is the ceiling, the API moves within it.

The API's view of a deployment (`cluster_status`) and its names for the deployment's settings (`capacity.min`,
`desired`, `max`; `timeout` in minutes: `configure_cluster`) live here; runtime/controller.py knows neither.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..frontends import bytez_v2
from ..frontends.wire import invalid_request
from ..protocol import AuthenticationError, InvalidRequest, NotFound, PermissionDenied
from ..protocol.model_ids import check_model_id
from ..runtime.deployment import HISTORY_FIELDS, Deployment
from ..runtime.lease import Replica
from . import dispatch
from .context import RequestContext, context
from .http import guarded, json_response, read_body
from .service import Gateway

v2 = guarded(bytez_v2.SURFACE.error_body)


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    min: int | None = Field(default=None, ge=0)
    desired: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)


class ClusterBody(BaseModel):
    """PUT takes `timeout` (idle minutes before scaling to zero) and `capacity`; PATCH also `status`."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ClusterBody")

    timeout: float | None = Field(default=None, ge=0)
    capacity: Capacity | None = None
    status: Literal["on", "off"] | None = None


def _envelope(output: object, status: int = 200) -> Response:
    return json_response(to_json({"error": None, "output": output}), status)


def may_change(gateway: Gateway, ctx: RequestContext) -> None:
    """Changing a cluster needs an admin key when keys are on (open mode serves loopback callers only)."""
    if gateway.platform.mode == "open":
        return
    if ctx.principal.key_id is None:  # keys mode lets no keyless call this far; kept for a direct caller
        raise AuthenticationError("Changing a cluster needs an admin key in 'Authorization'.", code="missing_api_key")
    if not ctx.principal.admin:
        raise PermissionDenied(
            "Changing a cluster (PUT, PATCH, DELETE) affects every caller of the model, so it needs an admin key; "
            "any key may read it with GET."
        )


def within_config(spec_max: int, capacity: Capacity) -> None:
    """A 400 naming the field when the request asks for more instances than the model's config allows."""
    for name in ("max", "desired", "min"):
        value = getattr(capacity, name)
        if value is not None and value > spec_max:
            raise InvalidRequest(
                f"capacity.{name} ({value}) is above this model's max_instances ({spec_max}) in the server config; "
                "the cluster API works within it (raise max_instances in the config to allow more).",
                param=f"capacity.{name}",
            )


def configure_cluster(
    deployment: Deployment,
    *,
    min: int | None = None,
    desired: int | None = None,
    max: int | None = None,
    idle_timeout_s: float | None = None,
) -> None:
    """Change the capacity bounds (PUT/PATCH `capacity` and `timeout`); `desired` scales there now and the
    policy carries on from it. Raises `InvalidRequest` naming the field that is wrong."""
    lo = deployment.min_instances if min is None else min
    hi = deployment.max_instances if max is None else max
    if lo < 0:
        raise InvalidRequest("capacity.min must be 0 or more", param="capacity.min")
    if hi < 1:
        raise InvalidRequest("capacity.max must be 1 or more", param="capacity.max")
    if lo > hi:
        raise InvalidRequest(f"capacity.min ({lo}) is greater than capacity.max ({hi})", param="capacity.min")
    if desired is not None and not lo <= desired <= hi:
        raise InvalidRequest(
            f"capacity.desired ({desired}) must be between min ({lo}) and max ({hi})", param="capacity.desired"
        )
    if idle_timeout_s is not None and idle_timeout_s < 0:
        raise InvalidRequest("timeout must be 0 or more", param="timeout")
    deployment.set_capacity(min_instances=lo, max_instances=hi, desired=desired, idle_timeout_s=idle_timeout_s)


def replica_view(replica: Replica) -> dict[str, Any]:
    """One live instance: its state and load, and the host it runs on (not its port or process: any key reads this)."""
    host = urlsplit(replica.instance.address).hostname if replica.instance is not None else None
    return {
        "id": replica.id,
        "state": replica.state.value,
        "inFlight": replica.in_flight,
        "served": replica.served,
        "where": host,
    }


def cluster_status(deployment: Deployment, history: bool = False) -> dict[str, Any]:
    """The cluster status of PROTOCOL.md (`GET /models/v2/{modelId}`); with `history` (`?history=1`) also the last
    ten minutes, one row per autoscaler tick: `{"fields": [time (Unix seconds), ready, …], "rows": [[…], …]}`."""
    by_state = deployment.instances_by_state()
    download = deployment.download()
    if not deployment.is_on:
        status = "off"
    elif by_state["ready"]:
        status = "running"
    elif download is not None:
        status = "downloading"
    elif by_state["starting"]:
        status = "starting"
    elif deployment.last_failure is not None:
        status = "failed"
    else:
        status = "idle"
    placements = deployment.instances.placements()
    pending = deployment.instances.pending()
    capacity = {"min": deployment.min_instances, "desired": deployment.desired, "max": deployment.max_instances}
    return {
        "modelId": deployment.spec.id,
        "status": status,
        "created": deployment.created,
        "modified": deployment.modified,
        "timeout": deployment.idle_timeout_s / 60,
        "capacity": capacity,
        "instances": len(deployment.replicas()),
        "inferences": deployment.inferences,
        "lastInference": deployment.last_inference,
        "instanceSeconds": round(deployment.instance_seconds, 3),
        "instancesByState": by_state,
        "inFlight": deployment.in_flight,
        "queueDepth": deployment.queue_depth,
        "coldStarts": deployment.cold_starts,
        "lastStartS": None if (start := deployment.instances.last_start_s) is None else round(start, 3),
        "replicas": [replica_view(r) for r in deployment.replicas()],
        "decisions": list(deployment.decisions),  # the latest changes of `desired`, each with its reason
        "latency": deployment.latency(),  # p50/p99 of the last minutes: waiting for a slot, time on an instance
        "crashes": deployment.instances.crashes,  # instances that died while serving (OOM kills among them)
        "oomKills": deployment.instances.oom_kills,
        **({"download": download} if download is not None else {}),
        **({"placements": placements} if placements else {}),  # where each runs (a Ray node, its resources)
        **({"pending": pending} if pending is not None else {}),  # why an instance waits for a place to run
        **({"error": deployment.last_failure} if status == "failed" else {}),
        **({"history": {"fields": HISTORY_FIELDS, "rows": list(deployment.history)}} if history else {}),
    }


def wants_history(request: Request) -> bool:
    value = request.query_params.get("history", "")
    if value not in ("", "0", "1", "false", "true"):
        raise InvalidRequest("history: 1 (or true) to include the last minutes, else 0.", param="history")
    return value in ("1", "true")


def routes(gateway: Gateway) -> list[Route]:
    paths = [("/models/v2/list/clusters", ["GET"]), ("/models/v2/{model_id:path}", ["GET", "PUT", "PATCH", "DELETE"])]
    if gateway.link is not None:  # a gateway process of `serve --workers N`: the runtime process owns the clusters
        link = gateway.link

        @v2
        async def forwarded(request: Request) -> Response:
            if "model_id" in request.path_params:  # only a well-formed id goes into the forwarded path
                check_model_id(request.path_params["model_id"], "modelId")
            body = await read_body(request, gateway.settings.server.max_body_bytes)
            return await link.forward(request, body, context(request))

        return [Route(path, forwarded, methods=methods) for path, methods in paths]

    async def deployment(request: Request, *, pull: bool = False) -> Deployment:
        """The open model's deployment; `pull` (PUT) adopts a Hub model not pulled yet, and starts its pull."""
        model_id = request.path_params["model_id"]
        check_model_id(model_id, "modelId")
        target = await dispatch.resolve(gateway, model_id, context(request).principal, pull=pull)
        if not isinstance(target, dispatch.OpenTarget):  # a closed provider's model (link mode forwards)
            raise NotFound(
                f"'{model_id}' is a closed model served by its provider: it has no cluster.", param="modelId"
            )
        found = gateway.open.deployment(target.model_id)
        if pull:
            found.prefetch()
        return found

    async def configure(request: Request, allow_status: bool) -> Deployment:
        may_change(gateway, context(request))
        target = await deployment(request, pull=not allow_status)
        raw = await read_body(request, gateway.settings.server.max_body_bytes)
        try:
            body = ClusterBody.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise invalid_request(exc) from None
        if body.status is not None and not allow_status:
            raise InvalidRequest("status: only PATCH turns a cluster on or off.", param="status")
        cap = body.capacity or Capacity()
        within_config(target.spec.max_instances, cap)
        if body.status == "on" or (body.status is None and not allow_status):
            target.turn_on()
        configure_cluster(
            target,
            min=cap.min,
            desired=cap.desired,
            max=cap.max,
            idle_timeout_s=None if body.timeout is None else body.timeout * 60,
        )
        if body.status == "off":
            target.turn_off()
        return target

    @v2
    async def put_cluster(request: Request) -> Response:
        await configure(request, allow_status=False)
        return _envelope("Loading", 202)

    @v2
    async def patch_cluster(request: Request) -> Response:
        target = await configure(request, allow_status=True)
        return _envelope(cluster_status(target))

    @v2
    async def get_cluster(request: Request) -> Response:
        return _envelope(cluster_status(await deployment(request), wants_history(request)))

    @v2
    async def delete_cluster(request: Request) -> Response:
        may_change(gateway, context(request))
        (await deployment(request)).turn_off()
        return _envelope(None)

    @v2
    async def list_clusters(request: Request) -> Response:
        history = wants_history(request)
        return _envelope([cluster_status(d, history) for d in gateway.open.controller.deployments.values()])

    return [
        Route("/models/v2/list/clusters", list_clusters, methods=["GET"]),
        Route("/models/v2/{model_id:path}", get_cluster, methods=["GET"]),
        Route("/models/v2/{model_id:path}", put_cluster, methods=["PUT"]),
        Route("/models/v2/{model_id:path}", patch_cluster, methods=["PATCH"]),
        Route("/models/v2/{model_id:path}", delete_cluster, methods=["DELETE"]),
    ]
