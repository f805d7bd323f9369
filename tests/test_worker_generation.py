"""Generated media from open models in real worker processes: a tiny Stable Diffusion pipeline on the diffusers
engine (a PNG of the asked size) and a tiny VITS on the transformers engine (a WAV at the model's rate), built by
tests/worker_generation_models.py — and the bad requests, each a 400 naming the field, after which the worker
still answers."""

from __future__ import annotations

import importlib.util
import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .worker_generation_models import generation_models
from .worker_helpers import WorkerProcess

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "diffusers", "PIL")),
    reason="the open-model engines are not installed (make test installs them)",
)
__all__ = ["generation_models"]

MAX_PIXELS = 64 * 64


@pytest.fixture(scope="module")
def workers(generation_models: dict[str, Path]) -> Iterator[dict[str, WorkerProcess]]:
    started = {
        "text-to-image": WorkerProcess(
            "--engine", "diffusers", "--task", "text-to-image", "--model-id", "tiny/sd",
            "--path", str(generation_models["text-to-image"]), "--engine-arg", f"max_pixels={MAX_PIXELS}",
        ),
        "text-to-speech": WorkerProcess(
            "--engine", "transformers", "--task", "text-to-speech", "--model-id", "tiny/vits",
            "--path", str(generation_models["text-to-speech"]),
        ),
        "text-to-audio": WorkerProcess(
            "--engine", "transformers", "--task", "text-to-audio", "--model-id", "tiny/musicgen",
            "--path", str(generation_models["text-to-audio"]),
        ),
    }  # fmt: skip
    try:
        for worker in started.values():
            worker.start()
        for worker in started.values():
            worker.wait_ready(240)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def media(worker: WorkerProcess, body: dict[str, Any], content_type: str) -> bytes:
    response = worker.post("/v1/run", body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    return response.content


def refused(worker: WorkerProcess, body: dict[str, Any]) -> dict[str, Any]:
    response = worker.post("/v1/run", body)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def picture(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def test_text_to_image_answers_a_png_of_the_asked_size(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["text-to-image"]
    image = picture(media(worker, {"input": "a red cat", "params": {"num_inference_steps": 2}}, "image/png"))
    assert image.size == (64, 64)  # the pipeline's own default: the UNet's sample size x the VAE's factor
    body = {
        "text": "a red cat",
        "params": {
            "num_inference_steps": 2,
            "guidance_scale": 3.0,
            "width": 32,
            "height": 48,
            "seed": 7,
            "negative_prompt": "blurry",
        },
    }
    first = media(worker, body, "image/png")
    assert picture(first).size == (32, 48)
    assert media(worker, body, "image/png") == first, "the same seed makes the same image"
    other = media(worker, {**body, "params": {**body["params"], "seed": 8}}, "image/png")
    assert other != first


def test_text_to_image_bad_requests_are_400s_naming_the_field(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["text-to-image"]
    steps = {"num_inference_steps": 1}
    assert refused(worker, {"input": "  ", "params": steps})["param"] == "text"
    assert refused(worker, {"params": steps})["param"] == "text"
    error = refused(worker, {"input": "a cat", "params": {**steps, "width": 36}})
    assert (error["code"], error["param"]) == ("invalid_parameter", "width")
    assert "multiple of 8" in error["message"]
    error = refused(worker, {"input": "a cat", "params": {**steps, "width": 64, "height": 128}})
    assert error["param"] == "width" and f"at most {MAX_PIXELS}" in error["message"]
    assert "max_pixels" in error["message"]
    error = refused(worker, {"input": "a cat", "params": {**steps, "strength": 0.5}})
    assert (error["code"], error["param"]) == ("unsupported_parameter", "strength")
    error = refused(worker, {"input": "a cat", "params": {"num_inference_steps": 1000}})
    assert error["param"] == "num_inference_steps" and "<= 100" in error["message"]
    assert refused(worker, {"input": "a cat", "params": {"guidance_scale": "high"}})["param"] == "guidance_scale"
    picture(media(worker, {"input": "still here", "params": steps}, "image/png"))  # the worker survives


def test_stream_is_refused_for_generated_media(workers: dict[str, WorkerProcess]) -> None:
    assert refused(workers["text-to-image"], {"input": "a cat", "stream": True})["param"] == "stream"


def _wav(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as file:
        assert (file.getnchannels(), file.getsampwidth()) == (1, 2)
        return file.getframerate(), file.getnframes()


def test_speech_answers_a_wav_at_the_models_rate(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["text-to-speech"]
    first = media(worker, {"input": "hello world", "params": {"seed": 3}}, "audio/wav")
    rate, frames = _wav(first)
    assert rate == 16000 and frames > 0
    assert media(worker, {"text": "hello world", "params": {"seed": 3}}, "audio/wav") == first
    longer = _wav(media(worker, {"input": "hello world, hello again and again"}, "audio/wav"))[1]
    assert longer > frames, "more text, more speech"


def test_text_to_audio_generates_token_by_token_with_its_params(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["text-to-audio"]
    body = {"input": "calm music", "params": {"seed": 4, "max_new_tokens": 6}}
    first = media(worker, body, "audio/wav")
    rate, frames = _wav(first)
    assert rate == 8000 and frames > 0
    assert media(worker, body, "audio/wav") == first, "the same seed, the same sampled audio"
    longer = media(worker, {"input": "calm music", "params": {"max_new_tokens": 12, "do_sample": False}}, "audio/wav")
    assert _wav(longer)[1] > frames, "more tokens, more audio"
    error = refused(worker, {"input": "calm music", "params": {"num_beams": 2}})
    assert (error["code"], error["param"]) == ("unsupported_parameter", "num_beams")
    assert refused(worker, {"input": "calm music", "params": {"max_new_tokens": 0}})["param"] == "max_new_tokens"


def test_speech_bad_requests_are_400s(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["text-to-speech"]
    assert refused(worker, {"input": ""})["param"] == "text"
    error = refused(worker, {"input": "hi", "params": {"voice": "alloy"}})
    assert (error["code"], error["param"]) == ("unsupported_parameter", "voice")
    error = refused(worker, {"input": "hi", "params": {"max_new_tokens": 10}})
    assert error["param"] == "max_new_tokens" and "does not" in error["message"]
    _wav(media(worker, {"input": "still here"}, "audio/wav"))


def test_an_unknown_diffusers_engine_arg_stops_the_load(generation_models: dict[str, Path]) -> None:
    worker = WorkerProcess(
        "--engine", "diffusers", "--task", "text-to-image", "--model-id", "tiny/sd",
        "--path", str(generation_models["text-to-image"]), "--engine-arg", "n_ctx=4",
    ).start()  # fmt: skip
    try:
        assert worker.wait_exit(120) != 0
        assert "unknown diffusers engine_args: n_ctx" in worker.stderr
    finally:
        worker.stop()


def test_a_pipeline_that_takes_no_prompt_stops_the_load(tmp_path: Path) -> None:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "ddpm")
    worker = WorkerProcess(
        "--engine", "diffusers", "--task", "text-to-image", "--model-id", "tiny/ddpm", "--path", str(tmp_path / "ddpm")
    ).start()  # fmt: skip
    try:
        assert worker.wait_exit(120) != 0
        assert "is a DDPMPipeline, which takes no prompt: not a text-to-image pipeline" in worker.stderr
    finally:
        worker.stop()


def test_the_diffusers_engine_serves_text_to_image_only(generation_models: dict[str, Path]) -> None:
    worker = WorkerProcess(
        "--engine", "diffusers", "--task", "chat", "--model-id", "tiny/sd",
        "--path", str(generation_models["text-to-image"]),
    ).start()  # fmt: skip
    try:
        assert worker.wait_exit(60) != 0
        assert "text-to-image" in worker.stderr
    finally:
        worker.stop()
    assert httpx.__name__  # (httpx is the helpers' client)
