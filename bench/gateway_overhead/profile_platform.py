"""Where the platform's CPU goes: py-spy samples of unimodel gateways under the benchmark's load, per function.

For each target (the platform targets of ``run.py``: ``unimodel-base``, ``unimodel-open``, ``unimodel-keys-sqlite``,
``unimodel-keys-postgres``) it starts the gateway exactly as ``run.py`` does (same source tree, config, key, pinning,
mock upstream), warms it up, waits for a quiet machine, then runs one closed-loop load (wrk, or loadgen.py for
streaming) while ``py-spy record --gil`` samples the gateway from the client CPU.  py-spy pauses the gateway for each
sample so that stacks are whole (that costs it a few percent, alike for every target); ``--gil`` keeps only the thread
holding the GIL, so idle threads (the event loop waiting in epoll, the idle thread pool) do not count.  A function's
share of the samples times the gateway's measured CPU time per request gives microseconds per request.

The report: per target the top functions; per platform target the functions (inclusive) and modules (self time)
whose time per request grew most over ``unimodel-base``.

Usage (from the repository root; py-spy is not a project dependency: ``pip install py-spy`` into any venv)::

    .venv/bin/python bench/gateway_overhead/profile_platform.py --py-spy /tmp/pyspy-venv/bin/py-spy \\
        --targets unimodel-base,unimodel-keys-sqlite --concurrency 16 --duration 15 [-- RUN.PY OPTIONS]

Numbers are sampling estimates: trust differences of several µs per request, not single µs.  Time the GIL is not
held (SQLite's engine, libuv's reads) is spread over the sampled functions in proportion.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import run as bench  # run.py, next to this file (its folder is sys.path[0])
from harness import Children, Proc, interrupts_unwind

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
ROOT_SHARE = 0.9  # frames in more samples than this (the server's call chain) are left out of the growth table


@dataclass
class Profile:
    name: str
    rps: float = 0.0
    p50_ms: float | None = None
    cpu_us_per_req: float = 0.0
    other_cpu: float = 0.0
    total: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    modules: Counter[str] = field(default_factory=Counter)  # self samples by file

    def us(self, samples: int) -> float:
        return self.cpu_us_per_req * samples / self.total if self.total else 0.0


def frame_key(frame: str) -> tuple[str, str]:
    """(file, function) with the file shortened to its package path, so that the trees' frames match."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    path = m.group("file")
    if "site-packages/" in path:
        path = path.rsplit("site-packages/", 1)[1]
    elif "/src/unimodel/" in path:
        path = "unimodel/" + path.rsplit("/src/unimodel/", 1)[1]
    elif "/lib/python3." in path:
        path = path.rsplit("/lib/python3.", 1)[1].split("/", 1)[-1]
    return path, m.group("func")


def parse_raw(text: str, prof: Profile) -> None:
    """Fill ``prof``'s counters from py-spy's raw (collapsed) output: ``frame;frame;… count`` per line."""
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_key(f) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f[0].startswith(("process ", "thread "))]
        if not frames:
            continue
        n = int(count)
        prof.total += n
        for path, func in set(frames):
            prof.inclusive[f"{path}:{func}"] += n
        path, func = frames[-1]
        prof.own[f"{path}:{func}"] += n
        prof.modules[path] += n


