"""Generated media from open models behind a real gateway: a tiny Stable Diffusion pipeline (diffusers engine) and
a tiny VITS (transformers) in real worker processes. A v2 run answers a URL of the media store (fetched back
here), or the bytes with `json: false` + `stream: true` as the Bytez SDK asks; the OpenAI SDK's images.generate
(url and b64_json) and audio.speech.create reach the same models; bad requests are 400s naming the field, after
which the instance still answers."""

from __future__ import annotations

import base64
import importlib.util
import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from bytez import Bytez

from unimodel.config import Settings, StoreConfig
from unimodel.gateway import create_app
from unimodel.store import Store

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer
from .served import serve
from .worker_generation_models import generation_models

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "diffusers", "PIL")),
    reason="the open-model engines are not installed (make test installs them)",
)
__all__ = ["generation_models"]

IMAGER = "tiny/stable-diffusion"
SPEAKER = "tiny/vits"
MAX_PIXELS = 64 * 64
FAST = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def gateway(generation_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        models=[
            {
                "id": IMAGER,
                "task": "text-to-image",
                "engine": "diffusers",
                "path": str(generation_models["text-to-image"]),
                "engine_args": {"max_pixels": MAX_PIXELS},
            },
            {
                "id": SPEAKER,
                "task": "text-to-speech",
                "engine": "transformers",
                "path": str(generation_models["text-to-speech"]),
            },
        ],
        store={"data_dir": str(tmp_path_factory.mktemp("store"))},
        runtime={"log_dir": str(tmp_path_factory.mktemp("instances")), "default_models": False},
    )
    live = LiveServer(create_app(settings)).start()
    yield live
    live.stop(timeout_s=30)


def bytez(gateway: LiveServer) -> Bytez:
    sdk = Bytez("any-gateway-key", dev=True)
    sdk._client.host = gateway.url + "/models/v2/"
    return sdk


def client(gateway: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0, timeout=180)


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def wav_rate(data: bytes) -> int:
    with wave.open(io.BytesIO(data)) as file:
        assert file.getnframes() > 0
        return file.getframerate()


def refused(gateway: LiveServer, model: str, body: dict[str, Any]) -> str:
    r = httpx.post(f"{gateway.url}/models/v2/{model}", json=body, timeout=180)
    assert r.status_code == 400, r.text
    error: str = r.json()["error"]
    return error


def test_the_bytez_sdk_makes_an_image_and_reads_its_url(gateway: LiveServer) -> None:
    sdk = bytez(gateway)
    result = sdk.model(IMAGER).run("a lighthouse at dusk", {**FAST, "width": 32, "height": 48, "seed": 1})
    assert result.error is None, result.error
    assert result.output.startswith(gateway.url + "/models/v2/media/")
    fetched = httpx.get(result.output)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert png_size(fetched.content) == (32, 48)
    listed = sdk.list.models({"task": "text-to-image"}).output
    assert IMAGER in {m["modelId"] for m in listed}
    assert {"text-to-image", "text-to-speech"} <= set(sdk.list.tasks().output)


def test_json_false_with_a_stream_answers_the_raw_bytes(gateway: LiveServer) -> None:
    body = {"input": "a cat", "params": {**FAST, "seed": 5}, "stream": True, "json": False}
    r = httpx.post(f"{gateway.url}/models/v2/{IMAGER}", json=body, timeout=180)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    assert png_size(r.content) == (64, 64)
    assert r.headers["inference-meter"] == "cpu" and float(r.headers["inference-time"]) > 0
    again = httpx.post(f"{gateway.url}/models/v2/{IMAGER}", json={**body, "stream": None}, timeout=180)
    assert again.content == r.content, "json: false alone answers the bytes too; the same seed, the same image"
    # the Bytez SDK sends json: false with a stream for a model its list says generates media; it reads lines
    lines = list(bytez(gateway).model(SPEAKER).run("hello there", stream=True))
    assert lines and lines[0].startswith("RIFF")


