"""Pulling from the Hub (runtime/hub: client, pull, local, models) against the fake Hub over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from huggingface_hub import try_to_load_from_cache

from unimodel.config import HubConfig, OpenModelConfig
from unimodel.protocol.errors import UnimodelError
from unimodel.runtime.hub import HubModels, LocalModel, model_config

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer

TOKEN = "hf_pullTESTtokenABCDEFGHIJ0123456789xyz"
OTHER = "hf_notGRANTEDtokenABCDEFGH0123456789xy"
MiB = 1024 * 1024
SMALL = os.urandom(2 * MiB)
LARGER = os.urandom(3 * MiB)
BIG = os.urandom(25 * MiB)
WEIGHTS = os.urandom(1 * MiB + 11)
BERT_CONFIG = '{"architectures": ["BertForMaskedLM"], "model_type": "bert"}'
BERT = {"config.json": BERT_CONFIG, "model.safetensors": WEIGHTS, "tokenizer.json": "{}", "README.md": "# bert"}


@pytest.fixture
def hub() -> FakeHub:
    hub = FakeHub()
    hub.add_token(TOKEN, "alice")
    hub.add_token(OTHER, "bob")
    hub.add_repo("acme/tiny-GGUF", {"tiny.Q4_K_M.gguf": SMALL, "tiny.Q8_0.gguf": LARGER, "README.md": "# tiny"})
    hub.add_repo("acme/big-GGUF", {"big.Q4_K_M.gguf": BIG})
    hub.add_repo("acme/bert", {**BERT, "onnx/model.onnx": b"onnx"}, pipeline_tag="fill-mask")
    hub.add_repo("acme/gated", BERT, pipeline_tag="fill-mask", gated="auto", access={"alice"})
    hub.add_repo("acme/private", BERT, pipeline_tag="fill-mask", private=True, access={"alice"})
    return hub


@pytest.fixture
def server(hub: FakeHub) -> Iterator[LiveServer]:
    with LiveServer(hub.app) as live:
        yield live


@pytest.fixture
def make_hub(server: LiveServer, tmp_path: Path) -> Callable[..., HubModels]:
    """HubModels on the fake, with its cache in tmp_path; keyword arguments are [hub] keys (and `environ`)."""

    def make(environ: dict[str, str] | None = None, **config: object) -> HubModels:
        fields: dict[str, object] = {"endpoint": server.url, "cache_dir": str(tmp_path / "cache"), **config}
        env = {"HF_HOME": str(tmp_path / "home"), **(environ or {})}
        return HubModels(HubConfig.model_validate(fields), environ=env, timeout_s=2.0)

    return make


def pull_sync(hub: HubModels, model_id: str, **kwargs: str) -> LocalModel:
    return hub.pulls.start(hub.client.plan(model_id, **kwargs)).result(timeout=120)


def failure(call: Callable[[], object]) -> UnimodelError:
    with pytest.raises(UnimodelError) as caught:
        call()
    return caught.value


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# --- a pull ------------------------------------------------------------------------------------------------


def test_pull_puts_only_the_planned_files_in_the_hf_cache(make_hub: Callable[..., HubModels], tmp_path: Path) -> None:
    models = make_hub()
    local = pull_sync(models, "acme/tiny-GGUF")
    commit = local.commit
    snapshot = tmp_path / "cache" / "models--acme--tiny-GGUF" / "snapshots" / commit
    assert local.path == snapshot / "tiny.Q4_K_M.gguf" and local.path.read_bytes() == SMALL
    assert sorted(p.name for p in snapshot.iterdir()) == ["tiny.Q4_K_M.gguf"]
    assert (local.task, local.engine, local.size_bytes, local.revision) == (
        "text-generation",
        "llama.cpp",
        len(SMALL),
        "main",
    )
    # other tools find it where they look: the standard layout, refs/main included
    cached = try_to_load_from_cache("acme/tiny-GGUF", "tiny.Q4_K_M.gguf", cache_dir=tmp_path / "cache")
    assert cached == str(local.path)


def test_progress_is_observable_while_a_throttled_pull_runs(hub: FakeHub, make_hub: Callable[..., HubModels]) -> None:
    hub.throttle_bps = 12 * MiB
    models = make_hub()
    before = time.time()
    pull = models.pull(models.client.plan("acme/big-GGUF"))
    seen = []
    while not pull.done():
        seen.append(pull.progress())
        time.sleep(0.05)
    seen.append(pull.progress())
    pull.result()
    assert [p.state for p in seen[:-1]] == ["pulling"] * (len(seen) - 1) and seen[-1].state == "done"
    done = [p.bytes_done for p in seen]
    assert done == sorted(done), "progress never goes back"
    assert any(0 < p.bytes_done < len(BIG) for p in seen), "a partial byte count was seen"
    assert any(p.rate_bps > 0 and p.eta_s is not None for p in seen[:-1])
    last = seen[-1]
    assert (last.bytes_done, last.bytes_total, last.files_done, last.files_total) == (len(BIG), len(BIG), 1, 1)
    assert before <= last.started_at <= time.time() and last.eta_s is None and last.rate_bps > 0
    assert last.to_json()["state"] == "done"


def test_a_failed_pull_keeps_finished_files_and_the_next_fetches_only_the_rest(
    hub: FakeHub, make_hub: Callable[..., HubModels], tmp_path: Path
) -> None:
    models = make_hub()
    hub.break_bodies(after_bytes=0, times=6, file="model.safetensors")  # more than huggingface_hub retries
    error = failure(lambda: pull_sync(models, "acme/bert"))
    assert (error.status, error.code) == (502, "upstream_unavailable")
    assert "kept breaking while downloading 'model.safetensors' of 'acme/bert'" in error.message
    assert models.local("acme/bert") is None  # no manifest: not listed as runnable
    storage = tmp_path / "cache" / "models--acme--bert"
    snapshot = next((storage / "snapshots").iterdir())
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json"]  # the only file that finished
    assert list((storage / "blobs").glob("*.incomplete")) == []  # no partial file kept
    hub.heal()
    local = pull_sync(models, "acme/bert")
    assert local.files == ("config.json", "model.safetensors", "tokenizer.json")
    assert hub.body_starts["acme/bert/config.json"] == 1  # not fetched again
    assert (local.path / "model.safetensors").read_bytes() == WEIGHTS


def test_a_broken_transfer_resumes_within_the_pull(hub: FakeHub, make_hub: Callable[..., HubModels]) -> None:
    hub.break_bodies(after_bytes=10 * MiB + 123)
    local = pull_sync(make_hub(), "acme/big-GGUF")
    assert local.path.read_bytes() == BIG
    assert [r.range for r in hub.requests if r.path.startswith("/cdn/")] == [None, f"bytes={10 * MiB}-"]


async def test_concurrent_callers_share_one_resolve_and_one_download(
    hub: FakeHub, make_hub: Callable[..., HubModels]
) -> None:
    models = make_hub()
    hub.gate = threading.Event()
    callers = [asyncio.create_task(models.ensure("acme/tiny-GGUF")) for _ in range(3)]
    key = "acme/tiny-GGUF/tiny.Q4_K_M.gguf"
    await asyncio.to_thread(wait_until, lambda: hub.body_starts[key] == 1, "the download to start")
    callers[2].cancel()  # one caller gives up: the others still get the model
    assert failure(lambda: models.remove("acme/tiny-GGUF")).code == "pull_in_progress"
    progress = models.pulling("acme/tiny-GGUF")
    assert progress is not None and progress.progress().state == "pulling"
    hub.gate.set()
    first, second = await callers[0], await callers[1]
    assert first == second and first.path.read_bytes() == SMALL
    with pytest.raises(asyncio.CancelledError):
        await callers[2]
    assert hub.body_starts[key] == 1
    assert sum(1 for r in hub.requests if r.path.startswith("/api/models/")) == 1
    assert models.pulling("acme/tiny-GGUF") is None


def test_two_processes_pulling_at_once_fetch_each_byte_once(hub: FakeHub, server: LiveServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "UNIMODEL_"))}
    env |= {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "unimodel", "pull", "acme/tiny-GGUF"]
    key = "acme/tiny-GGUF/tiny.Q4_K_M.gguf"
    head_path = f"/acme/tiny-GGUF/resolve/{hub.repos['acme/tiny-gguf'].sha}/tiny.Q4_K_M.gguf"
    hub.gate = threading.Event()

    def heads() -> int:
        return sum(1 for r in hub.requests if r.method == "HEAD" and r.path == head_path)

    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        wait_until(lambda: hub.body_starts[key] == 1, "the first process to start downloading")
        started.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        wait_until(lambda: heads() == 2, "the second process to ask for the same file")
        hub.gate.set()
        outputs = [p.communicate(timeout=120) for p in started]
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
    first, second = started
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert hub.served("acme/tiny-GGUF", "tiny.Q4_K_M.gguf") == len(SMALL)
    assert hub.body_starts[key] == 1
    assert all(b"task     text-generation" in out for out, _ in outputs)


# --- errors ------------------------------------------------------------------------------------------------


def test_unknown_repo_is_404_even_when_the_hub_answers_401(make_hub: Callable[..., HubModels]) -> None:
    error = failure(lambda: make_hub().client.plan("acme/missing"))
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert error.message.startswith("Model 'acme/missing' was not found on the Hub at http://127.0.0.1:")
    assert "set [hub] token (or HF_TOKEN)" in error.message


def test_unknown_revision_is_404(make_hub: Callable[..., HubModels]) -> None:
    error = failure(lambda: make_hub().client.plan("acme/bert", revision="v9"))
    assert (error.status, error.code, error.param) == (404, "revision_not_found", "revision")


def test_private_repo_needs_a_token_that_can_read_it(make_hub: Callable[..., HubModels]) -> None:
    assert failure(lambda: make_hub().client.plan("acme/private")).code == "model_not_found"
    wrong = failure(lambda: make_hub(token=OTHER).client.plan("acme/private"))
    assert wrong.code == "model_not_found" and "the token from [hub] token cannot read it" in wrong.message
    assert pull_sync(make_hub(token=TOKEN), "acme/private").task == "fill-mask"


def test_gated_repo_without_a_token_is_403_naming_the_setting(
    make_hub: Callable[..., HubModels], server: LiveServer
) -> None:
    error = failure(lambda: make_hub().client.plan("acme/gated"))
    assert (error.status, error.code) == (403, "gated_model")
    assert error.message == (
        f"'acme/gated' is gated: accept its conditions at {server.url}/acme/gated, then set [hub] token "
        "(or HF_TOKEN) to a token of that account."
    )


def test_gated_repo_with_a_token_not_granted_is_403_at_download(make_hub: Callable[..., HubModels]) -> None:
    error = failure(lambda: pull_sync(make_hub(environ={"HF_TOKEN": OTHER}), "acme/gated"))
    assert (error.status, error.code) == (403, "gated_model")
    assert "the token from HF_TOKEN has not been granted access" in error.message
    assert pull_sync(make_hub(environ={"HF_TOKEN": TOKEN}), "acme/gated").files[0] == "config.json"


def test_invalid_token_is_502_naming_where_it_came_from(make_hub: Callable[..., HubModels]) -> None:
    error = failure(lambda: make_hub(token="hf_revoked").client.plan("acme/bert"))
    assert (error.status, error.code) == (502, "hub_token_invalid")
    assert "refused the token from [hub] token" in error.message and "hf_revoked" not in error.message


def test_hub_down_is_a_clear_error_in_bounded_time(hub: FakeHub, make_hub: Callable[..., HubModels]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: connections are refused
        refused = failure(lambda: make_hub(endpoint=closed).client.plan("acme/bert"))
    assert (refused.status, refused.code) == (502, "upstream_unavailable")
    assert refused.message.startswith(f"Cannot reach the Hub at {closed} (")
    hub.outage = 503
    unavailable = failure(lambda: make_hub().client.plan("acme/bert"))
    assert (unavailable.status, unavailable.code) == (503, "upstream_unavailable")
    assert "answered 503" in unavailable.message
    hub.outage = 500
    assert failure(lambda: make_hub().client.plan("acme/bert")).status == 502
    hub.outage, hub.delay_s = None, 5.0
    slow = failure(lambda: make_hub().client.plan("acme/bert"))  # timeout_s is 2
    assert (slow.status, slow.code) == (504, "upstream_timeout")


def test_not_enough_disk_is_507_before_any_download(hub: FakeHub, server: LiveServer, tmp_path: Path) -> None:
    models = HubModels(
        HubConfig(endpoint=server.url, cache_dir=str(tmp_path / "cache")), environ={}, free=lambda _: 1_000_000
    )
    error = failure(lambda: pull_sync(models, "acme/tiny-GGUF"))
    assert (error.status, error.code) == (507, "insufficient_storage")
    assert f"needs 2.1 MB in {tmp_path / 'cache'}, and that disk has 1 MB free" in error.message
    assert not any(r.path.startswith("/cdn/") or "/resolve/" in r.path for r in hub.requests)


def test_too_large_and_not_allowed_are_refused_before_downloading(
    hub: FakeHub, make_hub: Callable[..., HubModels]
) -> None:
    too_large = failure(lambda: make_hub(max_download_gb=0.001).client.plan("acme/big-GGUF"))
    assert (too_large.status, too_large.code) == (403, "model_too_large")
    not_allowed = failure(lambda: make_hub(allow=["Qwen/*"]).client.plan("acme/bert"))
    assert (not_allowed.status, not_allowed.code) == (403, "model_not_allowed")
    assert len(hub.requests) == 1  # one model info for the first; the allow list is checked before asking


def test_token_never_reaches_logs_or_errors(
    caplog: pytest.LogCaptureFixture, hub: FakeHub, make_hub: Callable[..., HubModels]
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("huggingface_hub", "httpx2", "httpcore", "unimodel"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors = [
        failure(lambda: pull_sync(make_hub(token=OTHER), "acme/gated")),
        failure(lambda: make_hub(token=OTHER + "x").client.plan("acme/bert")),
        failure(lambda: make_hub(token=TOKEN).client.plan("acme/missing")),
    ]
    models = make_hub(token=TOKEN)
    pull = models.pull(models.client.plan("acme/gated"))
    pull.result()
    assert pull.progress().state == "done"
    assert len(caplog.records) > 10  # huggingface_hub's and httpx's debug lines were there to leak into
    texts = [caplog.text, *(e.message for e in errors), *(repr(e) for e in errors), repr(models.settings)]
    for text in texts:
        assert TOKEN not in text and OTHER not in text
    assert any(r.authorized for r in hub.requests)  # the token was sent, to the Hub only
    assert not any(r.authorized for r in hub.requests if r.path.startswith("/cdn/"))


# --- offline, catalog, removal, specs -----------------------------------------------------------------------


def test_offline_serves_local_models_and_refuses_others_naming_the_setting(
    hub: FakeHub, make_hub: Callable[..., HubModels]
) -> None:
    local = pull_sync(make_hub(), "acme/tiny-GGUF")
    seen = len(hub.requests)
    offline = make_hub(offline=True)
    assert asyncio.run(offline.ensure("acme/tiny-GGUF")) == local
    error = failure(lambda: asyncio.run(offline.ensure("acme/bert")))
    assert (error.status, error.code) == (503, "hub_offline")
    assert "the Hub is off ([hub] offline)" in error.message
    by_env = failure(lambda: make_hub(environ={"HF_HUB_OFFLINE": "1"}).client.plan("acme/bert"))
    assert by_env.code == "hub_offline" and "(HF_HUB_OFFLINE)" in by_env.message
    assert len(hub.requests) == seen  # nothing asked


def test_catalog_knows_pulled_models_after_a_restart_without_the_network(
    hub: FakeHub, make_hub: Callable[..., HubModels]
) -> None:
    pulled = [pull_sync(make_hub(), "acme/tiny-GGUF"), pull_sync(make_hub(), "acme/bert")]
    seen = len(hub.requests)
    restarted = make_hub()
    assert restarted.list() == sorted(pulled, key=lambda m: m.id.lower())
    assert restarted.local("ACME/Tiny-gguf") == pulled[0]  # ids are case-insensitive, as on the Hub
    assert restarted.local("acme/tiny-GGUF", revision=pulled[0].commit[:7]) == pulled[0]
    assert restarted.local("acme/tiny-GGUF", revision="v2") is None
    assert restarted.local("acme/tiny-GGUF", file="tiny.Q8_0.gguf") is None
    assert len(hub.requests) == seen


def test_a_model_whose_files_were_deleted_elsewhere_is_not_listed(make_hub: Callable[..., HubModels]) -> None:
    local = pull_sync(make_hub(), "acme/bert")
    (local.folder / "model.safetensors").unlink()
    assert make_hub().list() == [] and make_hub().local("acme/bert") is None


def test_removal_frees_that_repos_files_only(make_hub: Callable[..., HubModels], tmp_path: Path) -> None:
    models = make_hub()
    gguf, bert = pull_sync(models, "acme/tiny-GGUF"), pull_sync(models, "acme/bert")
    assert models.remove("acme/tiny-GGUF") == gguf.size_bytes == len(SMALL)
    assert not (tmp_path / "cache" / "models--acme--tiny-GGUF").exists()
    assert models.list() == [bert] and (bert.path / "model.safetensors").read_bytes() == WEIGHTS
    again = failure(lambda: models.remove("acme/tiny-GGUF"))
    assert (again.status, again.code) == (404, "model_not_found")


def test_a_pulled_model_and_a_configured_one_become_the_same_spec(make_hub: Callable[..., HubModels]) -> None:
    models = make_hub()
    local = pull_sync(models, "acme/tiny-GGUF")
    by_hand = OpenModelConfig(id="acme/tiny-GGUF", task="text-generation", engine="llama.cpp", path=str(local.path))
    assert model_config(local) == by_hand
    table = OpenModelConfig(id="acme/tiny-GGUF", max_instances=3, engine_args={"n_ctx": 512})
    spec = asyncio.run(models.configured(table))
    assert spec == by_hand.model_copy(update={"max_instances": 3, "engine_args": {"n_ctx": 512}})
    chat = asyncio.run(models.configured(OpenModelConfig(id="acme/tiny-GGUF", task="chat")))
    assert (chat.task, chat.engine) == ("chat", "llama.cpp")  # the table's own task wins
    mismatch = OpenModelConfig(id="acme/tiny-GGUF", engine="transformers")
    error = failure(lambda: asyncio.run(models.configured(mismatch)))
    assert (error.status, error.param) == (400, "engine") and 'set engine = "llama.cpp"' in error.message
    with_path = OpenModelConfig(id="mine", path="/models/x.gguf", engine="llama.cpp")
    assert asyncio.run(models.configured(with_path)) is with_path


def test_configured_table_pulls_the_revision_and_file_it_names(make_hub: Callable[..., HubModels]) -> None:
    models = make_hub()
    table = OpenModelConfig(id="acme/tiny-GGUF", file="tiny.Q8_0.gguf", revision="main")
    spec = asyncio.run(models.configured(table))
    assert spec.path is not None and Path(spec.path).name == "tiny.Q8_0.gguf"
    assert Path(spec.path).read_bytes() == LARGER