def profile_target(
    args: argparse.Namespace,
    run_args: argparse.Namespace,
    setup: bench.Setup,
    children: Children,
    mock: Proc,
    mock_port: int,
    name: str,
) -> Profile:
    run = bench.TargetRun(name)
    out = setup.out / f"{name}.pyspy.txt"
    with contextlib.ExitStack() as stack:
        variant = bench.prepare_variant(run_args, setup, mock_port, run, stack)
        proc, api_key = bench.start_variant(run_args, setup, children, mock_port, run, variant)
        try:
            bench.measure(setup, run, api_key, args.mode, 16, args.warmup)
            busy = bench.wait_quiet(setup, proc.pid, mock.pid)
            if busy is not None:
                print(f"[{name}] machine still busy ({busy:.0%} of a CPU) after {setup.quiet_wait:g}s", flush=True)
            spy = [args.py_spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(out), "--gil"]
            spy += ["-p", str(proc.pid), "-d", str(int(args.duration + 2))]
            sampler = subprocess.Popen(
                setup.pinned(spy, setup.client_cpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            time.sleep(1.0)  # py-spy attaches
            watch = bench.CpuWatch(setup, proc.pid, mock.pid)
            cpu0 = bench.tree_cpu_seconds(proc.pid)
            cell = bench.measure(setup, run, api_key, args.mode, args.concurrency, args.duration)
            cpu = bench.tree_cpu_seconds(proc.pid) - cpu0
            watch.finish(cell)
            _, err = sampler.communicate(timeout=args.duration + 60)
            if sampler.returncode != 0 or not out.exists():
                raise SystemExit(f"py-spy failed (rc {sampler.returncode}): {err.strip()[-500:]}")
        finally:
            children.stop(proc)
    if cell.failed or not cell.requests:
        raise SystemExit(f"{name}: the load failed: {cell.failed or cell.first_error}")
    prof = Profile(name, cell.rps, cell.p50_ms, 1e6 * cpu / cell.requests)
    prof.other_cpu = (cell.other_cpu or 0.0) + (cell.steal or 0.0)
    parse_raw(out.read_text(), prof)
    print(
        f"[{name}] {prof.rps:.0f} rps, p50 {bench._ms(prof.p50_ms)} ms, {prof.cpu_us_per_req:.0f} µs CPU/request, "
        f"{prof.total} samples, other processes {prof.other_cpu:.0%} of a CPU",
        flush=True,
    )
    return prof


def _growth(base: Profile, prof: Profile, top: int) -> list[str]:
    keys = [
        k
        for k in set(prof.inclusive) | set(base.inclusive)
        if prof.inclusive[k] <= ROOT_SHARE * prof.total and base.inclusive[k] <= ROOT_SHARE * base.total
    ]
    grown = sorted(keys, key=lambda k: prof.us(prof.inclusive[k]) - base.us(base.inclusive[k]), reverse=True)
    lines = ["", f"### {prof.name} vs unimodel-base: functions (inclusive µs/req), largest growth first", ""]
    lines += ["| function | base | target | added |", "|---|--:|--:|--:|"]
    for key in grown[:top]:
        b, t = base.us(base.inclusive[key]), prof.us(prof.inclusive[key])
        lines.append(f"| `{key}` | {b:.1f} | {t:.1f} | {t - b:+.1f} |")
    mods = sorted(
        set(prof.modules) | set(base.modules),
        key=lambda m: abs(prof.us(prof.modules[m]) - base.us(base.modules[m])),
        reverse=True,
    )
    lines += ["", f"### {prof.name} vs unimodel-base: self time by file (µs/req), largest change first", ""]
    lines += ["| file | base | target | change |", "|---|--:|--:|--:|"]
    for mod in mods[:top]:
        b, t = base.us(base.modules[mod]), prof.us(prof.modules[mod])
        lines.append(f"| `{mod}` | {b:.1f} | {t:.1f} | {t - b:+.1f} |")
    return lines


def report(profiles: list[Profile], args: argparse.Namespace) -> str:
    lines = [
        "# Gateway CPU per request, by function (py-spy)",
        "",
        f"- load: {args.mode}, c={args.concurrency}, {args.duration:g} s per target after a {args.warmup:g} s "
        f"warm-up; py-spy --gil at {args.rate} Hz (pausing the gateway per sample)",
        "- µs/req = the function's share of the samples × the gateway's CPU time per request in the profiled window "
        "(inclusive: with what it calls; self: in the function itself)",
        "- command: " + " ".join(["bench/gateway_overhead/profile_platform.py", *sys.argv[1:]]),
        "",
        "| target | rps | p50 ms | CPU µs/req | samples | other processes |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for p in profiles:
        lines.append(
            f"| {p.name} | {p.rps:.0f} | {bench._ms(p.p50_ms)} | {p.cpu_us_per_req:.0f} | {p.total} | {p.other_cpu:.0%} |"
        )
    base = next((p for p in profiles if p.name == "unimodel-base"), None)
    for p in profiles:
        if base is not None and p is not base:
            lines += ["", f"## {p.name}", *_growth(base, p, args.top)]
    for p in profiles:
        lines += ["", f"## {p.name}: top {args.top} functions by self time", ""]
        lines += ["| function | self µs/req | incl µs/req |", "|---|--:|--:|"]
        for key, n in p.own.most_common(args.top):
            lines.append(f"| `{key}` | {p.us(n):.1f} | {p.us(p.inclusive[key]):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--targets", default="unimodel-base,unimodel-open,unimodel-keys-sqlite,unimodel-keys-postgres")
    parser.add_argument("--mode", choices=bench.MODES, default="non-stream")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of profiled load per target")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second (default 500)")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--out-dir", default=str(bench.BENCH / "out"))
    parser.add_argument("run_args", nargs="*", help="after --: options of run.py (--base-rev, --platform-rev, …)")
    args = parser.parse_args(argv)
    run_args = bench.parse_args(args.run_args)
    targets = [t for t in args.targets.split(",") if t]
    if not targets or set(targets) - set(bench.PLATFORM_TARGETS):
        raise SystemExit(f"--targets: a comma list of {','.join(bench.PLATFORM_TARGETS)}")
    if not shutil.which(args.py_spy):
        raise SystemExit(f"py-spy not found ({args.py_spy}): pip install py-spy into any venv and pass --py-spy")
    out = Path(args.out_dir) / f"gateway_profile-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    pin = shutil.which("taskset") is not None and {run_args.gateway_cpu, run_args.client_cpu} <= os.sched_getaffinity(0)
    setup = bench.Setup(
        helper_python=bench.helper_python(),
        pin=pin and run_args.gateway_cpu != run_args.client_cpu,
        gateway_cpu=run_args.gateway_cpu,
        client_cpu=run_args.client_cpu,
        duration=args.duration,
        warmup=args.warmup,
        concurrency=[args.concurrency],
        modes=[args.mode],
        loadgen="wrk" if shutil.which("wrk") else "python",
        out=out,
        quiet_wait=args.quiet_wait,
    )
    if setup.pin:
        os.sched_setaffinity(0, {setup.client_cpu})
    print(f"gateway_profile: output in {out}", flush=True)
    children = Children()
    profiles = []
    with interrupts_unwind():
        try:
            mock, mock_port = bench.start_mock(setup, children)
            for name in targets:
                profiles.append(profile_target(args, run_args, setup, children, mock, mock_port, name))
        finally:
            children.stop_all()
    text = report(profiles, args)
    (out / "profile.md").write_text(text)
    print(text)
    print(f"written: {out / 'profile.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
