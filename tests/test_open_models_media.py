"""Vision and audio open models behind a real gateway: inputs by base64, data URI and URL (fetched by the gateway
through its media guard, never by the instance), the Bytez SDK end to end for one vision and one audio task,
and the bad inputs of issue 14 — each a clear 400 (or 413) after which the instance still answers."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from bytez import Bytez

from unimodel.config import Settings
from unimodel.gateway import create_app

from .fakes.server import LiveServer
from .worker_media_models import LABELS, b64, bomb_png, data_uri, media_models, png, sine

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "PIL", "soundfile")),
    reason="the open-model engines are not installed (make test installs them)",
)
__all__ = ["media_models"]

VISION = "tiny/vit-classifier"
SPEECH = "tiny/wav2vec2-ctc"
VLM = "tiny/llava"
TEXT_CHAT = "tiny/gpt2-chat"
MAX_BODY = 1024 * 1024
FILES = {
    "/cat.png": (png(64, 48), "image/png"),
    "/cat.jpg": (png(64, 48, "JPEG"), "image/jpeg"),
    "/hello.flac": (sine("FLAC", rate=44100), "audio/flac"),
    "/hello.mp3": (sine("MP3", rate=24000), "audio/mpeg"),
    "/empty.png": (b"", "image/png"),
}


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved.png":
            self.send_response(302)
            self.send_header("location", "/cat.png")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body, mime = FILES.get(self.path, (None, ""))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-type", mime)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gateway(media_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from .worker_tiny_models import build_all

    text_chat = build_all(tmp_path_factory.mktemp("text-models"))["text-generation"]
    settings = Settings(
        server={"max_body_bytes": MAX_BODY},
        models=[
            {
                "id": VISION,
                "task": "image-classification",
                "engine": "transformers",
                "path": str(media_models["image-classification"]),
            },
            {
                "id": SPEECH,
                "task": "automatic-speech-recognition",
                "engine": "transformers",
                "path": str(media_models["automatic-speech-recognition"]),
            },
            {
                "id": VLM,
                "task": "image-text-to-text",
                "engine": "transformers",
                "path": str(media_models["image-text-to-text"]),
            },
            {"id": TEXT_CHAT, "task": "chat", "engine": "transformers", "path": str(text_chat)},
        ],
        media={"allow_hosts": ["127.0.0.1"]},  # the test's file server; every other private address stays refused
        runtime={"log_dir": str(tmp_path_factory.mktemp("instances")), "default_models": False},
    )
    live = LiveServer(create_app(settings)).start()
    yield live
    live.stop(timeout_s=30)


def run(gateway: LiveServer, model: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = httpx.post(f"{gateway.url}/models/v2/{model}", json=body, timeout=180)
    assert response.status_code == status, response.text
    envelope: dict[str, Any] = response.json()
    return envelope


def bytez(gateway: LiveServer) -> Bytez:
    sdk = Bytez("any-gateway-key", dev=True)
    sdk._client.host = gateway.url + "/models/v2/"
    return sdk


def test_list_tasks_names_the_served_vision_and_audio_tasks(gateway: LiveServer) -> None:
    tasks = httpx.get(gateway.url + "/models/v2/list/tasks").json()["output"]
    assert {"image-classification", "automatic-speech-recognition"} <= set(tasks)
    assert "object-detection" not in tasks  # no model serves it here


def test_image_classification_from_base64_through_the_gateway(gateway: LiveServer) -> None:
    envelope = run(gateway, VISION, {"base64": b64(png())})
    assert envelope["error"] is None
    assert sorted(item["label"] for item in envelope["output"]) == sorted(LABELS.values())


def test_image_url_is_fetched_by_the_gateway_through_its_guard(gateway: LiveServer, files: str) -> None:
    for path in ("/cat.png", "/cat.jpg", "/moved.png"):
        output = run(gateway, VISION, {"input": files + path})["output"]
        assert output[0]["label"] in LABELS.values()
    assert run(gateway, VISION, {"url": files + "/cat.png", "params": {"top_k": 1}})["output"][0]["score"] > 0


def test_audio_url_is_fetched_by_the_gateway_and_decoded(gateway: LiveServer, files: str) -> None:
    for path in ("/hello.flac", "/hello.mp3"):
        assert isinstance(run(gateway, SPEECH, {"url": files + path})["output"], str)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://10.1.2.3/cat.png", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[::1]:9/cat.png", "a loopback address"),
    ],
)
def test_a_url_to_a_private_address_is_a_400_naming_the_guard(gateway: LiveServer, url: str, problem: str) -> None:
    envelope = run(gateway, VISION, {"url": url}, 400)
    assert problem in envelope["error"] and "[media] allow_hosts" in envelope["error"]
    assert envelope["code"] == "image_fetch_refused"
    envelope = run(gateway, SPEECH, {"input": {"url": url}}, 400)
    assert envelope["error"].startswith("input.url: the audio URL points at")


def test_bad_media_through_the_gateway_is_a_400_and_the_instance_survives(gateway: LiveServer, files: str) -> None:
    cases = [
        (VISION, {"base64": b64(b"%PDF-1.4 not an image")}, "not an image"),
        (VISION, {"base64": b64(png(300, 300)[:200])}, "truncated"),
        (VISION, {"input": "data:image/png;base64,"}, "0 bytes"),
        (VISION, {"base64": b64(bomb_png())}, "decompression bomb"),
        (SPEECH, {"base64": b64(sine("OGG")[:40])}, "truncated"),
        (SPEECH, {"input": data_uri(b"", "audio/wav")}, "0 bytes"),
    ]
    for model, body, words in cases:
        envelope = run(gateway, model, body, 400)
        assert words in envelope["error"], envelope
        assert envelope["code"] == "invalid_media"
    empty = run(gateway, VISION, {"url": files + "/empty.png"}, 400)
    assert "empty body" in empty["error"]
    missing = run(gateway, VISION, {"url": files + "/nothing.png"}, 400)
    assert "HTTP 404" in missing["error"]
    assert run(gateway, VISION, {"base64": b64(png())})["output"][0]["label"] in LABELS.values()
    assert isinstance(run(gateway, SPEECH, {"base64": b64(sine("WAV"))})["output"], str)


def test_an_over_size_upload_is_refused_before_it_reaches_the_model(gateway: LiveServer) -> None:
    envelope = run(gateway, VISION, {"base64": "A" * (MAX_BODY + 10)}, 413)
    assert "server.max_body_bytes" in envelope["error"]


def test_bytez_sdk_classifies_an_image_by_url_and_transcribes_audio(gateway: LiveServer, files: str) -> None:
    sdk = bytez(gateway)
    result = sdk.model(VISION).run(files + "/cat.png")
    assert result.error is None
    assert {item["label"] for item in result.output} == set(LABELS.values())
    result = sdk.model(SPEECH).run({"base64": b64(sine("WAV", rate=16000))})
    assert result.error is None and isinstance(result.output, str)
    result = sdk.model(VISION).run({"url": "http://192.168.0.10/cat.png"})
    assert result.output is None and "a private address" in str(result.error)


def _image_message(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


def test_vision_chat_on_v2_takes_an_image_url_the_gateway_fetches(gateway: LiveServer, files: str) -> None:
    messages = [
        {"role": "user", "content": [{"type": "image", "url": files + "/cat.png"}, {"type": "text", "text": "hi"}]}
    ]
    output = run(gateway, VLM, {"messages": messages, "params": {"max_new_tokens": 3}})["output"]
    assert output["role"] == "assistant" and isinstance(output["content"], str)
    refused = [{"role": "user", "content": [{"type": "image", "url": "http://10.0.0.7/cat.png"}]}]
    envelope = run(gateway, VLM, {"messages": refused}, 400)
    assert envelope["error"].startswith("messages[0].content[0]: the image URL points at 10.0.0.7, a private address")


def test_vision_chat_through_the_openai_sdk_with_a_data_uri_and_a_url(gateway: LiveServer, files: str) -> None:
    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    for url in (data_uri(png(), "image/png"), files + "/cat.jpg"):
        answer = client.chat.completions.create(model=VLM, messages=_image_message(url), max_tokens=3)  # type: ignore[arg-type]
        assert isinstance(answer.choices[0].message.content, str)
        assert answer.usage is not None and answer.usage.prompt_tokens > 16  # the image's tokens count
    stream = client.chat.completions.create(
        model=VLM,
        messages=_image_message(data_uri(png(), "image/png")),
        max_tokens=3,
        stream=True,  # type: ignore[arg-type]
    )
    assert isinstance("".join(c.choices[0].delta.content or "" for c in stream if c.choices), str)


def test_an_image_to_a_text_only_open_model_is_still_a_400(gateway: LiveServer, files: str) -> None:
    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=TEXT_CHAT, messages=_image_message(files + "/cat.png"), max_tokens=3)  # type: ignore[arg-type]
    assert "takes text only" in str(caught.value)


def test_openai_sdk_transcribes_with_an_open_speech_model(gateway: LiveServer) -> None:
    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    audio = sine("FLAC", rate=44100)
    transcript = client.audio.transcriptions.create(model=SPEECH, file=("hello.flac", audio, "audio/flac"))
    assert isinstance(transcript.text, str)
    plain = client.audio.transcriptions.create(
        model=SPEECH, file=("hello.mp3", sine("MP3"), "audio/mpeg"), response_format="text"
    )
    assert isinstance(plain, str) and plain == plain.strip()
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model=SPEECH, file=("hello.flac", audio, "audio/flac"), language="en")
    assert "language" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model=SPEECH, file=("broken.wav", audio[:40], "audio/wav"))
    assert "truncated" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model=VISION, file=("hello.flac", audio, "audio/flac"))
    assert "open automatic-speech-recognition models" in str(caught.value)
