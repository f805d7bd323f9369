"""Name a Hugging Face model and call it: an id no provider claims is looked up on the (fake) Hub, its files
pulled once into the cache, an instance started, and the call answered — on both surfaces and with the official
SDKs; progress in the cluster status; who may pull; the Hub's failures; restarts without the Hub."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from bytez import Bytez
from prometheus_client import REGISTRY

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.bundled import smollm2_gguf
from unimodel.store import Store

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the llama.cpp engine is not installed (make test does)"
)

GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[FakeHub, str]]:
    gguf = smollm2_gguf()
    assert gguf is not None, "the bundled SmolLM2 is not installed (make install)"
    fake = FakeHub()
    fake.add_repo(GGUF_REPO, {GGUF_FILE: gguf, "mmproj-f16.gguf": b"GGUF projector", "README.md": "# SmolLM2"})
    fake.add_repo("acme/gated-GGUF", {"g.Q4_K_M.gguf": gguf}, gated="manual")
    fake.add_repo("acme/diffusion", {"model_index.json": "{}"}, library_name="diffusers", pipeline_tag="text-to-image")
    with LiveServer(fake.app) as server:
        yield fake, server.url


@pytest.fixture(autouse=True)
def healed(hub: tuple[FakeHub, str]) -> Iterator[None]:
    yield
    hub[0].heal()


Start = Callable[..., LiveServer]


@pytest.fixture
def start(hub: tuple[FakeHub, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """A gateway on the fake Hub with its own cache (`cache` shares one); keyword arguments are config tables."""
    monkeypatch.delenv("UNIMODEL_HUB__OFFLINE", raising=False)  # conftest keeps other tests off any Hub
    started: list[LiveServer] = []

    def make(cache: Path | None = None, **tables: Any) -> LiveServer:
        config: dict[str, Any] = {
            "hub": {"endpoint": hub[1], "cache_dir": str(cache or tmp_path / "cache"), "offline": False},
            "runtime": {"default_models": False, "log_dir": str(tmp_path / "logs"), "tick_s": 0.2},
            "store": {"data_dir": str(tmp_path / "data"), "flush_interval_s": 0.05},
        }
        for name, values in tables.items():
            config[name] = {**config.get(name, {}), **values}
        settings = Settings(**config)
        live = LiveServer(create_app(settings, store=Store.open(settings.store))).start()
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop(timeout_s=20)


def cluster(gateway: LiveServer, model: str = GGUF_REPO, **headers: str) -> dict[str, Any]:
    r = httpx.get(gateway.url + f"/models/v2/{model}", headers=headers)
    assert r.status_code == 200, r.text
    status: dict[str, Any] = r.json()["output"]
    return status


def wait_for(check: Callable[[], bool], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def pulled_bytes() -> float:
    return REGISTRY.get_sample_value("unimodel_hub_pulled_bytes_total", {"model": GGUF_REPO}) or 0.0


def bytez(gateway: LiveServer) -> Bytez:
    sdk = Bytez("any-key", dev=True)
    sdk._client.host = gateway.url + "/models/v2/"
    return sdk


def test_an_unconfigured_hub_id_is_pulled_once_and_served_on_both_surfaces(
    start: Start, hub: tuple[FakeHub, str]
) -> None:
    fake, _ = hub
    gateway = start()
    size = Path(smollm2_gguf() or "").stat().st_size
    served_before = fake.served(GGUF_REPO, GGUF_FILE)

    result = bytez(gateway).model(GGUF_REPO).run(CHAT, {"max_new_tokens": 8})
    assert result.error is None, result.error
    assert result.output["role"] == "assistant" and result.output["content"].strip()
    assert fake.served(GGUF_REPO, GGUF_FILE) - served_before == size  # the one GGUF, once; no projector, no README
    assert fake.served(GGUF_REPO, "mmproj-f16.gguf") == 0

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    out = client.chat.completions.create(model=GGUF_REPO, messages=CHAT, max_tokens=8)  # type: ignore[arg-type]
    assert out.choices[0].message.content
    status = cluster(gateway)
    assert status["status"] == "running" and status["instances"] == 1 and status["inferences"] == 2
    assert "download" not in status

    listed = httpx.get(gateway.url + "/models/v2/list/models", params={"task": "chat"}).json()["output"]
    assert GGUF_REPO in [m["modelId"] for m in listed]
    assert GGUF_REPO in [m.id for m in client.models.list()]

    # scale to zero, then the next call starts an instance from the local copy
    r = httpx.patch(gateway.url + f"/models/v2/{GGUF_REPO}", json={"timeout": 0.01})
    assert r.status_code == 200, r.text
    wait_for(lambda: cluster(gateway)["instances"] == 0)
    again = httpx.post(gateway.url + f"/models/v2/{GGUF_REPO}", json={"input": CHAT, "params": {"max_new_tokens": 4}})
    assert again.status_code == 200, again.text
    assert fake.served(GGUF_REPO, GGUF_FILE) - served_before == size


def test_concurrent_first_calls_wait_on_one_download_whose_progress_shows(
    start: Start, hub: tuple[FakeHub, str]
) -> None:
    fake, _ = hub
    gateway = start()
    size = Path(smollm2_gguf() or "").stat().st_size
    served_before = fake.served(GGUF_REPO, GGUF_FILE)
    pulled_before = pulled_bytes()
    fake.throttle_bps = size // 4  # about 4 s of download
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            r = httpx.get(gateway.url + f"/models/v2/{GGUF_REPO}")
            if r.status_code == 200 and "download" in r.json()["output"]:
                seen.append(r.json()["output"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.post(
                        gateway.url + "/v1/chat/completions",
                        json={"model": GGUF_REPO, "messages": CHAT, "max_tokens": 4},
                        timeout=120,
                    ),
                    range(4),
                )
            )
    finally:
        stop.set()
        watcher.join()
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert fake.served(GGUF_REPO, GGUF_FILE) - served_before == size
    assert seen, "the cluster status never showed the download"
    assert seen[0]["status"] == "downloading"
    download = seen[-1]["download"]
    assert download["bytesTotal"] == size and 0 <= download["bytesDone"] <= size
    assert download["filesTotal"] == 1
    # the gateway copies the figures into its metrics every second (this process's registry)
    wait_for(lambda: pulled_bytes() - pulled_before == size, within_s=5)
    assert f'unimodel_hub_pulled_bytes_total{{model="{GGUF_REPO}"}}' in httpx.get(gateway.url + "/metrics").text


def test_put_starts_the_pull_and_answers_at_once(start: Start, hub: tuple[FakeHub, str]) -> None:
    fake, _ = hub
    gateway = start()
    size = Path(smollm2_gguf() or "").stat().st_size
    fake.throttle_bps = size // 3
    began = time.monotonic()
    r = httpx.put(gateway.url + f"/models/v2/{GGUF_REPO}", json={"timeout": 5})
    assert r.status_code == 202 and r.json()["output"] == "Loading"
    assert time.monotonic() - began < 2.5  # the plan only: the download goes on after the answer
    assert cluster(gateway)["status"] == "downloading"
    wait_for(lambda: "download" not in cluster(gateway))
    status = cluster(gateway)
    assert status["status"] == "idle" and status["instances"] == 0  # pulled, nothing started
    fake.throttle_bps = 0
    served = fake.served(GGUF_REPO, GGUF_FILE)
    r = httpx.post(gateway.url + f"/models/v2/{GGUF_REPO}", json={"input": "Hi", "params": {"max_new_tokens": 4}})
    assert r.status_code == 200, r.text
    assert fake.served(GGUF_REPO, GGUF_FILE) == served


def test_a_pulled_model_is_served_after_a_restart_without_the_hub(start: Start, tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    first = start(cache)
    r = httpx.post(first.url + f"/models/v2/{GGUF_REPO}", json={"input": "Hi", "params": {"max_new_tokens": 4}})
    assert r.status_code == 200, r.text
    first.stop(timeout_s=20)
    offline = start(cache, hub={"offline": True, "endpoint": "http://127.0.0.1:9"})
    listed = httpx.get(offline.url + "/models/v2/list/models").json()["output"]
    assert {"modelId": GGUF_REPO, "task": "chat"}.items() <= next(
        m for m in listed if m["modelId"] == GGUF_REPO
    ).items()
    r = httpx.post(offline.url + "/v1/chat/completions", json={"model": GGUF_REPO, "messages": CHAT, "max_tokens": 4})
    assert r.status_code == 200, r.text
    lower = httpx.post(
        offline.url + "/v1/chat/completions", json={"model": GGUF_REPO.lower(), "messages": CHAT, "max_tokens": 4}
    )
    assert lower.status_code == 200 and len(httpx.get(offline.url + "/models/v2/list/clusters").json()["output"]) == 1


def test_hub_refusals_are_clear_errors_on_both_surfaces(start: Start) -> None:
    gateway = start()
    r = httpx.post(gateway.url + "/models/v2/acme/no-such-model", json={"input": "Hi"})
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    r = httpx.post(gateway.url + "/models/v2/acme/gated-GGUF", json={"input": "Hi"})
    assert r.status_code == 403 and r.json()["code"] == "gated_model" and "token" in r.json()["error"]
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "acme/diffusion", "messages": CHAT})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_model"
    assert "diffusers" in r.json()["error"]["message"]
    r = httpx.post(gateway.url + "/models/v2/a/b/c", json={"input": "Hi"})  # no provider, no Hub repo
    assert r.status_code == 404
    r = httpx.get(gateway.url + f"/models/v2/{GGUF_REPO}")  # reading a cluster never pulls
    assert r.status_code == 404
    assert httpx.get(gateway.url + "/models/v2/list/clusters").json()["output"] == []


def test_an_allow_list_and_a_size_cap_refuse_before_any_byte(start: Start, hub: tuple[FakeHub, str]) -> None:
    fake, _ = hub
    served = fake.served(GGUF_REPO, GGUF_FILE)
    gateway = start(hub={"allow": ["Qwen/*"]})
    r = httpx.post(gateway.url + f"/models/v2/{GGUF_REPO}", json={"input": "Hi"})
    assert r.status_code == 403 and r.json()["code"] == "model_not_allowed" and "allow" in r.json()["error"]
    small = start(hub={"max_download_gb": 0.01})
    r = httpx.post(small.url + f"/models/v2/{GGUF_REPO}", json={"input": "Hi"})
    assert r.status_code == 403 and r.json()["code"] == "model_too_large"
    assert fake.served(GGUF_REPO, GGUF_FILE) == served


def test_the_hub_failing_mid_download_is_a_clear_503_and_a_later_call_succeeds(
    start: Start, hub: tuple[FakeHub, str]
) -> None:
    fake, _ = hub
    gateway = start()
    fake.break_bodies(after_bytes=1 << 20, times=50, file=GGUF_FILE)  # every try of huggingface_hub's breaks
    began = time.monotonic()
    r = httpx.post(gateway.url + f"/models/v2/{GGUF_REPO}", json={"input": "Hi"}, timeout=120)
    assert r.status_code == 503, r.text
    assert "could not be pulled" in r.json()["error"] and "retry-after" in r.headers
    assert time.monotonic() - began < 60
    assert cluster(gateway)["status"] == "failed"
    fake.heal()
    time.sleep(float(r.headers["retry-after"]))  # the back-off after a failed start
    r = httpx.post(gateway.url + f"/models/v2/{GGUF_REPO}", json={"input": "Hi", "params": {"max_new_tokens": 4}})
    assert r.status_code == 200, r.text


def test_keys_mode_lets_only_admin_keys_pull_and_any_key_call_what_is_pulled(start: Start, tmp_path: Path) -> None:
    gateway = start(auth={"mode": "keys", "cache_ttl_s": 0.2})
    store = Store.open(Settings(store={"data_dir": str(tmp_path / "data")}).store, migrate=False)
    try:
        user = store.create_key("user").secret
        admin = store.create_key("admin", admin=True).secret
    finally:
        store.close()
    body = {"input": "Hi", "params": {"max_new_tokens": 4}}
    url = gateway.url + f"/models/v2/{GGUF_REPO}"
    r = httpx.post(url, json=body, headers={"authorization": f"Key {user}"})
    assert r.status_code == 403 and r.json()["code"] == "pull_not_allowed"
    assert "unimodel pull" in r.json()["error"]
    r = httpx.post(url, json=body, headers={"authorization": f"Key {admin}"}, timeout=120)
    assert r.status_code == 200, r.text
    r = httpx.post(url, json=body, headers={"authorization": f"Key {user}"}, timeout=60)
    assert r.status_code == 200, r.text