def test_speech_from_an_open_model_as_a_url_and_through_the_openai_sdk(gateway: LiveServer) -> None:
    result = bytez(gateway).model(SPEAKER).run("good morning", {"seed": 2})
    assert result.error is None, result.error
    fetched = httpx.get(result.output)
    assert fetched.headers["content-type"] == "audio/wav" and wav_rate(fetched.content) == 16000
    spoken = client(gateway).audio.speech.create(
        model=SPEAKER, voice="alloy", input="good morning", response_format="wav"
    )
    assert spoken.response.headers["content-type"] == "audio/wav" and wav_rate(spoken.content) == 16000
    with pytest.raises(openai.BadRequestError) as bad:
        client(gateway).audio.speech.create(model=SPEAKER, voice="alloy", input="hi", response_format="mp3")
    assert bad.value.body["param"] == "response_format" and "wav" in bad.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client(gateway).audio.speech.create(model=SPEAKER, voice="alloy", input="hi", speed=2.0)
    assert bad.value.body["param"] == "speed"  # type: ignore[index]


def test_the_openai_sdk_generates_images_with_an_open_model(gateway: LiveServer) -> None:
    sdk = client(gateway)
    as_url = sdk.images.generate(model=IMAGER, prompt="a red square", size="32x32", user="u-1", extra_body=FAST)
    assert as_url.data is not None and len(as_url.data) == 1 and as_url.data[0].url is not None
    assert png_size(httpx.get(as_url.data[0].url).content) == (32, 32)
    inline = sdk.images.generate(
        model=IMAGER,
        prompt="a red square",
        n=2,
        response_format="b64_json",
        extra_body={**FAST, "seed": 11, "negative_prompt": "blue"},
    )
    assert inline.data is not None and len(inline.data) == 2
    images = [base64.b64decode(item.b64_json or "") for item in inline.data]
    assert all(png_size(image) == (64, 64) for image in images)
    assert images[0] != images[1], "n images count the seed up: each one differs"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.images.generate(model=IMAGER, prompt="x", quality="hd", extra_body=FAST)
    assert bad.value.body["param"] == "quality"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.images.generate(model=IMAGER, prompt="x", size="big", extra_body=FAST)  # type: ignore[arg-type]
    assert bad.value.body["param"] == "size"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client(gateway).audio.speech.create(model=IMAGER, voice="alloy", input="hi")
    assert "text-to-speech" in bad.value.body["message"]  # type: ignore[index]


def test_bad_runs_are_400s_naming_the_field_and_the_instance_survives(gateway: LiveServer) -> None:
    assert refused(gateway, IMAGER, {"input": "   ", "params": FAST}).startswith("input:")
    assert refused(gateway, IMAGER, {"params": FAST}).startswith("input:")
    width = refused(gateway, IMAGER, {"input": "a cat", "params": {**FAST, "width": 36}})
    assert "'width'" in width and "multiple of 8" in width
    big = refused(gateway, IMAGER, {"input": "a cat", "params": {**FAST, "width": 128, "height": 128}})
    assert f"at most {MAX_PIXELS}" in big and "max_pixels" in big
    unknown = refused(gateway, IMAGER, {"input": "a cat", "params": {**FAST, "strength": 0.3}})
    assert "'strength'" in unknown and "not supported" in unknown
    assert refused(gateway, SPEAKER, {"input": ""}).startswith("input:")
    assert "'temperature'" in refused(gateway, SPEAKER, {"input": "hi", "params": {"temperature": 0.5}})
    r = httpx.post(f"{gateway.url}/models/v2/{IMAGER}", json={"input": "still here", "params": FAST}, timeout=180)
    assert r.status_code == 200 and r.json()["output"].startswith(gateway.url + "/models/v2/media/")
    r = httpx.post(f"{gateway.url}/models/v2/{SPEAKER}", json={"input": "still here"}, timeout=180)
    assert r.status_code == 200 and r.json()["error"] is None


