"""Generated media through unimodel against the same pipeline called in-process: what the worker, the gateway and
the media store add to one text-to-image request.

A tiny random-weight Stable Diffusion pipeline (tests/worker_generation_models.py: 64x64, ``--steps`` denoising
steps, one torch thread everywhere) answers the same prompt and seed from four targets, taking turns request by
request so drift on a shared machine spreads over all of them:

- ``in-process``: ``DiffusionPipeline`` called in this process, the image encoded as PNG (what the engine does).
- ``worker``: unimodel's worker (``--engine diffusers``) on its own ``POST /v1/run`` (the PNG bytes).
- ``v2 url``: ``unimodel serve`` (a separate process) on ``POST /models/v2/{id}``: the PNG kept in the media store,
  a URL answered.
- ``v2 bytes``: the same with ``json: false`` + ``stream: true``: the PNG bytes answered.

Usage (from the repository root)::

    .venv/bin/python bench/open_generation/run.py [--requests 40] [--steps 2]

Prints a table (median and p90 latency, each target's median over in-process) and writes it with the load
average before and after to bench/out/open_generation.json. Everything listens on 127.0.0.1 and is stopped at
the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.served import serve  # noqa: E402
from tests.worker_generation_models import build_text_to_image  # noqa: E402
from tests.worker_helpers import WorkerProcess  # noqa: E402

MODEL = "bench/tiny-sd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per target (after 3 warm-up rounds)")
    parser.add_argument("--steps", type=int, default=2, help="num_inference_steps")
    args = parser.parse_args()

    import torch
    from diffusers import DiffusionPipeline

    work = Path(tempfile.mkdtemp(prefix="open-generation-"))
    folder = build_text_to_image(work)
    torch.set_num_threads(1)
    pipe: Any = DiffusionPipeline.from_pretrained(str(folder))  # type: ignore[no-untyped-call]
    pipe.set_progress_bar_config(disable=True)
    params = {"num_inference_steps": args.steps, "seed": 1}
    body = {"input": "a lighthouse", "params": params}

    def in_process() -> None:
        generator = torch.Generator("cpu").manual_seed(1)
        image = pipe("a lighthouse", num_inference_steps=args.steps, generator=generator).images[0]
        image.save(io.BytesIO(), format="PNG")

    config = (
        f'[[models]]\nid = "{MODEL}"\ntask = "text-to-image"\nengine = "diffusers"\npath = "{folder}"\n'
        "min_instances = 1\nengine_args = { threads = 1 }\n"
    )
    worker = WorkerProcess(
        "--engine", "diffusers", "--task", "text-to-image", "--model-id", MODEL, "--path", str(folder),
        "--engine-arg", "threads=1",
    ).start()  # fmt: skip
    load_before = os.getloadavg()
    try:
        with serve(work, config) as served, httpx.Client(timeout=300) as client:
            worker.wait_ready(240)

            def post(url: str, payload: dict[str, Any]) -> Callable[[], None]:
                def send() -> None:
                    response = client.post(url, json=payload)
                    assert response.status_code == 200, response.text

                return send

            run_url = f"{served.url}/models/v2/{MODEL}"
            targets: dict[str, Callable[[], None]] = {
                "in-process": in_process,
                "worker": post(worker.url + "/v1/run", body),
                "v2 url": post(run_url, body),
                "v2 bytes": post(run_url, {**body, "json": False, "stream": True}),
            }
            for _ in range(3):
                for target in targets.values():
                    target()
            times: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.requests):
                for name, target in targets.items():
                    started = time.perf_counter()
                    target()
                    times[name].append(time.perf_counter() - started)
    finally:
        worker.stop()
    load_after = os.getloadavg()
    base = statistics.median(times["in-process"])
    rows = []
    print(f"{'target':<12} {'median ms':>10} {'p90 ms':>8} {'vs in-process':>14}")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[int(len(samples) * 0.9)]
        rows.append({"target": name, "median_ms": median * 1000, "p90_ms": p90 * 1000, "ratio": median / base})
        print(f"{name:<12} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {median / base:>13.2f}x")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    out = ROOT / "bench" / "out" / "open_generation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"requests": args.requests, "steps": args.steps, "rows": rows, "load": [load_before, load_after]}
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
