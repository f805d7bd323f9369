"""What a pull chooses is what the engine needs: models pulled from the fake Hub (real files, with the decoys a
real repo has beside them) load in the real worker process and answer.

SmolLM2-135M-Instruct (GGUF) on llama.cpp, a tiny random-weight GPT-2 with a chat template on transformers,
and all-MiniLM-L6-v2 (sentence-transformers) on transformers — each started as the backend starts it, with
`--path` the pulled file or snapshot folder.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from unimodel.config import HubConfig
from unimodel.runtime.bundled import all_minilm_dir, smollm2_gguf
from unimodel.runtime.hub import HubModels, LocalModel, model_config

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer
from .worker_helpers import WorkerProcess
from .worker_tiny_models import build_all

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("transformers") is None,
    reason="the open-model engines are not installed (make test installs them)",
)

DECOYS = {"onnx/model.onnx": b"not onnx", "pytorch_model.bin": b"not a pickle", "train_script.py": "import os\n"}


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalModel]]:
    gguf, minilm = smollm2_gguf(), all_minilm_dir()
    assert gguf is not None and minilm is not None, "the bundled models are not installed (make install)"
    tiny = build_all(tmp_path_factory.mktemp("tiny"))["text-generation"]
    hub = FakeHub()
    hub.add_repo(
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        {"SmolLM2-135M-Instruct.Q4_1.gguf": gguf, "mmproj-f16.gguf": b"GGUF projector", "README.md": "# SmolLM2"},
    )
    hub.add_folder("acme/tiny-chat", tiny, extra={**DECOYS, "README.md": "# tiny"})
    hub.add_folder(
        "sentence-transformers/all-MiniLM-L6-v2",
        minilm,
        extra=DECOYS,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
    )
    cache = tmp_path_factory.mktemp("cache")
    with LiveServer(hub.app) as server:
        models = HubModels(HubConfig(endpoint=server.url, cache_dir=str(cache)), environ={})
        yield {
            repo_id: models.pulls.start(models.client.plan(repo_id)).result(timeout=300)
            for repo_id in ("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "acme/tiny-chat", MINILM)
        }


MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def worker(local: LocalModel, *engine_args: str) -> WorkerProcess:
    spec = model_config(local)
    assert spec.path is not None
    args = ["--engine", spec.engine, "--task", spec.task, "--model-id", spec.id, "--path", spec.path]
    for arg in engine_args:
        args += ["--engine-arg", arg]
    return WorkerProcess(*args)


def test_pulled_gguf_chats_on_llama_cpp(pulled: dict[str, LocalModel]) -> None:
    local = pulled["HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"]
    assert (local.task, local.engine, local.files) == ("chat", "llama.cpp", ("SmolLM2-135M-Instruct.Q4_1.gguf",))
    with worker(local, "n_ctx=512") as w:
        w.wait_ready(120)
        answer = w.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].strip()


def test_pulled_transformers_chat_model_answers(pulled: dict[str, LocalModel]) -> None:
    local = pulled["acme/tiny-chat"]
    assert (local.task, local.engine) == ("chat", "transformers")
    assert local.files == (
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    )
    assert sorted(p.name for p in Path(local.path).iterdir()) == list(local.files)
    with worker(local) as w:
        w.wait_ready(180)
        answer = w.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "the cat"}], "max_tokens": 4})
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] >= 1


def test_pulled_sentence_transformers_model_embeds(pulled: dict[str, LocalModel]) -> None:
    local = pulled[MINILM]
    assert (local.task, local.engine, local.library) == ("feature-extraction", "transformers", "sentence-transformers")
    assert "1_Pooling/config.json" in local.files and not set(DECOYS) & set(local.files)
    with worker(local) as w:
        w.wait_ready(180)
        answer = w.post("/v1/embeddings", {"input": ["A man plays the guitar.", "Someone plays a guitar."]})
    assert answer.status_code == 200, answer.text
    vectors = [item["embedding"] for item in answer.json()["data"]]
    assert all(len(v) == 384 and math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert math.fsum(a * b for a, b in zip(*vectors, strict=True)) > 0.7  # similar sentences, close vectors