def test_generators_pulled_by_name_take_task_and_engine_from_the_hub(
    generation_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diffusers repo (model_index.json) runs on the diffusers engine and a VITS repo on transformers, each for
    its pipeline_tag, pulled from a (fake) Hub on first use."""
    monkeypatch.delenv("UNIMODEL_HUB__OFFLINE", raising=False)
    fake = FakeHub()
    fake.add_folder(
        "acme/tiny-sd", generation_models["text-to-image"], library_name="diffusers", pipeline_tag="text-to-image"
    )
    fake.add_folder(
        "acme/tiny-vits",
        generation_models["text-to-speech"],
        library_name="transformers",
        pipeline_tag="text-to-speech",
    )
    with LiveServer(fake.app) as hub:
        settings = Settings(
            hub={"endpoint": hub.url, "cache_dir": str(tmp_path / "cache"), "offline": False},
            runtime={"default_models": False, "log_dir": str(tmp_path / "logs")},
            store={"data_dir": str(tmp_path / "data")},
        )
        live = LiveServer(create_app(settings)).start()
        try:
            image = bytez(live).model("acme/tiny-sd").run("a cat", {**FAST, "width": 32, "height": 32})
            assert image.error is None, image.error
            assert png_size(httpx.get(image.output).content) == (32, 32)
            speech = client(live).audio.speech.create(model="acme/tiny-vits", voice="alloy", input="hello")
            assert wav_rate(speech.content) == 16000
            listed = {m["modelId"]: m["task"] for m in bytez(live).list.models().output}
            assert listed["acme/tiny-sd"] == "text-to-image" and listed["acme/tiny-vits"] == "text-to-speech"
        finally:
            live.stop(timeout_s=30)


def test_generated_media_belongs_to_the_key_that_made_it(generation_models: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(
        auth={"mode": "keys", "cache_ttl_s": 0.2},
        models=[
            {
                "id": IMAGER,
                "task": "text-to-image",
                "engine": "diffusers",
                "path": str(generation_models["text-to-image"]),
            }
        ],
        runtime={"default_models": False, "log_dir": str(tmp_path / "logs")},
    )
    settings.store = StoreConfig(data_dir=str(tmp_path / "data"))  # this test's own store
    store = Store.open(settings.store)
    mine, theirs = (store.create_key(name).secret for name in ("mine", "theirs"))
    live = LiveServer(create_app(settings, store=store)).start()
    try:
        as_mine = {"authorization": f"Key {mine}"}
        r = httpx.post(
            f"{live.url}/models/v2/{IMAGER}", json={"input": "mine", "params": FAST}, headers=as_mine, timeout=180
        )
        assert r.status_code == 200, r.text
        url = r.json()["output"]
        assert png_size(httpx.get(url, headers=as_mine).content) == (64, 64)
        assert httpx.get(url, headers={"authorization": f"Key {theirs}"}).status_code == 404
        assert httpx.get(url).status_code == 401
        made = openai.OpenAI(base_url=live.url + "/v1", api_key=mine, max_retries=0, timeout=180).images.generate(
            model=IMAGER, prompt="mine too", extra_body=FAST
        )
        assert made.data is not None and made.data[0].url is not None
        assert httpx.get(made.data[0].url, headers={"authorization": f"Key {theirs}"}).status_code == 404
        assert httpx.get(made.data[0].url, headers={"authorization": f"Bearer {mine}"}).status_code == 200
    finally:
        live.stop(timeout_s=30)


def test_under_serve_workers_the_media_url_names_the_address_the_caller_used(
    generation_models: dict[str, Path], tmp_path: Path, clean_redis_url: str
) -> None:
    # the runtime process makes the URL; it must name the gateway's address, not the runtime's internal one
    model = (
        f'[[models]]\nid = "{IMAGER}"\ntask = "text-to-image"\nengine = "diffusers"\n'
        f'path = "{generation_models["text-to-image"]}"\n'
    )
    config = f'[limits]\nredis_url = "{clean_redis_url}"\n{model}'
    with serve(tmp_path, config, server="workers = 2", runtime=f'log_dir = "{tmp_path / "logs"}"') as served:
        r = httpx.post(f"{served.url}/models/v2/{IMAGER}", json={"input": "a dot", "params": FAST}, timeout=180)
        assert r.status_code == 200, r.text
        url = r.json()["output"]
        assert url.startswith(served.url + "/models/v2/media/"), url
        assert png_size(httpx.get(url).content) == (64, 64)
        made = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=180)
        image = made.images.generate(model=IMAGER, prompt="another dot", extra_body=FAST)
        assert image.data is not None and image.data[0].url is not None
        assert image.data[0].url.startswith(served.url + "/models/v2/media/")
        assert png_size(httpx.get(image.data[0].url).content) == (64, 64)
