"""Open models through the gateway, with fake worker processes behind it: both surfaces, metering, the cluster
API, and the faults a user can meet (unknown model, a model that cannot start, a full queue)."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.backend import LocalBackend, worker_command

from .fakes.server import LiveServer

FAKE_WORKER = str(Path(__file__).parent / "fakes" / "fake_worker.py")
CHAT = "acme/tiny-chat"
BROKEN = "acme/broken"


def start_gateway(tmp_path: Path, models: list[dict[str, Any]]) -> LiveServer:
    settings = Settings(
        models=models,
        runtime={"default_models": False, "log_dir": str(tmp_path), "tick_s": 0.2},
    )
    command = functools.partial(worker_command, program=[sys.executable, FAKE_WORKER])
    backend = LocalBackend(settings.runtime, command_for=command)
    return LiveServer(create_app(settings, backend=backend)).start()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_gateway(
        tmp_path,
        [
            {
                "id": CHAT,
                "task": "chat",
                "max_instances": 2,
                "idle_timeout_s": 60,
                "engine_args": {"load_s": 0.3, "delay_s": 0.05},
            },
            {"id": BROKEN, "task": "chat", "engine_args": {"fail_load": True}},
        ],
    )
    yield live
    live.stop(timeout_s=20)


def test_first_request_starts_an_instance_and_is_answered(gateway: LiveServer) -> None:
    assert httpx.get(gateway.url + f"/models/v2/{CHAT}").json()["output"]["instances"] == 0
    r = httpx.post(gateway.url + f"/models/v2/{CHAT}", json={"input": "hello there"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["error"] is None
    assert body["output"]["role"] == "assistant" and body["output"]["content"]
    assert r.headers["inference-meter"] == "cpu"
    assert float(r.headers["inference-time"]) > 0
    status = httpx.get(gateway.url + f"/models/v2/{CHAT}").json()["output"]
    assert status["instances"] == 1 and status["inferences"] == 1 and status["lastInference"]


def test_openai_sdk_chat_and_stream_on_an_open_model(gateway: LiveServer) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    out = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Say hi"}], max_tokens=20)
    assert out.choices[0].message.content
    assert out.model == CHAT
    chunks = list(
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Say hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None
    assert CHAT in [m.id for m in client.models.list()]


def test_v2_stream_from_an_open_model_is_raw_text(gateway: LiveServer) -> None:
    with httpx.stream(
        "POST", gateway.url + f"/models/v2/{CHAT}", json={"input": "count", "stream": True}, timeout=30
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        text = r.read().decode()
    assert text and not text.startswith("data:")


def test_a_model_that_cannot_start_is_a_503_saying_why_and_others_keep_working(gateway: LiveServer) -> None:
    r = httpx.post(gateway.url + f"/models/v2/{BROKEN}", json={"input": "hi"}, timeout=30)
    assert r.status_code == 503, r.text
    assert r.json()["output"] is None
    assert "start" in r.json()["error"]
    assert "retry-after" in r.headers
    ok = httpx.post(gateway.url + f"/models/v2/{CHAT}", json={"input": "still fine?"}, timeout=30)
    assert ok.status_code == 200
    assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_cluster_api_put_get_patch_delete_and_list(gateway: LiveServer) -> None:
    base = gateway.url + f"/models/v2/{CHAT}"
    r = httpx.put(base, json={"timeout": 1, "capacity": {"min": 1, "desired": 1, "max": 2}})
    assert r.status_code == 202 and r.json() == {"error": None, "output": "Loading"}
    deadline = time.monotonic() + 20
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = httpx.get(base).json()["output"]
        if status["instances"] >= 1 and status["status"] == "running":
            break
        time.sleep(0.2)
    assert status["capacity"]["min"] == 1 and status["capacity"]["max"] == 2
    assert status["instances"] == 1 and status["timeout"] == 1
    listed = httpx.get(gateway.url + "/models/v2/list/clusters").json()["output"]
    assert {c["modelId"] for c in listed} == {CHAT, BROKEN}
    r = httpx.patch(base, json={"status": "off"})
    assert r.status_code == 200 and r.json()["output"]["status"] == "off"
    refused = httpx.post(base, json={"input": "hi"}, timeout=10)
    assert refused.status_code == 503 and "turned off" in refused.json()["error"]
    r = httpx.patch(base, json={"status": "on", "capacity": {"min": 0}})
    assert r.status_code == 200
    assert httpx.post(base, json={"input": "hi"}, timeout=30).status_code == 200
    r = httpx.delete(base)
    assert r.status_code == 200 and r.json() == {"error": None, "output": None}


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("put", {"capacity": {"min": 3, "max": 2}}, 400),
        ("put", {"capacity": {"min": "one"}}, 400),
        ("put", {"status": "off"}, 400),
        ("patch", {"status": "sideways"}, 400),
        ("put", {"timeout": -1}, 400),
    ],
)
def test_bad_cluster_requests_are_400s_naming_the_field(
    gateway: LiveServer, method: str, body: dict[str, Any], status: int
) -> None:
    r = httpx.request(method.upper(), gateway.url + f"/models/v2/{CHAT}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["output"] is None and r.json()["error"]


def test_cluster_api_for_unknown_and_closed_models(gateway: LiveServer) -> None:
    assert httpx.get(gateway.url + "/models/v2/nobody/nothing").status_code == 404
    r = httpx.put(gateway.url + "/models/v2/openai/gpt-4o", json={"capacity": {"max": 2}})
    assert r.status_code == 404 and "closed model" in r.json()["error"]


def test_catalog_lists_open_models_and_their_tasks(gateway: LiveServer) -> None:
    models = httpx.get(gateway.url + "/models/v2/list/models", params={"task": "chat"}).json()["output"]
    ids = [m["modelId"] for m in models]
    assert CHAT in ids and "openai/gpt-4o-mini" in ids
    one = httpx.get(gateway.url + "/models/v2/list/models", params={"modelId": CHAT}).json()["output"]
    assert one == [
        {"modelId": CHAT, "task": "chat", "params": None, "ramRequired": None, "meter": "cpu", "meterPrice": None}
    ]


def test_non_chat_endpoints_refuse_clearly(gateway: LiveServer) -> None:
    r = httpx.post(gateway.url + "/v1/embeddings", json={"model": "openai/gpt-4o", "input": "x"})
    assert r.status_code == 400 and "not an embedding model" in r.json()["error"]["message"]
    assert "openai/text-embedding-3-small" in r.json()["error"]["message"]
    r = httpx.post(gateway.url + "/v1/completions", json={"model": "openai/gpt-4o", "prompt": "x"})
    assert r.status_code == 400 and "open models only" in r.json()["error"]["message"]
    r = httpx.post(gateway.url + "/v1/embeddings", json={"input": "x"})
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]


def test_an_instance_killed_mid_stream_ends_the_stream_and_the_next_request_succeeds(tmp_path: Path) -> None:
    import os
    import signal

    live = start_gateway(
        tmp_path, [{"id": CHAT, "task": "chat", "engine_args": {"load_s": 0.2, "delay_s": 3.0}, "idle_timeout_s": 60}]
    )
    try:
        deployment = live.app.state.gateway.open.deployment(CHAT)
        started = time.monotonic()
        with httpx.stream(
            "POST",
            live.url + "/v1/chat/completions",
            json={"model": CHAT, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        ) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("data:")  # the stream has begun
            (replica,) = deployment.replicas()
            os.kill(replica.instance.pid, signal.SIGKILL)
            rest = list(lines)
        assert time.monotonic() - started < 10  # ended, not hung
        assert not any("[DONE]" in line for line in rest)
        assert any('"error"' in line for line in rest)
        ok = httpx.post(live.url + f"/models/v2/{CHAT}", json={"input": "again"}, timeout=30)
        assert ok.status_code == 200, ok.text
    finally:
        live.stop(timeout_s=20)


# An open model's stream goes through the same loop as a closed provider's (upstream/events.py).


def _openai_stream(gateway: LiveServer, text: str) -> list[dict[str, object]]:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": CHAT, "messages": [{"role": "user", "content": text}], "stream": True},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
    return [json.loads(line[6:]) for line in lines]


def test_an_open_model_stream_cut_before_its_finish_ends_with_an_error_event(gateway: LiveServer) -> None:
    events = _openai_stream(gateway, "hello there [fake_stream_cut]")
    assert "error" in events[-1], events[-1]
    assert "ended its stream before finishing" in events[-1]["error"]["message"]  # type: ignore[index]
    assert not any(e.get("choices") and e["choices"][0].get("finish_reason") for e in events)  # type: ignore[index]


def test_an_open_model_tool_call_that_says_stop_finishes_with_tool_calls(gateway: LiveServer) -> None:
    events = _openai_stream(gateway, "call it [fake_tool_call]")
    finishes = [e["choices"][0]["finish_reason"] for e in events if e.get("choices")]  # type: ignore[index]
    assert finishes[-1] == "tool_calls"
    assert any(e["choices"][0]["delta"].get("tool_calls") for e in events if e.get("choices"))  # type: ignore[index]


def test_a_bad_parameter_is_named_as_the_caller_sent_it(gateway: LiveServer) -> None:
    r = httpx.post(gateway.url + f"/models/v2/{CHAT}", json={"input": "hi", "params": {"max_new_tokens": "x"}})
    assert r.status_code == 400
    assert r.json()["error"].startswith("params.max_new_tokens: ") and "max_tokens:" not in r.json()["error"]
