"""Open-model throughput, the image-classification row: requests/s through unimodel against the same pipeline in-process.

The model is a ViT-Base-sized classifier (224 px, 12 layers, width 768, 1,000 labels: ~86 M parameters) with
random weights, built from its config once into ``bench/out/vit-base-random`` (no download: its compute per
request is a real ViT-Base's; its answers are noise). The request is one PNG photo-sized image (640 × 480,
base64), sent in closed loops of ``--concurrency`` clients to two targets, both warm:

- ``direct``: ``transformers.pipeline("image-classification")`` in this process, doing per request what the
  worker does: base64 → Pillow decode → the pipeline (every label, best first). Requests run one at a time
  (a lock), as the worker runs them.

Both run torch on ``--threads`` intra-op threads (1 by default: the worker's ``engine_args.threads``; on a shared
2-core machine two OpenMP threads per process stall each other and the numbers turn to noise).
- ``unimodel``: ``unimodel serve`` with one ``[[models]]`` table (min = max = 1 instance, transformers engine),
  called on ``POST /models/v2/bench/vit`` with ``{"base64": …}``: gateway, queue, worker, decode, pipeline.

Windows alternate (direct, unimodel, direct, …) ``--repeats`` times; a window is ``--requests`` requests timed from
the first send to the last answer. Short windows, many of them: drift from other work on the machine falls on
both targets alike. The report: median requests/s of each target, and unimodel / direct (the
issue's target: at least 90 %).

    .venv/bin/python bench/open_throughput/image.py [--repeats 10] [--requests 5] [--concurrency 1,2] [--threads 1]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "bench" / "out"
MODEL_DIR = OUT / "vit-base-random"
MODEL_ID = "bench/vit"
TARGET_RATIO = 0.90


def build_model() -> Path:
    if (MODEL_DIR / "config.json").is_file():
        return MODEL_DIR
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    labels = {i: f"class_{i}" for i in range(1000)}
    model = ViTForImageClassification(ViTConfig(id2label=labels, label2id={v: k for k, v in labels.items()}))
    model.save_pretrained(MODEL_DIR)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(MODEL_DIR)
    return MODEL_DIR


def photo() -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


class Direct:
    """The pipeline in this process, one request at a time."""

    def __init__(self, folder: Path, threads: int) -> None:
        import torch
        import transformers

        torch.set_num_threads(threads)
        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        self.pipe: Any = transformers.pipeline("image-classification", model=str(folder), device="cpu")
        self.lock = threading.Lock()

    def __call__(self, encoded: str) -> Any:
        from PIL import Image

        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        image.load()
        with self.lock:
            return self.pipe(image.convert("RGB"), top_k=1000)


class Served:
    """`unimodel serve` with the model, one instance kept up."""

    def __init__(self, folder: Path, threads: int) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="bench-image-"))
        config = self.dir / "unimodel.toml"
        config.write_text(
            f'[server]\nport = {self.port}\n[store]\ndata_dir = "{self.dir / "data"}"\n'
            f'[runtime]\ndefault_models = false\nlog_dir = "{self.dir / "logs"}"\n'
            f'[[models]]\nid = "{MODEL_ID}"\ntask = "image-classification"\nengine = "transformers"\n'
            f'path = "{folder}"\nmin_instances = 1\nmax_instances = 1\ninstance_concurrency = 1\n'
            f"engine_args = {{ threads = {threads} }}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unimodel", "serve", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "serve.log").open("wb"),
        )
        self.url = f"http://127.0.0.1:{self.port}/models/v2/{MODEL_ID}"
        self._bodies: dict[str, bytes] = {}
        self.http = httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=16))

    def __call__(self, encoded: str) -> Any:
        body = self._bodies.get(encoded)
        if body is None:  # the JSON of the body, made once (as a client sending the same image would reuse it)
            body = self._bodies[encoded] = json.dumps({"base64": encoded}).encode()
        response = self.http.post(self.url, content=body, headers={"content-type": "application/json"})
        response.raise_for_status()
        return response.json()["output"]

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def window(target: Callable[[str], Any], encoded: str, requests: int, concurrency: int) -> float:
    """Requests per second of `requests` sent by `concurrency` closed-loop clients."""
    left = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            output = target(encoded)
            assert len(output) == 1000, "every label, best first"

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--concurrency", default="1,2")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    folder = build_model()
    encoded = base64.b64encode(photo()).decode()
    served = Served(folder, args.threads)
    try:
        direct = Direct(folder, args.threads)
        deadline = time.monotonic() + 300
        while True:  # the instance is up (min_instances) once a request answers
            try:
                served(encoded)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or served.proc.poll() is not None:
                    raise SystemExit(f"unimodel serve did not answer; see {served.dir / 'serve.log'}") from None
                time.sleep(0.5)
        for _ in range(3):
            direct(encoded)
            served(encoded)
        report: dict[str, Any] = {
            "model": "ViT-Base (random weights), 640x480 PNG",
            "threads": args.threads,
            "load_average_before": os.getloadavg(),
            "cells": [],
        }
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            rates: dict[str, list[float]] = {"direct": [], "unimodel": []}
            for _ in range(args.repeats):
                rates["direct"].append(window(direct, encoded, args.requests, concurrency))
                rates["unimodel"].append(window(served, encoded, args.requests, concurrency))
            d, u = statistics.median(rates["direct"]), statistics.median(rates["unimodel"])
            cell = {"concurrency": concurrency, "direct_rps": d, "unimodel_rps": u, "ratio": u / d, "windows": rates}
            report["cells"].append(cell)
            verdict = "ok" if u / d >= TARGET_RATIO else f"BELOW {TARGET_RATIO:.0%}"
            print(f"concurrency {concurrency}: direct {d:.2f} req/s, unimodel {u:.2f} req/s, {u / d:.1%} ({verdict})")
        OUT.mkdir(exist_ok=True)
        report["load_average_after"] = os.getloadavg()
        print(
            f"load average before {report['load_average_before'][0]:.1f}, after {report['load_average_after'][0]:.1f}"
        )
        (OUT / "open_throughput_image.json").write_text(json.dumps(report, indent=2))
    finally:
        served.stop()


if __name__ == "__main__":
    main()
