"""Prometheus metrics (prometheus_client): requests, latency, upstream latency, tokens, open-model instances,
queues and cold starts, usage-ledger health and rate-limit refusals.

One process: the default registry. Several gateway processes (`serve --workers N`): `PROMETHEUS_MULTIPROC_DIR`
is set before they start, every process writes its samples there, and `/metrics` in any of them aggregates all.
Open-model figures come from the one process that runs the controller; it copies them into gauges each tick.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REQUESTS = Counter(
    "unimodel_requests", "Requests answered, by surface, model and HTTP status.", ["surface", "model", "status"]
)
LATENCY = Histogram(
    "unimodel_request_duration_seconds",
    "Time from the request's arrival to the last byte of its answer.",
    ["surface", "model"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_LATENCY = Histogram(
    "unimodel_upstream_duration_seconds",
    "Closed providers: time until the answer (non-streaming) or its first event (streaming).",
    ["provider", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter("unimodel_tokens", "Tokens by model and direction (input, output).", ["model", "direction"])
RATE_LIMITED = Counter("unimodel_rate_limited", "Requests refused by a per-key limit.", ["limit"])
USAGE_DROPPED = Counter(
    "unimodel_usage_records_dropped", "Usage records lost because the buffer was full while the store was down."
)
USAGE_BUFFERED = Gauge(
    "unimodel_usage_records_buffered", "Usage records waiting to be written.", multiprocess_mode="livesum"
)
STORE_UP = Gauge("unimodel_store_up", "1 when the last store write succeeded.", multiprocess_mode="livemin")
INSTANCES = Gauge(
    "unimodel_open_instances", "Open-model instances by state.", ["model", "state"], multiprocess_mode="livemax"
)
QUEUE_DEPTH = Gauge(
    "unimodel_open_queue_depth", "Requests waiting for an open-model instance.", ["model"], multiprocess_mode="livemax"
)
INSTANCE_CRASHES = Counter(
    "unimodel_open_instance_crashes", "Ready instances that died unasked, by model and cause.", ["model", "cause"]
)
COLD_STARTS = Counter(
    "unimodel_open_cold_starts", "Instances started because a request found no capacity at all.", ["model"]
)
INSTANCE_SECONDS = Counter("unimodel_open_instance_seconds", "Instance-seconds spent on requests.", ["model"])
PULLED_BYTES = Counter("unimodel_hub_pulled_bytes", "Bytes of model files pulled from the Hugging Face Hub.", ["model"])
PULLS_FAILED = Counter("unimodel_hub_pulls_failed", "Pulls of a model's files from the Hub that failed.", ["model"])
PULLING = Gauge(
    "unimodel_hub_pulls_in_flight", "Models whose files are being pulled now.", ["model"], multiprocess_mode="livemax"
)


class Children:
    """A metric's labelled children, looked up once: `metric.labels(...)` takes a lock and builds a key on
    every call, and this runs a few times per request."""

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(*labels)
        return child


requests = Children(REQUESTS)
latency = Children(LATENCY)
upstream_latency = Children(UPSTREAM_LATENCY)
tokens = Children(TOKENS)


class OpenModelGauges:
    """Copies the controller's figures into the metrics (counters advance by what changed since last time)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._states: dict[str, set[str]] = {}

    def update(self, per_model: dict[str, dict[str, Any]]) -> None:
        for model, figures in per_model.items():
            states: dict[str, int] = figures.get("instances", {})
            for state, count in states.items():
                INSTANCES.labels(model, state).set(count)
            for gone in self._states.get(model, set()) - states.keys():
                INSTANCES.labels(model, gone).set(0)  # a state no instance is in any more reads 0, not its last count
            self._states[model] = set(states)
            QUEUE_DEPTH.labels(model).set(figures.get("queue_depth", 0))
            self._advance(COLD_STARTS, model, "cold_starts", figures)
            crashes, oom = float(figures.get("crashes", 0)), float(figures.get("oom_kills", 0))
            self._advance_to(INSTANCE_CRASHES.labels(model, "oom_killed"), (model, "oom"), oom)
            self._advance_to(INSTANCE_CRASHES.labels(model, "exited"), (model, "exited"), crashes - oom)
            self._advance_to(
                INSTANCE_CRASHES.labels(model, "unresponsive"), (model, "hung"), figures.get("unresponsive", 0)
            )
            self._advance(INSTANCE_SECONDS, model, "instance_seconds", figures)
            if "downloading" in figures:  # a model named by its Hub id (runtime/hub/source.py)
                PULLING.labels(model).set(figures["downloading"])
                self._advance(PULLED_BYTES, model, "bytes_downloaded", figures)
                self._advance(PULLS_FAILED, model, "download_failures", figures)

    def _advance_to(self, child: Any, key: tuple[str, str], total: float) -> None:
        previous = self._seen.get(key, 0.0)
        if total > previous:
            child.inc(total - previous)
        self._seen[key] = float(total)

    def _advance(self, counter: Counter, model: str, name: str, figures: dict[str, Any]) -> None:
        total = float(figures.get(name, 0))
        previous = self._seen.get((model, name), 0.0)
        if total > previous:
            counter.labels(model).inc(total - previous)
        self._seen[(model, name)] = total


def _registry() -> CollectorRegistry:
    """This process's samples, or every process's when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text for `/metrics`."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def serve_port(host: str, port: int) -> None:
    """`[metrics] port`: the metrics alone, without a key, on their own port (prometheus_client's server, in a
    daemon thread); for a scraper on a network the API's callers do not reach."""
    start_http_server(port, addr=host, registry=_registry())


MEDIA_INFLIGHT_BYTES = Gauge(
    "unimodel_media_inflight_bytes",
    "Fetched image bytes held by requests until their upstream call is sent ([media] max_inflight_bytes).",
    multiprocess_mode="livesum",
)

USAGE_REJECTED = Counter(
    "unimodel_usage_records_rejected",
    "Usage records the store refused on their own (a value no database holds), never written; /readyz says why.",
)
