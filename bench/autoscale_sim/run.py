"""autoscale_sim: request traces through unimodel's autoscaling policy, Knative's KPA and Ray Serve's default
policy, side by side, on a simulated clock.

Usage (from the repository root; seconds of CPU per trace and cold start, no sockets, no servers)::

    .venv/bin/python bench/autoscale_sim/run.py                       # Azure conv trace + bursty seed 1; 2, 5, 30 s
    .venv/bin/python bench/autoscale_sim/run.py --trace other.csv --cold-start-s 5
    .venv/bin/python bench/autoscale_sim/run.py --synthetic bursty:2 --synthetic bursty:3
    .venv/bin/python bench/autoscale_sim/run.py --synthetic onoff:15:8:10 --synthetic onoff:60:45:10:2
    .venv/bin/python bench/autoscale_sim/run.py --speedup 2 --no-synthetic
    .venv/bin/python bench/autoscale_sim/run.py --start-cost 0                  # starts cost only their time
    .venv/bin/python bench/autoscale_sim/run.py --src /tmp/before/src           # another tree's policy

Any CSV with ``TIMESTAMP,ContextTokens,GeneratedTokens`` replays (``--trace``). The report is printed as Markdown
and written, with the raw numbers as JSON and the synthetic traces as CSV, to ``bench/out/autoscale_sim-<time>/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _src(argv: Sequence[str]) -> Path:
    """``--src DIR`` (read before the imports below): unimodel's policy from that source tree (a ``src`` folder)."""
    for i, arg in enumerate(argv):
        if arg == "--src" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if arg.startswith("--src="):
            return Path(arg.partition("=")[2]).resolve()
    return REPO / "src"


SRC = _src(sys.argv[1:])
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(SRC))

from bounds import BurstFloor, burst_floor, fixed_fleets, hindsight_schedule  # noqa: E402
from kpa import Kpa, KpaSettings  # noqa: E402
from ours import Ours, policy_config  # noqa: E402
from ray_serve import RayServe, RaySettings  # noqa: E402
from sim import Autoscaler, Result, Setup, simulate  # noqa: E402
from traces import OnOffSpec, Request, bursty, load_csv, onoff, write_csv  # noqa: E402

from unimodel.config import RuntimeConfig  # noqa: E402
from unimodel.runtime.policy import PolicyConfig  # noqa: E402

DEFAULT_TRACE = REPO.parent / "shared" / "data" / "azure-llm-inference-2023-conv.csv"
OUT = REPO / "bench" / "out"
POLICIES = ("ours", "kpa", "ray")


@dataclass(frozen=True, slots=True)
class Options:
    setup: Setup
    idle_timeout_s: float
    tick_s: float
    policy_args: tuple[tuple[str, float], ...]
    ratio_target: float


def make(name: str, options: Options) -> Autoscaler:
    s = options.setup
    if name == "ours":
        config = policy_config(
            RuntimeConfig(),
            instance_concurrency=s.instance_concurrency,
            min_instances=s.min_instances,
            max_instances=s.max_instances,
            idle_timeout_s=options.idle_timeout_s,
            overrides=dict(options.policy_args),
        )
        return Ours(config, tick_s=options.tick_s)
    if name == "kpa":
        return Kpa(
            KpaSettings(),
            instance_concurrency=s.instance_concurrency,
            min_scale=s.min_instances,
            max_scale=s.max_instances,
        )
    if name == "ray":
        return RayServe(RaySettings(), min_replicas=s.min_instances, max_replicas=s.max_instances)
    raise ValueError(f"unknown policy {name!r}")


@dataclass(slots=True)
class TraceRun:
    name: str
    source: str
    requests: int
    span_s: float
    results: list[Result]
    verdicts: list[tuple[float, bool, str]]  # (cold start, pass, why)
    references: list[Result] = dataclasses.field(default_factory=list)
    floors: list[tuple[float, BurstFloor]] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(ok for _, ok, _ in self.verdicts)


def judge(results: Sequence[Result], ratio_target: float) -> list[tuple[float, bool, str]]:
    """Per cold start: ours' p99 ≤ the better of KPA's and Ray's, and ours' instance-seconds ≤ target × ideal."""
    verdicts = []
    for cold in sorted({r.cold_start_s for r in results}):
        cell = {r.policy: r for r in results if r.cold_start_s == cold}
        ours = cell.get("ours")
        rivals = [cell[p] for p in ("kpa", "ray") if p in cell]
        if ours is None or not rivals:
            continue
        best = min(r.delay_p99 for r in rivals)
        p99_ok = ours.delay_p99 <= best + 1e-9
        ratio_ok = ours.ratio <= ratio_target + 1e-9
        why = (
            f"p99 {ours.delay_p99:.2f} s {'≤' if p99_ok else '>'} {best:.2f} s (best of "
            f"{', '.join(r.policy for r in rivals)}); ÷ ideal {ours.ratio:.2f} {'≤' if ratio_ok else '>'} {ratio_target:g}"
        )
        verdicts.append((cold, p99_ok and ratio_ok, why))
    return verdicts


