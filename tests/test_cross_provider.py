"""One conversation — a system prompt, an image, a tool call, its result and a final answer — through every
provider, coming back in the same canonical shape. Switching providers is changing one string."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unimodel.config import Settings
from unimodel.gateway import create_app

from .fakes.anthropic_fake import create_anthropic_app
from .fakes.cohere_fake import create_cohere_app
from .fakes.google_fake import create_google_app
from .fakes.mistral_fake import create_mistral_app
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer


def _png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = _png()


async def _photo(request: Request) -> Response:
    return Response(PNG, media_type="image/png")


# provider prefix, model, fake factory, base_url suffix
PROVIDERS: list[tuple[str, str, Callable[[FakeScript], Starlette], str]] = [
    ("openai", "gpt-4o-mini", create_openai_app, "/v1"),
    ("anthropic", "claude-sonnet-4-5", create_anthropic_app, ""),
    ("google", "gemini-2.5-flash", create_google_app, ""),
    ("mistral", "mistral-large-latest", create_mistral_app, ""),
    ("cohere", "command-a-vision-07-2025", create_cohere_app, ""),
    ("groq", "meta-llama/llama-4-scout-17b-16e-instruct", create_openai_app, "/v1"),
]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class World:
    def __init__(self) -> None:
        self.scripts: dict[str, FakeScript] = {}
        self.servers: list[LiveServer] = []
        self.gateway: LiveServer
        self.photo_url = ""


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    photos = LiveServer(Starlette(routes=[Route("/photo.png", _photo)])).start()
    w.servers.append(photos)
    w.photo_url = photos.url + "/photo.png"
    providers: dict[str, Any] = {}
    for name, _, factory, suffix in PROVIDERS:
        script = FakeScript(api_key=f"key-for-{name}")
        server = LiveServer(factory(script)).start()
        w.scripts[name] = script
        w.servers.append(server)
        providers[name] = {"base_url": server.url + suffix, "max_retries": 0}
    settings = Settings(providers=providers, media={"allow_hosts": ["127.0.0.1"]})
    w.gateway = LiveServer(create_app(settings)).start()
    yield w
    w.gateway.stop()
    for server in w.servers:
        server.stop()


@pytest.mark.parametrize(("provider", "model"), [(p, m) for p, m, _, _ in PROVIDERS], ids=[p for p, *_ in PROVIDERS])
def test_one_conversation_through_every_provider(world: World, provider: str, model: str) -> None:
    script = world.scripts[provider]
    script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"})], input_tokens=40, output_tokens=9),
        FakeReply(text="It is 21 degrees and sunny in Paris.", input_tokens=60, output_tokens=10),
    )
    client = openai.OpenAI(
        base_url=world.gateway.url + "/v1", api_key="unused", default_headers={"provider-key": f"key-for-{provider}"}
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a weather assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": world.photo_url}},
            ],
        },
    ]
    first = client.chat.completions.create(model=f"{provider}/{model}", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert first.usage is not None and first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0
    upstream_first = json.dumps(script.last_request.json)
    assert "You are a weather assistant." in upstream_first
    if provider == "google":  # takes only inline images: the gateway fetched the photo
        assert base64.b64encode(PNG).decode() in upstream_first and world.photo_url not in upstream_first
    else:
        assert world.photo_url in upstream_first

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 21, "sky": "sunny"}'})
    second = client.chat.completions.create(model=f"{provider}/{model}", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is 21 degrees and sunny in Paris."
    assert second.choices[0].message.tool_calls is None
    assert '"temp_c": 21' in json.dumps(script.last_request.json).replace('\\"', '"')
