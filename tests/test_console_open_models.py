"""The console with real open models, in a real browser: a streamed chat with the bundled SmolLM2 (llama.cpp, its
worker process started by the first call), and a Hugging Face model pulled by id from the Models page with its
progress bar moving, against the fake Hub (tests/fakes/hf_hub.py) throttled so the download takes seconds.
The server runs in open mode (loopback, no key), where the console needs no key at all."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.bundled import SMOLLM2_ID, smollm2_gguf
from unimodel.store import Store

from .browser import browser_fixture, page_fixture, shot  # noqa: F401  (fixtures)
from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the llama.cpp engine is not installed (make test does)"
)

PULLED = "acme/SmolLM2-mirror-GGUF"


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[FakeHub, str]]:
    gguf = smollm2_gguf()
    assert gguf is not None, "the bundled SmolLM2 is not installed (make install)"
    fake = FakeHub()
    fake.add_repo(PULLED, {"smollm2.Q4_K_M.gguf": gguf, "README.md": "# a mirror"})
    with LiveServer(fake.app) as server:
        yield fake, server.url


@pytest.fixture(scope="module")
def served(hub: tuple[FakeHub, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("console-open")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("UNIMODEL_HUB__OFFLINE", raising=False)  # conftest keeps other tests off any Hub
        settings = Settings(
            hub={"endpoint": hub[1], "cache_dir": str(tmp / "cache"), "offline": False},
            runtime={"default_models": True, "log_dir": str(tmp / "logs"), "tick_s": 0.2},
            store={"data_dir": str(tmp / "data"), "flush_interval_s": 0.05},
        )
        live = LiveServer(create_app(settings, store=Store.open(settings.store))).start()
        yield live
        live.stop(timeout_s=30)


def test_a_streamed_chat_with_the_bundled_smollm2(served: LiveServer, page: Page) -> None:
    page.goto(served.url + "/console/#/playground")
    expect(page.get_by_test_id("key-state")).to_have_text("No gateway key")  # open mode: no key asked
    page.get_by_test_id("model-a").fill(SMOLLM2_ID)
    page.get_by_test_id("model-a").dispatch_event("change")
    expect(page.get_by_test_id("task")).to_have_text("chat · open")
    page.get_by_text("System prompt and parameters").click()
    page.get_by_label("max_tokens").fill("24")
    page.get_by_label("temperature").fill("0")
    page.get_by_test_id("prompt").fill("What is the capital of France?")
    page.get_by_test_id("send").click()
    meta = page.get_by_test_id("meta")
    expect(meta).to_contain_text("first token", timeout=120_000)  # the instance starts on this first call
    answer = page.get_by_test_id("answer").inner_text()
    assert answer.strip(), "SmolLM2 answered nothing"
    expect(meta).to_contain_text("out tokens")
    assert page.get_by_role("alert").count() == 0
    shot(page, "playground-smollm2")


def test_a_hub_pull_shows_its_progress(served: LiveServer, hub: tuple[FakeHub, str], page: Page) -> None:
    fake, _ = hub
    size = Path(smollm2_gguf() or "").stat().st_size
    fake.throttle_bps = size // 4  # about 4 s of download
    try:
        page.goto(served.url + "/console/#/models")
        page.get_by_test_id("hub-id").fill(PULLED)
        page.get_by_role("button", name="Pull").click()
        state = page.get_by_test_id("pull-state")
        expect(state).to_contain_text("Downloading", timeout=10_000)
        bar = page.get_by_test_id("pull-progress")
        expect(bar).to_have_attribute("max", str(size))
        page.wait_for_function(
            "() => { const b = document.querySelector('[data-testid=pull-progress]'); "
            "return b && b.value > 0 && b.value < b.max; }",
            timeout=10_000,
        )
        shot(page, "models-pull")
        expect(state).to_have_text("Pulled: idle", timeout=30_000)
        assert page.get_by_test_id("pull-progress").evaluate("b => b.value === b.max")
    finally:
        fake.throttle_bps = 0