def run_trace(
    name: str,
    source: str,
    requests: list[Request],
    options: Options,
    colds: Sequence[float],
    policies: Sequence[str],
    *,
    with_bounds: bool,
) -> TraceRun:
    results = []
    for cold in colds:
        setup = dataclasses.replace(options.setup, cold_start_s=cold)
        cell_options = dataclasses.replace(options, setup=setup)
        for policy in policies:
            started = time.process_time()
            result = simulate(requests, setup, make(policy, cell_options))
            result.extra["cpu_s"] = round(time.process_time() - started, 2)
            results.append(result)
            print(
                f"  {name} cold {cold:g} s {policy}: p99 {result.delay_p99:.2f} s, ÷ ideal {result.ratio:.2f}, "
                f"{result.starts} starts ({result.flaps} flaps, {result.idle_starts} idle), cost ÷ ideal {result.cost_ratio:.2f} "
                f"({result.extra['cpu_s']} s CPU)",
                file=sys.stderr,
            )
    run = TraceRun(name, source, len(requests), requests[-1].arrival, results, judge(results, options.ratio_target))
    if with_bounds:
        s = options.setup
        run.floors = [
            (cold, burst_floor(requests, dataclasses.replace(s, cold_start_s=cold), gap_s=50.0, idle_timeout_s=idle))
            for cold in colds
            for idle in [options.idle_timeout_s]
        ]
        if run.floors and run.floors[0][1].bursts == 1:  # one continuous stretch of load: what steady fleets buy
            run.floors = []
            load = results[0].ideal_instance_seconds / results[0].duration  # instances' worth of work, on average
            run.references = fixed_fleets(requests, s, range(max(1, math.ceil(load)), math.ceil(load) + 4))
        run.references += [
            hindsight_schedule(requests, s, window_s=w, budget=options.ratio_target) for w in (60.0, 10.0)
        ]
    return run


