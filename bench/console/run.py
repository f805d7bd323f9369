"""What the web console costs: the bytes a first visit loads, the time until the playground can be used (a fresh
browser context each time, so nothing is cached), and the server time and size of the cluster page's poll
(GET /models/v2/list/clusters, once a second per open tab) with 1 and 20 open models configured.

    .venv/bin/python bench/console/run.py [--loads 10] [--polls 300]

It starts `unimodel serve` (open mode, loopback, its own store; models with engine "command" that are never
started, so the cluster status is all there is) and drives the system's Chromium with Playwright, like the
console tests. The report goes to stdout and bench/out/console/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.browser import chromium_path  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(models: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        port = free_port()
        tables = "".join(
            f'[[models]]\nid = "bench/model-{i}"\ntask = "chat"\nengine = "command"\n'
            f'command = "sleep 600 {{port}}"\nmax_instances = 4\n'
            for i in range(models)
        )
        config = Path(tmp) / "unimodel.toml"
        config.write_text(
            f'[server]\nport = {port}\n[store]\ndata_dir = "{tmp}/data"\n[runtime]\ndefault_models = false\n{tables}'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "unimodel", "serve", "--config", str(config)], env=env, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("unimodel serve did not start")
                time.sleep(0.1)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def first_visits(url: str, loads: int) -> dict[str, Any]:
    """Bytes and requests of a first visit; ms until the playground's model picker is filled from the catalog, and
    until a fresh context shows a tiny page (what any first visit costs the browser)."""
    times: list[float] = []
    baseline: list[float] = []  # the same fresh context opening a tiny page (/healthz): the browser's own share
    sizes: list[int] = []
    counts: list[int] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        for _ in range(loads):
            context = browser.new_context()
            page = context.new_page()
            began = time.perf_counter()
            page.goto(url + "/healthz")
            baseline.append((time.perf_counter() - began) * 1000)
            context.close()
            context = browser.new_context()
            page = context.new_page()
            bodies: list[int] = []
            page.on("requestfinished", lambda request, into=bodies: into.append(request.sizes()["responseBodySize"]))
            began = time.perf_counter()
            page.goto(url + "/console/#/playground")
            page.wait_for_function(
                "() => { const i = document.querySelector('[data-testid=model-a]'); return i && i.value; }"
            )
            times.append((time.perf_counter() - began) * 1000)
            page.wait_for_load_state("networkidle")
            sizes.append(sum(bodies))
            counts.append(len(bodies))
            context.close()
        browser.close()
    return {
        "ready_ms_median": round(statistics.median(times), 1),
        "ready_ms_max": round(max(times), 1),
        "tiny_page_ms_median": round(statistics.median(baseline), 1),
        "bytes": statistics.median(sizes),
        "requests": statistics.median(counts),
    }


def poll_cost(url: str, polls: int) -> dict[str, Any]:
    with httpx.Client() as client:
        size = len(client.get(url + "/models/v2/list/clusters").content)
        times = []
        for _ in range(polls):
            began = time.perf_counter()
            client.get(url + "/models/v2/list/clusters").raise_for_status()
            times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 2),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--polls", type=int, default=300)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with serve(1) as url:
        report["first_visit"] = first_visits(url, args.loads)
        report["poll_1_model"] = poll_cost(url, args.polls)
    with serve(20) as url:
        report["poll_20_models"] = poll_cost(url, args.polls)
    out = REPO / "bench" / "out" / "console"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
