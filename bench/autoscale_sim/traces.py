"""Request traces in the Azure LLM inference format, and a bursty synthetic one in the same format.

A trace is a CSV with a header ``TIMESTAMP,ContextTokens,GeneratedTokens``, one row per request:
``TIMESTAMP`` an ISO date-time (the Azure traces carry 7 fractional digits), the token counts integers.
Any file in that format replays (``load_csv``); ``bursty`` and ``onoff`` generate one (deterministic for a
seed) and ``write_csv`` writes it so that it replays like any other.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["BurstySpec", "OnOffSpec", "Request", "bursty", "load_csv", "onoff", "service_seconds", "write_csv"]

# Where a synthetic trace's clock starts (its timestamps are written relative to this).
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Request:
    arrival: float  # seconds since the trace's first request (after speed-up)
    context_tokens: int
    generated_tokens: int


def service_seconds(request: Request, *, decode_s: float, prefill_s: float) -> float:
    """The model of a request's service time: ``decode_s`` per generated token plus ``prefill_s`` per context
    token, independent of how busy the instance is (a batching engine would slow down as its batch grows)."""
    return decode_s * request.generated_tokens + prefill_s * request.context_tokens


def _parse_time(text: str) -> float:
    # datetime parses at most 6 fractional digits; the Azure traces have 7.
    whole, _, fraction = text.strip().partition(".")
    moment = datetime.fromisoformat(whole)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def load_csv(
    path: Path, *, speedup: float = 1.0, thin: float = 1.0, seed: int = 1, limit: int | None = None
) -> list[Request]:
    """The trace's requests in arrival order, times relative to the first request, inter-arrival times divided
    by ``speedup``, each request kept with probability ``thin`` (seeded), at most ``limit`` of them."""
    if speedup <= 0 or not 0 < thin <= 1:
        raise ValueError("speedup must be > 0 and thin in (0, 1]")
    rng = random.Random(seed)
    rows: list[tuple[float, int, int]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path}: no column(s) {sorted(missing)}; expected TIMESTAMP,ContextTokens,GeneratedTokens"
            )
        for row in reader:
            if thin < 1.0 and rng.random() >= thin:
                continue
            rows.append((_parse_time(row["TIMESTAMP"]), int(row["ContextTokens"]), int(row["GeneratedTokens"])))
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise ValueError(f"{path}: no requests (after thinning)")
    rows.sort()
    start = rows[0][0]
    return [Request((t - start) / speedup, ctx, gen) for t, ctx, gen in rows]


def write_csv(path: Path, requests: Sequence[Request]) -> None:
    """Write ``requests`` in the Azure format (timestamps from 2024-01-01T00:00:00, 7 fractional digits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for r in requests:
            micro_ticks = round(r.arrival * 10_000_000)  # 100 ns ticks, as the Azure traces
            seconds, ticks = divmod(micro_ticks, 10_000_000)
            stamp = datetime.fromtimestamp(_EPOCH + seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([f"{stamp}.{ticks:07d}", r.context_tokens, r.generated_tokens])


@dataclass(frozen=True, slots=True)
class BurstySpec:
    """Bursts of Poisson arrivals separated by idle gaps of minutes.

    Bursts and gaps alternate, starting with a burst at 0, until ``duration_s``: a burst lasts one to ten
    minutes at a constant rate of 1 to 10 requests per second (a step up from nothing, the hardest shape for a
    cold start), a gap one to ten minutes; every draw is uniform over its range. Token counts are log-normal with the log-mean and log-standard-deviation of the Azure
    conversation trace (ContextTokens: median ≈ 760, mean ≈ 1,250; GeneratedTokens: median ≈ 150, mean ≈ 220),
    clipped to its ranges, so a request costs about what an Azure one does.
    """

    duration_s: float = 3600.0
    burst_s: tuple[float, float] = (60.0, 600.0)  # how long a burst lasts
    gap_s: tuple[float, float] = (60.0, 600.0)  # idle time between bursts
    rate: tuple[float, float] = (1.0, 10.0)  # arrivals per second within a burst (the Azure trace averages 5.5)
    context_log: tuple[float, float] = (6.63, 0.99)
    generated_log: tuple[float, float] = (5.02, 0.86)
    context_max: int = 16_000
    generated_max: int = 1_000


def bursty(seed: int, spec: BurstySpec | None = None) -> list[Request]:
    """A bursty trace, the same for the same seed and spec."""
    spec = spec or BurstySpec()
    rng = random.Random(seed)
    requests: list[Request] = []
    t = 0.0
    while t < spec.duration_s:
        end = min(spec.duration_s, t + rng.uniform(*spec.burst_s))
        rate = rng.uniform(*spec.rate)
        arrival = t + rng.expovariate(rate)
        while arrival < end:
            ctx = min(spec.context_max, max(1, round(math.exp(rng.gauss(*spec.context_log)))))
            gen = min(spec.generated_max, max(1, round(math.exp(rng.gauss(*spec.generated_log)))))
            requests.append(Request(arrival, ctx, gen))
            arrival += rng.expovariate(rate)
        t = end + rng.uniform(*spec.gap_s)
    if not requests:
        raise ValueError("the spec generated no request")
    first = requests[0].arrival
    return [Request(r.arrival - first, r.context_tokens, r.generated_tokens) for r in requests]


@dataclass(frozen=True, slots=True)
class OnOffSpec:
    """A periodic load: ``on_s`` seconds of Poisson arrivals at ``rate`` per second, then ``off_s`` seconds at
    ``floor`` per second (0: none), again and again for ``duration_s``; token counts as in :class:`BurstySpec`.
    The shape that separates a scale-down hold shorter than the gaps from one that bridges them."""

    on_s: float
    off_s: float
    rate: float
    floor: float = 0.0
    duration_s: float = 3600.0


def onoff(seed: int, spec: OnOffSpec) -> list[Request]:
    """An on/off trace, the same for the same seed and spec."""
    if spec.on_s <= 0 or spec.off_s < 0 or spec.rate <= 0 or spec.floor < 0:
        raise ValueError("on_s and rate must be > 0, off_s and floor >= 0")
    tokens = BurstySpec()
    rng = random.Random(seed)
    period = spec.on_s + spec.off_s
    requests: list[Request] = []
    t = 0.0
    while t < spec.duration_s:
        phase = t % period
        rate = spec.rate if phase < spec.on_s else spec.floor
        end = t - phase + (spec.on_s if phase < spec.on_s else period)  # the end of this phase
        if rate == 0:
            t = end
            continue
        arrival = t + rng.expovariate(rate)
        if arrival >= end:  # memoryless: nothing in the rest of this phase, start the next one afresh
            t = end
            continue
        t = arrival
        ctx = min(tokens.context_max, max(1, round(math.exp(rng.gauss(*tokens.context_log)))))
        gen = min(tokens.generated_max, max(1, round(math.exp(rng.gauss(*tokens.generated_log)))))
        requests.append(Request(arrival, ctx, gen))
    if not requests:
        raise ValueError("the spec generated no request")
    first = requests[0].arrival
    return [Request(r.arrival - first, r.context_tokens, r.generated_tokens) for r in requests]