def report(runs: Sequence[TraceRun], options: Options, command: str) -> str:
    s = options.setup
    lines = [
        "# autoscale_sim",
        "",
        f"- Command: `{command}`",
        f"- Service time = {s.decode_s} s × GeneratedTokens + {s.prefill_s} s × ContextTokens; instance_concurrency "
        f"{s.instance_concurrency} for all (Knative containerConcurrency, Ray max_ongoing_requests); instances in "
        f"[{s.min_instances}, {s.max_instances}]; ours: tick {options.tick_s:g} s, idle_timeout {options.idle_timeout_s:g} s"
        + (f", policy args {dict(options.policy_args)}" if options.policy_args else "")
        + (f", unimodel from `{os.path.relpath(SRC, REPO)}`" if SRC != REPO / "src" else "")
        + ".",
        f"- KPA: Knative's defaults (target {KpaSettings().target_fraction:.0%} of containerConcurrency, stable 60 s, "
        "panic 6 s at 200 %, max scale-up 1000, max scale-down 2, scale-to-zero grace 30 s, 2 s tick). Ray: Ray Serve's "
        f"defaults (target_ongoing_requests {RaySettings().target_ongoing_requests:g}, upscale_delay_s 30, "
        "downscale_delay_s 600, look_back_period_s 30, metrics pushed every 10 s, 0.1 s control loop).",
        "- ideal = total service time / instance_concurrency: perfectly packed instances that exist only while busy "
        "(no cold start, no idle slot). Instance-seconds count launch to stop (cold starts and drains included) "
        "until the last request completes. Every run starts at zero instances.",
        "- starts = instances launched. A second spent starting holds the instance's slot (in instance-seconds) and "
        f"burns {s.start_cost:g} instance-second more (loading weights; `--start-cost`): **cost** = instance-seconds "
        f"+ {s.start_cost:g} × starting seconds (starts × {s.start_cost:g} × start time, less for starts stopped "
        f"early). flaps = starts within (1 + {s.start_cost:g}) × start time of a give-back (a scale-down), when "
        "keeping that instance would have cost less; idle = instances that served no request.",
        f"- Target (per trace, every cold start): ours' p99 queueing delay ≤ the better of KPA's and Ray's, and ours' "
        f"instance-seconds ≤ {options.ratio_target:g} × ideal.",
    ]
    for run in runs:
        lines += [
            "",
            f"## {run.name}: {run.requests} requests over {run.span_s:.0f} s ({run.source})",
            "",
            "| cold start | policy | delay p50 s | p99 s | max s | mean s | waited | instance-s | ÷ ideal "
            "| starts | flaps | idle | cost | cost ÷ ideal | peak instances | max queue | starting s | draining s |",
            "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in run.results:
            lines.append(
                f"| {r.cold_start_s:g} s | {r.policy} | {r.delay_p50:.2f} | {r.delay_p99:.2f} | {r.delay_max:.2f} | "
                f"{r.delay_mean:.3f} | {100 * r.waited / r.requests:.1f} % | {r.instance_seconds:.0f} | "
                f"{r.ratio:.2f} | {r.starts} | {r.flaps} | {r.idle_starts} | {r.cost:.0f} | {r.cost_ratio:.2f} | "
                f"{r.peak_instances} | {r.max_queue} | {r.starting_s:.0f} | {r.extra['draining_s']} |"
            )
        lines.append("")
        for cold, ok, why in run.verdicts:
            lines.append(f"- {run.name}, cold start {cold:g} s: {'PASS' if ok else 'FAIL'} — {why}")
        if run.verdicts:
            lines.append(f"- **{run.name}: {'PASS' if run.passed else 'FAIL'}**")
        else:
            lines.append(f"- {run.name}: no verdict (it needs ours and KPA or Ray)")
        if run.references:
            lines += [
                "",
                f"Reference points (no cold start; fixed fleets, and fleets scheduled with hindsight within "
                f"{options.ratio_target:g} × ideal; see bounds.py):",
                "",
                "| fleet | delay p50 s | p99 s | waited | ÷ ideal |",
                "|---|--:|--:|--:|--:|",
            ]
            for r in run.references:
                lines.append(
                    f"| {r.policy} | {r.delay_p50:.2f} | {r.delay_p99:.2f} | {100 * r.waited / r.requests:.1f} % | "
                    f"{r.ratio:.2f} |"
                )
        if run.floors:
            b = run.floors[0][1]
            lines += [
                "",
                f"Floor for any policy that scales to zero between bursts ({b.bursts} bursts; whole instances at each "
                f"burst's mean load, one cold start each, one instance through the idle timeout): "
                + ", ".join(f"{f.ratio:.2f} × ideal at {cold:g} s" for cold, f in run.floors)
                + ".",
            ]
    return "\n".join(lines) + "\n"


def _policy_args(items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    known = {f.name for f in dataclasses.fields(PolicyConfig)} - {"min_instances", "max_instances"}
    parsed = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--policy-arg {item!r}: expected KEY=VALUE with KEY one of {sorted(known)}")
        parsed.append((key, float(value)))
    return tuple(parsed)


def main(argv: Sequence[str] | None = None) -> int:
    runtime = RuntimeConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trace", action="append", default=[], help="a CSV in the Azure format (repeatable)")
    parser.add_argument(
        "--synthetic",
        action="append",
        default=[],
        metavar="bursty[:SEED] | onoff:ON_S:OFF_S:RATE[:FLOOR]",
        help="a generated trace (repeatable): bursty (seeded), or on/off (RATE/s for ON_S s, FLOOR/s for OFF_S s)",
    )
    parser.add_argument("--no-synthetic", action="store_true", help="by default: no bursty trace")
    parser.add_argument("--speedup", type=float, default=1.0, help="divide CSV inter-arrival times by this")
    parser.add_argument("--thin", type=float, default=1.0, help="keep each CSV request with this probability")
    parser.add_argument("--limit", type=int, default=None, help="only the first N CSV requests")
    parser.add_argument("--seed", type=int, default=1, help="for --thin")
    parser.add_argument("--cold-start-s", default="2,5,30", help="comma-separated: one run per value")
    parser.add_argument("--policies", default=",".join(POLICIES), help=f"comma-separated, of {', '.join(POLICIES)}")
    parser.add_argument(
        "--instance-concurrency", type=int, default=5, help="all policies (5: Ray Serve's default max_ongoing_requests)"
    )
    parser.add_argument("--min-instances", type=int, default=0)
    parser.add_argument("--max-instances", type=int, default=20)
    parser.add_argument("--decode-s", type=float, default=0.02, help="service seconds per generated token")
    parser.add_argument("--prefill-s", type=float, default=0.0002, help="service seconds per context token")
    parser.add_argument(
        "--start-cost",
        type=float,
        default=1.0,
        help="instance-seconds a second of starting burns besides the slot it holds (cost, flaps)",
    )
    parser.add_argument("--src", type=Path, default=None, help="unimodel's source tree (a src folder) for ours")
    parser.add_argument("--idle-timeout-s", type=float, default=60.0, help="ours: the model's idle_timeout_s")
    parser.add_argument("--tick-s", type=float, default=runtime.tick_s, help="ours: [runtime] tick_s")
    parser.add_argument(
        "--policy-arg", action="append", default=[], metavar="KEY=VALUE", help="ours: a PolicyConfig field"
    )
    parser.add_argument("--ratio-target", type=float, default=1.3)
    parser.add_argument("--no-bounds", action="store_true", help="skip the reference points (fixed fleets, hindsight)")
    parser.add_argument("--no-write", action="store_true", help="print only; write nothing under bench/out")
    args = parser.parse_args(argv)

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if unknown := [p for p in policies if p not in POLICIES]:
        parser.error(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    colds = [float(c) for c in args.cold_start_s.split(",")]
    options = Options(
        setup=Setup(
            instance_concurrency=args.instance_concurrency,
            min_instances=args.min_instances,
            max_instances=args.max_instances,
            decode_s=args.decode_s,
            prefill_s=args.prefill_s,
            start_cost=args.start_cost,
        ),
        idle_timeout_s=args.idle_timeout_s,
        tick_s=args.tick_s,
        policy_args=_policy_args(args.policy_arg),
        ratio_target=args.ratio_target,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = OUT / f"autoscale_sim-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = OUT / f"autoscale_sim-{stamp}-{n}"

    traces: list[tuple[str, str, list[Request]]] = []
    csvs = args.trace or ([] if args.synthetic else [str(DEFAULT_TRACE)])
    for path in map(Path, csvs):
        requests = load_csv(path, speedup=args.speedup, thin=args.thin, seed=args.seed, limit=args.limit)
        label = path.stem + (f" ×{args.speedup:g}" if args.speedup != 1 else "")
        traces.append((label, os.path.relpath(path, REPO), requests))
    synthetic = args.synthetic or ([] if args.no_synthetic or args.trace else ["bursty:1"])
    for spec in synthetic:
        kind, _, rest = spec.partition(":")
        if kind == "bursty":
            seed = int(rest or 1)
            label, stem, generated = f"bursty seed {seed}", f"bursty-seed{seed}", bursty(seed)
        elif kind == "onoff":
            try:
                numbers = [float(x) for x in rest.split(":")]
                on_off = OnOffSpec(*numbers)
                generated = onoff(1, on_off)
            except (TypeError, ValueError) as e:
                parser.error(f"--synthetic {spec!r}: onoff:ON_S:OFF_S:RATE[:FLOOR] ({e})")
            label = f"on/off {on_off.on_s:g} s at {on_off.rate:g}/s, {on_off.off_s:g} s at {on_off.floor:g}/s"
            stem = "onoff-" + "-".join(f"{x:g}" for x in numbers)
        else:
            parser.error(f"--synthetic {spec!r}: bursty[:SEED] or onoff:ON_S:OFF_S:RATE[:FLOOR]")
        with tempfile.TemporaryDirectory() as scratch:
            # Written, then replayed from the file: the synthetic trace goes through the same loader as any other.
            path = (Path(scratch) if args.no_write else folder) / f"{stem}.csv"
            write_csv(path, generated)
            traces.append((label, f"generated, {path.name}", load_csv(path)))

    runs = []
    for label, source, requests in traces:
        print(f"{label}: {len(requests)} requests", file=sys.stderr)
        runs.append(run_trace(label, source, requests, options, colds, policies, with_bounds=not args.no_bounds))
    command = " ".join([".venv/bin/python bench/autoscale_sim/run.py", *(argv if argv is not None else sys.argv[1:])])
    text = report(runs, options, command)
    print(text)
    if not args.no_write:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.md").write_text(text)
        payload: dict[str, Any] = {
            "command": command,
            "options": {**vars(args), "src": str(SRC)},
            "setup": dataclasses.asdict(options.setup),
            "kpa": dataclasses.asdict(KpaSettings()),
            "ray": dataclasses.asdict(RaySettings()),
            "traces": [
                {
                    "name": run.name,
                    "source": run.source,
                    "requests": run.requests,
                    "passed": run.passed,
                    "verdicts": [{"cold_start_s": c, "passed": ok, "why": why} for c, ok, why in run.verdicts],
                    "results": [
                        {**dataclasses.asdict(r), "ratio": r.ratio, "cost": r.cost, "cost_ratio": r.cost_ratio}
                        for r in run.results
                    ],
                    "references": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in run.references],
                    "burst_floors": [
                        {"cold_start_s": c, **dataclasses.asdict(f), "ratio": f.ratio} for c, f in run.floors
                    ],
                }
                for run in runs
            ],
        }
        (folder / "results.json").write_text(json.dumps(payload, indent=2))
        (OUT / "autoscale_sim-latest.md").write_text(text)
        print(f"written to {folder.relative_to(REPO)}/", file=sys.stderr)
    return 0 if all(run.passed for run in runs if run.verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
