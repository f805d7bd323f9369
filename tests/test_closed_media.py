"""Closed providers' media models on both surfaces: image generation, speech to text and text to speech through
OpenAI's APIs (and Groq's transcriptions) — a faithful fake behind a real unimodel server on loopback, driven by the
official OpenAI SDK and the Bytez SDK. v2 outputs are URLs of the server's own media store, or with `json: false`
the bytes themselves."""

from __future__ import annotations

import base64
import io
import logging
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from bytez import Bytez

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app

from .conftest import ANTHROPIC_KEY, Fake
from .fakes.openai_media_fake import create_media_app, wav
from .fakes.server import LiveServer
from .platform_helpers import OPEN_CHAT, PlatformFactory

KEYS = {"openai": "sk-media-openai-test-key-0001", "groq": "gsk_media_groq_test_key_0002"}
MAX_BODY = 1024 * 1024  # the gateway's server.max_body_bytes in these tests


class Upstreams:
    def __init__(self) -> None:
        self.apps = {"openai": create_media_app(KEYS["openai"]), "groq": create_media_app(KEYS["groq"], "groq")}
        self.servers = {name: LiveServer(app) for name, app in self.apps.items()}

    def last(self, provider: str = "openai") -> tuple[str, Any]:
        found: tuple[str, Any] = self.apps[provider].state.requests[-1]
        return found

    def fail_next(self, status: int, message: str, provider: str = "openai") -> None:
        self.apps[provider].state.faults.append((status, message))


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    for server in ups.servers.values():
        server.start()
    yield ups
    for server in ups.servers.values():
        server.stop()


@pytest.fixture
def gateway(upstreams: Upstreams, anthropic_fake: Fake, tmp_path: Path) -> Iterator[LiveServer]:
    base = {"max_retries": 0, "read_timeout_s": 10.0}
    settings = Settings(
        server={"max_body_bytes": MAX_BODY},
        providers={
            "openai": ProviderConfig(base_url=upstreams.servers["openai"].url + "/v1", api_key=KEYS["openai"], **base),
            "groq": ProviderConfig(base_url=upstreams.servers["groq"].url + "/openai/v1", api_key=KEYS["groq"], **base),
            "anthropic": ProviderConfig(base_url=anthropic_fake.url, api_key=ANTHROPIC_KEY, **base),
        },
        media={"store": {"dir": str(tmp_path / "media")}, "allow_hosts": ["127.0.0.1"]},
        runtime={"default_models": False},
    )
    upstreams.apps["openai"].state.faults.clear()
    with LiveServer(create_app(settings)) as live:
        yield live


def sdk(gateway: LiveServer, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0, default_headers=headers)


def bytez(gateway: LiveServer) -> Bytez:
    client = Bytez("any-gateway-key", dev=True)
    client._client.host = gateway.url + "/models/v2/"  # dev mode targets localhost:8080; the test server has its own
    return client


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def one_second_wav() -> bytes:
    return wav(b"\x00\x01" * 24_000)


# --- images ---------------------------------------------------------------------------------------------------


