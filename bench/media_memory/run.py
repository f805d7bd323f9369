"""Media-memory benchmark: the gateway's resident memory while it fetches image URLs for Gemini.

Gemini takes images only inline, so the gateway downloads every image URL, base64-encodes it into the request
body and sends that upstream. This runs the hardening issue's case: ``--requests`` (10) concurrent requests,
each with ``--images`` (12) image URLs of ``--image-bytes`` (4 MiB), against

- ``servers.py``: an image host and a Gemini sink (reads and discards each body; reports their sizes),
- ``python -m unimodel serve`` from the working tree or from ``--rev`` (``git archive``), with
  ``[media] allow_hosts = ["127.0.0.1"]`` and a server-held Google key,

and reports the gateway process's RSS at rest (after a one-image warm-up), its peak during the burst (the
kernel's ``VmHWM``, reset just before the burst, so no sample can miss it) and its RSS ``--settle-s`` after the
last answer, plus the answers' statuses and the upstream body sizes.

Usage (from the repository root)::

    .venv/bin/python bench/media_memory/run.py                       # the working tree
    .venv/bin/python bench/media_memory/run.py --rev HEAD~1 --label before
    .venv/bin/python bench/media_memory/run.py --max-inflight-bytes 67108864
    .venv/bin/python bench/media_memory/run.py --src /tmp/some-tree/src --label variant

Everything listens on and talks to 127.0.0.1 only and is stopped when the run ends. Results go to
``bench/out/media_memory/<label>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared harness
from harness import LOOPBACK, Children, child_env, free_port, interrupts_unwind

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL = "google/gemini-2.5-flash"
MB = 1024 * 1024


def source_tree(rev: str | None, out: Path) -> Path:
    """The `src` folder of ``rev`` (``git archive``; the repository is only read), or the working tree's."""
    if rev is None:
        return REPO / "src"
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = out / f"src-{sha}"
    if not (dest / "src" / "unimodel" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as tar:
            subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", sha, "src"], stdout=tar, check=True)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as archive:
                archive.extractall(dest, filter="data")
    return dest / "src"


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Sampler(threading.Thread):
    """RSS every `interval_s` (a cross-check of VmHWM, and the curve)."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopped.is_set():
            self.samples.append((time.monotonic() - start, status_kb(self.pid, "VmRSS")))
            time.sleep(self.interval_s)


def config_text(args: argparse.Namespace, sink_port: int, data_dir: Path) -> str:
    media = ['allow_hosts = ["127.0.0.1"]']
    if args.max_inflight_bytes is not None:
        media.append(f"max_inflight_bytes = {args.max_inflight_bytes}")
    if args.inflight_wait_s is not None:
        media.append(f"inflight_wait_s = {args.inflight_wait_s}")
    return (
        f'[server]\nlog_level = "warning"\n\n[store]\ndata_dir = "{data_dir}"\n\n'
        f'[providers.google]\nbase_url = "http://{LOOPBACK}:{sink_port}"\napi_key = "bench-google-key"\n'
        "max_retries = 0\nread_timeout_s = 300\n\n[media]\n" + "\n".join(media) + "\n"
    )


def body(image_port: int, request: int, images: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "Describe these images."}]
    for i in range(images):
        content.append({"type": "image", "url": f"http://{LOOPBACK}:{image_port}/img/r{request}/i{i}.png"})
    return {"messages": [{"role": "user", "content": content}]}


async def burst(url: str, image_port: int, requests: int, images: int, tag: str) -> list[tuple[int, float, str]]:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=requests * 2)) as client:

        async def one(n: int) -> tuple[int, float, str]:
            started = time.monotonic()
            answer = await client.post(url, json=body(image_port, n, images), headers={"x-request-id": f"{tag}-{n}"})
            code = answer.json().get("code") or "" if answer.status_code != 200 else ""
            return answer.status_code, time.monotonic() - started, str(code)

        return await asyncio.gather(*(one(n) for n in range(requests)))


def wait_ready(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the gateway did not answer /healthz on port {port} within {timeout_s:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="run the gateway from this commit's src (git archive); default: working tree")
    parser.add_argument("--src", type=Path, help="run the gateway from this src folder instead (overrides --rev)")
    parser.add_argument("--label", default="run")
    parser.add_argument("--requests", type=int, default=10, help="concurrent requests per burst")
    parser.add_argument("--images", type=int, default=12, help="image URLs per request")
    parser.add_argument("--image-bytes", type=int, default=4 * MB)
    parser.add_argument("--bursts", type=int, default=1)
    parser.add_argument("--max-inflight-bytes", type=int, help="[media] max_inflight_bytes (default: the default)")
    parser.add_argument("--inflight-wait-s", type=float, help="[media] inflight_wait_s (default: the default)")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait after the last answer before 'after'")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "media_memory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = args.src.resolve() if args.src else source_tree(args.rev, args.out)
    work = Path(tempfile.mkdtemp(prefix=f"media-memory-{args.label}-", dir=args.out))
    children = Children()
    with interrupts_unwind():
        try:
            servers = children.start(
                "servers",
                [sys.executable, str(HERE / "servers.py"), "--image-bytes", str(args.image_bytes)],
                work / "servers.log",
                child_env(),
                stdio=True,
            )
            assert servers.popen.stdout is not None
            ready = servers.popen.stdout.readline().decode().split()
            if not ready or ready[0] != "READY":
                raise SystemExit(f"servers.py did not start: {servers.log_tail()}")
            image_port, sink_port = int(ready[1]), int(ready[2])
            config = work / "unimodel.toml"
            config.write_text(config_text(args, sink_port, work / "data"))
            port = free_port()
            env = {k: v for k, v in child_env().items() if not k.startswith("UNIMODEL_")}
            env["PYTHONPATH"] = str(src)
            argv = [sys.executable, "-m", "unimodel", "serve", "--config", str(config), "--host", LOOPBACK]
            gateway = children.start("gateway", [*argv, "--port", str(port)], work / "gateway.log", env)
            wait_ready(port)
            url = f"http://{LOOPBACK}:{port}/models/v2/{MODEL}"
            warm = asyncio.run(burst(url, image_port, 1, 1, "warmup"))
            if warm[0][0] != 200:
                raise SystemExit(f"the warm-up request failed: {warm}; {gateway.log_tail()}")
            time.sleep(1.0)
            rest_kb = status_kb(gateway.pid, "VmRSS")
            results: list[dict[str, Any]] = []
            for n in range(args.bursts):
                Path(f"/proc/{gateway.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS now
                sampler = Sampler(gateway.pid)
                sampler.start()
                started = time.monotonic()
                answers = asyncio.run(burst(url, image_port, args.requests, args.images, f"burst{n}"))
                took = time.monotonic() - started
                time.sleep(args.settle_s)
                sampler.stopped.set()
                sampler.join()
                results.append(
                    {
                        "burst": n,
                        "seconds": round(took, 2),
                        "statuses": dict(Counter(f"{s} {c}".strip() for s, _, c in answers)),
                        "latency_s": sorted(round(t, 2) for _, t, _ in answers),
                        "peak_mb": round(status_kb(gateway.pid, "VmHWM") / 1024, 1),
                        "sampled_peak_mb": round(max(kb for _, kb in sampler.samples) / 1024, 1),
                        "after_mb": round(status_kb(gateway.pid, "VmRSS") / 1024, 1),
                    }
                )
            stats = httpx.get(f"http://{LOOPBACK}:{sink_port}/stats", timeout=10).json()
        finally:
            children.stop_all()
    report = {
        "label": args.label,
        "source": f"{args.rev} ({src})" if args.rev and not args.src else str(src),
        "requests": args.requests,
        "images_per_request": args.images,
        "image_bytes": args.image_bytes,
        "max_inflight_bytes": args.max_inflight_bytes,
        "rest_mb": round(rest_kb / 1024, 1),
        "bursts": results,
        "upstream": {**stats, "max_body_mb": round(stats["max_body_bytes"] / 1e6, 1)},
    }
    (args.out / f"{args.label}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