def test_the_openai_sdk_gets_image_urls_the_gateway_serves(gateway: LiveServer, upstreams: Upstreams) -> None:
    out = sdk(gateway).images.generate(
        model="openai/dall-e-3", prompt="a red fox", size="1792x1024", quality="hd", style="vivid"
    )
    assert upstreams.last() == ("/images/generations", {
        "model": "dall-e-3", "prompt": "a red fox", "size": "1792x1024", "quality": "hd", "style": "vivid",
        "response_format": "b64_json",
    })  # fmt: skip  # the images come through the gateway, never the provider's own URL
    image = out.data[0]
    assert image.revised_prompt == "A detailed picture: a red fox"
    assert image.url is not None and image.url.startswith(gateway.url + "/models/v2/media/")
    got = httpx.get(image.url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert png_size(got.content) == (28, 16)  # the fake draws 1/64 of the size asked


def test_b64_json_and_the_gpt_image_models_own_fields(gateway: LiveServer, upstreams: Upstreams) -> None:
    out = sdk(gateway).images.generate(
        model="openai/gpt-image-1", prompt="a blue cube", n=2, background="transparent", output_format="png",
        quality="low", size="1536x1024",
    )  # fmt: skip
    sent = upstreams.last()[1]
    assert "response_format" not in sent and sent["background"] == "transparent"  # gpt-image-1 refuses the field
    assert [png_size(base64.b64decode(d.b64_json or "")) for d in out.data] == [(24, 16), (24, 16)]
    assert (out.background, out.output_format, out.quality, out.size) == ("transparent", "png", "low", "1536x1024")
    assert out.usage is not None and out.usage.output_tokens == 544
    dall_e = sdk(gateway).images.generate(model="openai/dall-e-2", prompt="x", response_format="b64_json", n=2)
    assert all(png_size(base64.b64decode(d.b64_json or "")) == (16, 16) for d in dall_e.data)
    as_url = sdk(gateway).images.generate(model="openai/gpt-image-1", prompt="x", response_format="url")
    assert httpx.get(as_url.data[0].url or "").content[:4] == b"\x89PNG"  # a URL even where OpenAI has none


def test_what_openai_refuses_comes_back_as_its_400(gateway: LiveServer) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-3", prompt="two foxes", n=2)
    assert "n=1" in refused.value.message and refused.value.code == "upstream_invalid_request"
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/gpt-image-1", prompt="x", style="vivid")
    assert "style" in refused.value.message


def test_bad_image_requests_name_the_field_in_openais_error_shape(gateway: LiveServer) -> None:
    def post(body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(gateway.url + "/v1/images/generations", json=body, timeout=30)
        assert r.status_code == 400, r.text
        error: dict[str, Any] = r.json()["error"]
        return error

    assert post({"model": "openai/dall-e-3"})["param"] == "prompt"
    assert post({"model": "openai/dall-e-3", "prompt": "x", "response_format": "png"})["param"] == "response_format"
    assert post({"prompt": "x"})["param"] == "model"
    wrong = post({"model": "openai/gpt-4o", "prompt": "x"})
    assert wrong["param"] == "model" and "openai/dall-e-3" in wrong["message"] and "chat model" in wrong["message"]
    claude = post({"model": "anthropic/claude-sonnet-4-5", "prompt": "x"})
    assert claude["code"] == "unsupported_task" and "openai/gpt-image-1" in claude["message"]
    assert post({"model": "openai/dall-e-3", "prompt": "x", "partial_images": 2})["param"] == "partial_images"


def test_upstream_faults_map_to_statuses_and_no_key_shows(
    gateway: LiveServer, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"model": "openai/dall-e-3", "prompt": "x"}
    upstreams.fail_next(429, "Rate limit reached for images per minute.")
    r = httpx.post(gateway.url + "/v1/images/generations", json=body, timeout=30)
    assert r.status_code == 429 and r.headers["retry-after"] == "0"
    upstreams.fail_next(503, "The engine is currently overloaded.")
    r = httpx.post(gateway.url + "/v1/audio/speech", json={"model": "openai/tts-1", "input": "x", "voice": "alloy"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
    upstreams.fail_next(500, "The server had an error processing your request.")
    r = httpx.post(gateway.url + "/models/v2/openai/tts-1", json={"input": "x"}, timeout=30)
    assert r.status_code == 502 and "had an error" in r.json()["error"]
    wrong_key = "sk-someone-elses-provider-key-9"
    r = httpx.post(gateway.url + "/v1/images/generations", json=body, headers={"provider-key": wrong_key}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "provider_auth_failed"
    for secret in (wrong_key, *KEYS.values()):
        assert secret not in r.text and secret not in caplog.text


# --- speech to text --------------------------------------------------------------------------------------------


def test_the_openai_sdk_transcribes_an_upload_in_each_format(gateway: LiveServer, upstreams: Upstreams) -> None:
    client = sdk(gateway)
    audio = one_second_wav()
    verbose = client.audio.transcriptions.create(
        model="openai/whisper-1", file=("speech.wav", audio, "audio/wav"), response_format="verbose_json",
        timestamp_granularities=["word"], language="en", temperature=0.2,
    )  # fmt: skip
    assert verbose.text == "Transcript of 1.00 seconds of audio. Language: en."
    assert verbose.duration == pytest.approx(1.0) and verbose.words is not None and len(verbose.words) == 8
    sent = upstreams.last()[1]
    assert sent["file"] == {"filename": "speech.wav", "content_type": "audio/wav", "size": len(audio)}
    assert sent["timestamp_granularities[]"] == ["word"] and sent["model"] == "whisper-1"
    srt = client.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", audio), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\nTranscript of 1.00 seconds")
    tokens = client.audio.transcriptions.create(model="openai/gpt-4o-transcribe", file=("a.wav", audio))
    assert tokens.text.startswith("Transcript of 1.00") and tokens.usage is not None
    groq = client.audio.transcriptions.create(model="groq/whisper-large-v3", file=("a.wav", audio))
    assert groq.text == "Transcript of 1.00 seconds of audio."
    assert upstreams.last("groq")[1]["model"] == "whisper-large-v3"


def test_bad_uploads_are_refused_naming_the_field(gateway: LiveServer) -> None:
    url = gateway.url + "/v1/audio/transcriptions"
    audio = {"file": ("a.wav", one_second_wav(), "audio/wav")}

    def refused(status: int, **kwargs: Any) -> dict[str, Any]:
        r = httpx.post(url, timeout=30, **kwargs)
        assert r.status_code == status, r.text
        error: dict[str, Any] = r.json()["error"]
        return error

    assert refused(400, files={"model": (None, "openai/whisper-1")})["param"] == "file"  # multipart, no file
    assert refused(400, data={"model": "openai/whisper-1", "colour": "red"}, files=audio)["param"] == "colour"
    assert refused(400, data={"model": "openai/whisper-1", "response_format": "mp4"}, files=audio)["param"] == (
        "response_format"
    )
    assert refused(400, files=audio)["param"] == "model"
    assert refused(400, json={"model": "openai/whisper-1"})["param"] == "file"  # not multipart
    wrong = refused(400, data={"model": "openai/tts-1"}, files=audio)
    assert wrong["param"] == "model" and "openai/whisper-1" in wrong["message"]
    upstream = refused(400, data={"model": "openai/gpt-4o-transcribe", "response_format": "srt"}, files=audio)
    assert "not compatible" in upstream["message"]  # OpenAI's own refusal
    big = {"file": ("big.wav", b"\x00" * (MAX_BODY + 1), "audio/wav")}
    assert refused(413, data={"model": "openai/whisper-1"}, files=big)["code"] == "payload_too_large"


# --- text to speech --------------------------------------------------------------------------------------------


def test_the_openai_sdk_gets_speech_bytes_with_their_content_type(gateway: LiveServer, upstreams: Upstreams) -> None:
    client = sdk(gateway)
    spoken = client.audio.speech.create(model="openai/tts-1", voice="nova", input="hello there", response_format="wav")
    assert spoken.response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(spoken.content)) as w:
        assert (w.getframerate(), w.getnchannels()) == (24_000, 1)
        assert w.getnframes() == int(24_000 * 0.06 * len("hello there"))
    mp3 = client.audio.speech.create(
        model="openai/gpt-4o-mini-tts", voice="ballad", input="hi", instructions="Speak softly.", speed=1.5
    )
    assert mp3.response.headers["content-type"] == "audio/mpeg" and mp3.content[:2] == b"\xff\xfb"
    assert upstreams.last() == ("/audio/speech", {
        "model": "gpt-4o-mini-tts", "input": "hi", "voice": "ballad", "speed": 1.5, "instructions": "Speak softly.",
    })  # fmt: skip


def test_bad_speech_requests_are_refused(gateway: LiveServer) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="ballad", input="x")  # gpt-4o-mini-tts's voice
    assert "Invalid value: 'ballad'" in refused.value.message  # OpenAI's own words
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="x", instructions="Whisper.")
    assert "instructions" in refused.value.message

    def param(body: dict[str, Any]) -> Any:
        r = httpx.post(gateway.url + "/v1/audio/speech", json=body, timeout=30)
        assert r.status_code == 400, r.text
        return r.json()["error"]["param"]

    assert param({"model": "openai/tts-1", "voice": "alloy"}) == "input"
    assert param({"model": "openai/tts-1", "voice": "alloy", "input": "x", "response_format": "ogg"}) == (
        "response_format"
    )
    assert param({"model": "openai/tts-1", "voice": "alloy", "input": "x", "speed": 9}) == "speed"
    assert param({"model": "openai/dall-e-3", "voice": "alloy", "input": "x"}) == "model"
    assert param({"model": "mistral/mistral-large-latest", "voice": "alloy", "input": "x"}) == "model"


# --- the v2 runs -------------------------------------------------------------------------------------------------


def test_the_bytez_sdk_runs_media_models_and_reads_urls(gateway: LiveServer) -> None:
    client = bytez(gateway)
    image = client.model("openai/dall-e-3").run("a lighthouse", {"size": "1024x1792"})
    assert image.error is None and image.output.startswith(gateway.url + "/models/v2/media/")
    assert png_size(httpx.get(image.output).content) == (16, 28)
    assert image.provider["data"][0]["revised_prompt"] == "A detailed picture: a lighthouse"  # no image data in it
    speech = client.model("openai/tts-1").run("good morning", {"voice": "echo", "response_format": "wav"})
    got = httpx.get(speech.output)
    assert got.headers["content-type"] == "audio/wav" and got.content[:4] == b"RIFF"
    text = client.model("openai/whisper-1").run(base64.b64encode(one_second_wav()).decode())
    assert text.error is None and text.output == "Transcript of 1.00 seconds of audio."
    data_url = "data:audio/wav;base64," + base64.b64encode(one_second_wav()).decode()
    assert client.model("openai/gpt-4o-mini-transcribe").run(data_url).output.startswith("Transcript of 1.00")
    spoken = client.model("openai/tts-1").run("read me back", {"response_format": "wav"}).output
    heard = client.model("openai/whisper-1").run(spoken)  # an http(s) URL: fetched by the server, then uploaded
    assert heard.error is None and heard.output == "Transcript of 0.72 seconds of audio."
    tasks = client.list.tasks().output
    assert {"text-to-image", "text-to-speech", "automatic-speech-recognition"} <= set(tasks)
    listed = client.list.models({"task": "text-to-image"}).output
    assert {"openai/dall-e-3", "openai/gpt-image-1"} <= {m["modelId"] for m in listed}


def test_json_false_with_a_stream_answers_the_raw_bytes(gateway: LiveServer) -> None:
    run = gateway.url + "/models/v2/openai/"
    r = httpx.post(run + "gpt-image-1", json={"input": "a cat", "stream": True, "json": False}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and png_size(r.content) == (16, 16)
    r = httpx.post(run + "tts-1", json={"text": "hi", "json": False, "params": {"response_format": "flac"}})
    assert r.headers["content-type"] == "audio/flac" and r.content[:4] == b"fLaC"
    # the Bytez SDK sends json: false with a stream for a media model (its list says text-to-speech); it reads lines
    lines = list(bytez(gateway).model("openai/tts-1").run("hi", {"response_format": "wav"}, stream=True))
    assert lines and lines[0].startswith("RIFF")


def test_bad_v2_media_runs_name_the_field(gateway: LiveServer) -> None:
    def refused(model: str, body: dict[str, Any]) -> str:
        r = httpx.post(gateway.url + "/models/v2/" + model, json=body, timeout=30)
        assert r.status_code == 400, r.text
        error: str = r.json()["error"]
        return error

    assert refused("openai/dall-e-3", {"params": {"size": "1024x1024"}}).startswith("input:")
    assert refused("openai/dall-e-3", {"input": "x", "params": {"n": 2}}).startswith("params.n:")
    assert refused("openai/tts-1", {"input": "x", "params": {"response_format": "ogg"}}).startswith(
        "params.response_format:"
    )
    assert refused("openai/whisper-1", {"input": "bm90IGF1ZGlv"}).startswith("input: not audio")
    assert refused("openai/whisper-1", {"input": "%%%"}).startswith("input: neither")
    assert "private" in refused("openai/whisper-1", {"url": "http://10.1.2.3/a.wav"})  # the fetch guard's refusal
    assert refused("openai/whisper-1", {"input": "eA==", "stream": True}).startswith("stream:")


def test_media_is_scoped_to_the_key_that_made_it_and_counted(
    platform_factory: PlatformFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    base = {"max_retries": 0, "read_timeout_s": 10.0, "api_key": KEYS["openai"]}
    p = platform_factory(providers={"openai": {**base, "base_url": upstreams.servers["openai"].url + "/v1"}})
    _, mine = p.create_key("mine")
    _, theirs = p.create_key("theirs")
    r = httpx.post(
        p.url + "/models/v2/openai/tts-1", json={"input": "only mine"}, headers={"authorization": f"Key {mine}"}
    )
    assert r.status_code == 200, r.text
    url = r.json()["output"]
    assert httpx.get(url, headers={"authorization": f"Key {mine}"}).content[:2] == b"\xff\xfb"
    other = httpx.get(url, headers={"authorization": f"Key {theirs}"})
    unknown = httpx.get(p.url + "/models/v2/media/" + "A" * 32, headers={"authorization": f"Key {mine}"})
    assert other.status_code == unknown.status_code == 404 and other.json()["error"] == unknown.json()["error"].replace(
        "A" * 32, url.rsplit("/", 1)[1]
    )
    assert httpx.get(url).status_code == 401
    open_model = httpx.post(
        p.url + "/v1/audio/speech", json={"model": OPEN_CHAT, "input": "x", "voice": "alloy"},
        headers={"authorization": f"Bearer {mine}"},
    )  # fmt: skip
    assert open_model.status_code == 400 and open_model.json()["error"]["param"] == "model"
    assert f"POST /models/v2/{OPEN_CHAT}" in open_model.json()["error"]["message"]
    assert (tmp_path / "data" / "media").is_dir()  # kept under [store] data_dir
    image = httpx.post(
        p.url + "/v1/images/generations", json={"model": "openai/dall-e-2", "prompt": "x", "n": 3},
        headers={"authorization": f"Bearer {mine}"}, timeout=30,
    )  # fmt: skip
    assert image.status_code == 200, image.text

    def counted() -> list[tuple[str, Any, Any]]:
        records = p.usage(mine)["records"]
        return sorted((r["model"], r["units"], r["unit"]) for r in records)

    deadline = time.monotonic() + 10
    while len(counted()) < 3 and time.monotonic() < deadline:  # the ledger writes in batches, off the request
        time.sleep(0.05)
    assert counted() == [
        ("acme/slow-chat", None, None),  # the refused call is recorded (a 400), with no units
        ("openai/dall-e-2", 3, "images"),
        ("openai/tts-1", len("only mine"), "characters"),
    ]
