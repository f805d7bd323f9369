"""The Anthropic Messages surface end to end: the official `anthropic` SDK, unchanged, against a running unimodel
with every provider's fake behind it (Claude forwarded as it is, the others translated) and an open model on a
fake worker — messages, streams and their helpers, tool-use round trips, token counts, the model list."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.backend import LocalBackend, worker_command

from .fakes.anthropic_fake import create_anthropic_app
from .fakes.cohere_fake import create_cohere_app
from .fakes.google_fake import create_google_app
from .fakes.mistral_fake import create_mistral_app
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer

# provider prefix, model, fake factory, base_url suffix
PROVIDERS: list[tuple[str, str, Callable[[FakeScript], Starlette], str]] = [
    ("anthropic", "claude-sonnet-4-5", create_anthropic_app, ""),
    ("openai", "gpt-4o-mini", create_openai_app, "/v1"),
    ("google", "gemini-2.0-flash", create_google_app, ""),  # not a thinking model: usage counts as scripted
    ("mistral", "mistral-large-latest", create_mistral_app, ""),
    ("cohere", "command-a-03-2025", create_cohere_app, ""),
    ("groq", "llama-3.3-70b-versatile", create_openai_app, "/v1"),
]
IDS = [p for p, *_ in PROVIDERS]
FAKE_WORKER = str(Path(__file__).parent / "fakes" / "fake_worker.py")
OPEN_CHAT = "acme/tiny-chat"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class World:
    def __init__(self) -> None:
        self.scripts: dict[str, FakeScript] = {}
        self.servers: list[LiveServer] = []
        self.gateway: LiveServer

    def client(self, provider: str, base: str = "", **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.gateway.url + base,
            api_key="any-gateway-key",
            default_headers={"provider-key": f"key-for-{provider}"},
            max_retries=0,
            **kwargs,
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    providers: dict[str, Any] = {}
    for name, _, factory, suffix in PROVIDERS:
        script = FakeScript(api_key=f"key-for-{name}")
        server = LiveServer(factory(script)).start()
        w.scripts[name] = script
        w.servers.append(server)
        providers[name] = {"base_url": server.url + suffix, "max_retries": 0, "read_timeout_s": 10.0}
    w.gateway = LiveServer(create_app(Settings(providers=providers))).start()
    yield w
    w.gateway.stop()
    for server in w.servers:
        server.stop()


@pytest.fixture
def scripts(world: World) -> Iterator[dict[str, FakeScript]]:
    yield world.scripts
    for script in world.scripts.values():  # a test's unused replies never leak into the next
        script.replies.clear()


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    logs = tmp_path_factory.mktemp("logs")
    settings = Settings(
        models=[{"id": OPEN_CHAT, "task": "chat", "idle_timeout_s": 60, "engine_args": {"delay_s": 0.05}}],
        runtime={"default_models": False, "log_dir": str(logs), "tick_s": 0.2},
    )
    command = functools.partial(worker_command, program=[sys.executable, FAKE_WORKER])
    live = LiveServer(create_app(settings, backend=LocalBackend(settings.runtime, command_for=command))).start()
    yield live
    live.stop(timeout_s=20)


def model_of(provider: str, name: str) -> str:
    return name if provider == "anthropic" else f"{provider}/{name}"  # Claude as Claude Code names it: bare


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


# -------------------------------------------------------------------------------------- every provider


@pytest.mark.parametrize(("provider", "name"), [(p, m) for p, m, *_ in PROVIDERS], ids=IDS)
def test_sdk_creates_a_message_with_any_provider(
    world: World, scripts: dict[str, FakeScript], provider: str, name: str
) -> None:
    scripts[provider].push(FakeReply(text="Paris is the capital.", input_tokens=12, output_tokens=5))
    message = world.client(provider).messages.create(
        model=model_of(provider, name),
        max_tokens=64,
        system="Answer in one line.",
        messages=[{"role": "user", "content": "Capital of France?"}],
        extra_body={"temperature": 0.3},  # this SDK has no sampling arguments; the API still takes them
    )
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Paris is the capital.")]
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)
    assert message.model == (name if provider == "anthropic" else f"{provider}/{name}")
    assert "Answer in one line." in json.dumps(scripts[provider].last_request.json)


@pytest.mark.parametrize(("provider", "name"), [(p, m) for p, m, *_ in PROVIDERS], ids=IDS)
def test_sdk_stream_helpers_with_any_provider(
    world: World, scripts: dict[str, FakeScript], provider: str, name: str
) -> None:
    scripts[provider].push(FakeReply(text="alpha beta gamma delta", input_tokens=7, output_tokens=4))
    with world.client(provider).messages.stream(
        model=model_of(provider, name), max_tokens=64, messages=[{"role": "user", "content": "Say four words"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "alpha beta gamma delta"
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 4)


@pytest.mark.parametrize(("provider", "name"), [(p, m) for p, m, *_ in PROVIDERS], ids=IDS)
def test_sdk_tool_use_round_trip_with_any_provider(
    world: World, scripts: dict[str, FakeScript], provider: str, name: str
) -> None:
    scripts[provider].push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]), FakeReply(text="It is sunny in Paris.")
    )
    client = world.client(provider)
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model=model_of(provider, name),
        max_tokens=256,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[question],  # type: ignore[list-item]
    )
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
    result = {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny, 21 C"}
    second = client.messages.create(
        model=model_of(provider, name),
        max_tokens=256,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}],  # type: ignore[list-item]
    )
    assert second.content[-1].type == "text" and second.content[-1].text == "It is sunny in Paris."
    sent = json.dumps(scripts[provider].last_request.json)
    assert "sunny, 21 C" in sent and "Paris" in sent


@pytest.mark.parametrize(("provider", "name"), [(p, m) for p, m, *_ in PROVIDERS], ids=IDS)
def test_sdk_streams_parallel_tool_calls_with_any_provider(
    world: World, scripts: dict[str, FakeScript], provider: str, name: str
) -> None:
    scripts[provider].push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]))
    with world.client(provider).messages.stream(
        model=model_of(provider, name),
        max_tokens=256,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Oslo and Lima?"}],
    ) as stream:
        final = stream.get_final_message()
    uses = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
    assert uses == [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]
    assert final.stop_reason == "tool_use"


# ------------------------------------------------------------------------------------------ wire details


def test_a_translated_stream_has_claudes_exact_event_sequence(world: World, scripts: dict[str, FakeScript]) -> None:
    scripts["openai"].push(FakeReply(text="one two", tool_calls=[("get_weather", {"city": "Rome"})]))
    r = httpx.post(
        world.gateway.url + "/v1/messages",
        json={
            "model": "openai/gpt-4o-mini",
            "max_tokens": 100,
            "stream": True,
            "tools": [WEATHER],
            "messages": [{"role": "user", "content": "Weather in Rome?"}],
        },
        headers={"provider-key": "key-for-openai", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert all(data["type"] == name for name, data in events)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "get_weather" and starts[1]["input"] == {}
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert set(deltas) == {"text_delta", "input_json_delta"}
    stops = [data["index"] for name, data in events if name == "content_block_stop"]
    assert stops == [0, 1]
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0


def test_claude_is_forwarded_as_it_came(world: World, scripts: dict[str, FakeScript]) -> None:
    """Anthropic sees the caller's body (cache_control, a beta header) and the provider key, never the gateway key."""
    body = {
        "model": "anthropic/claude-sonnet-4-5",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}
        ],
        "metadata": {"user_id": "u-1"},
        "service_tier": "auto",
    }
    r = httpx.post(
        world.gateway.url + "/v1/messages?beta=true",
        json=body,
        headers={
            "x-api-key": "my-gateway-key",
            "provider-key": "key-for-anthropic",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
        },
    )
    assert r.status_code == 200, r.text
    sent = scripts["anthropic"].last_request
    assert sent.json == {**body, "model": "claude-sonnet-4-5"}
    assert sent.query == "beta=true"
    assert sent.header("x-api-key") == "key-for-anthropic" and sent.header("authorization") is None
    assert sent.header("anthropic-beta") == "prompt-caching-2024-07-31"
    assert "my-gateway-key" not in json.dumps(dict(sent.headers))
    assert r.headers["request-id"].startswith("req_")  # Anthropic's own, which the SDK shows
    assert r.json()["type"] == "message" and r.json()["usage"]["cache_read_input_tokens"] == 0


def test_claude_thinking_streams_with_its_signature(world: World, scripts: dict[str, FakeScript]) -> None:
    scripts["anthropic"].push(FakeReply(thinking="Let me see.", text="42"))
    with world.client("anthropic").messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "6 x 7?"}],
    ) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert {"thinking_delta", "signature_delta", "text_delta"} <= set(kinds)
    block = final.content[0]
    assert block.type == "thinking" and block.thinking == "Let me see." and block.signature


def test_a_gemini_call_signature_rides_a_thinking_block_and_comes_back(
    world: World, scripts: dict[str, FakeScript]
) -> None:
    scripts["google"].push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"})]), FakeReply(text="Cold."))
    client = world.client("google")
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = client.messages.create(
        model="google/gemini-3-pro-preview",
        max_tokens=256,
        tools=[WEATHER],
        messages=[question],  # type: ignore[list-item]
    )
    thinking, use = first.content[0], first.content[1]
    assert thinking.type == "thinking" and thinking.thinking == "" and thinking.signature
    assert use.type == "tool_use"
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "-5 C"}
    client.messages.create(
        model="google/gemini-3-pro-preview",
        max_tokens=256,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}],  # type: ignore[list-item]
    )
    replayed = scripts["google"].last_request.json["contents"][1]["parts"][0]
    assert replayed["functionCall"]["name"] == "get_weather" and replayed["thoughtSignature"] == thinking.signature


def test_reasoning_without_a_signature_is_a_thinking_block(world: World, scripts: dict[str, FakeScript]) -> None:
    scripts["mistral"].push(FakeReply(thinking="Think first.", text="Done."))
    message = world.client("mistral").messages.create(
        model="mistral/magistral-medium-latest", max_tokens=128, messages=[{"role": "user", "content": "Go"}]
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Think first." and message.content[0].signature == ""


def test_stop_sequences_and_max_tokens_map_to_anthropic_stop_reasons(
    world: World, scripts: dict[str, FakeScript]
) -> None:
    client = world.client("cohere")
    scripts["cohere"].push(FakeReply(text="one two STOP three"))
    stopped = client.messages.create(
        model="cohere/command-a-03-2025",
        max_tokens=50,
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "Count"}],
    )
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "STOP")
    scripts["openai"].push(FakeReply(text="one two three four five six"))
    cut = world.client("openai").messages.create(
        model="openai/gpt-4o-mini", max_tokens=3, messages=[{"role": "user", "content": "Count"}]
    )
    assert cut.stop_reason == "max_tokens"


def test_tool_choice_and_metadata_are_translated(world: World, scripts: dict[str, FakeScript]) -> None:
    world.client("openai").messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        metadata={"user_id": "user-7"},
        stop_sequences=["END"],
        extra_body={"top_p": 0.9},
        messages=[{"role": "user", "content": "Weather?"}],
    )
    sent = scripts["openai"].last_request.json
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["user"] == "user-7" and sent["stop"] == ["END"] and sent["top_p"] == 0.9
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]


def test_images_reach_a_model_that_reads_them(world: World, scripts: dict[str, FakeScript]) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    world.client("openai").messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
    )
    part = scripts["openai"].last_request.json["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}


# ------------------------------------------------------------------------------------------ count, models


def test_count_tokens_forwards_claude_and_estimates_the_others(world: World, scripts: dict[str, FakeScript]) -> None:
    scripts["anthropic"].push(FakeReply(input_tokens=321))
    counted = world.client("anthropic").messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hello"}]
    )
    assert counted.input_tokens == 321
    assert scripts["anthropic"].last_request.path == "/v1/messages/count_tokens"
    text = "x" * 400  # 100 tokens at 4 characters a token, plus 3 for the message
    estimated = world.client("openai").messages.count_tokens(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    assert estimated.input_tokens == 103
    assert scripts["openai"].requests == [] or scripts["openai"].last_request.json["messages"][0]["content"] != text


def test_the_sdk_lists_models_and_openai_clients_still_get_theirs(world: World) -> None:
    client = world.client("anthropic")
    ids = [m.id for m in client.models.list(limit=2)]  # paged two at a time, the SDK following `last_id`
    assert "anthropic/claude-sonnet-4-5" in ids and "openai/gpt-4o-mini" in ids
    assert len(ids) == len(set(ids))
    one = client.models.retrieve("openai/gpt-4o-mini")
    assert one.id == "openai/gpt-4o-mini" and one.type == "model"
    under_v2 = world.client("anthropic", "/models/v2/anthropic").models.list(limit=1000)
    assert [m.id for m in under_v2.data] == ids
    oai = openai.OpenAI(base_url=world.gateway.url + "/v1", api_key="x", max_retries=0)
    assert "openai/gpt-4o-mini" in [m.id for m in oai.models.list()]


def test_the_v2_prefix_serves_the_same_surface(world: World, scripts: dict[str, FakeScript]) -> None:
    scripts["openai"].push(FakeReply(text="via v2"))
    message = world.client("openai", "/models/v2/anthropic").messages.create(
        model="openai/gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "via v2"


# -------------------------------------------------------------------------------------------- open model


def test_an_open_model_through_the_sdk(open_gateway: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=open_gateway.url, api_key="unused", max_retries=0, timeout=30)
    message = client.messages.create(
        model=OPEN_CHAT, max_tokens=32, messages=[{"role": "user", "content": "hello there"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "echo: hello there"
    assert message.model == OPEN_CHAT and message.stop_reason == "end_turn"
    with client.messages.stream(
        model=OPEN_CHAT, max_tokens=32, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        assert "".join(stream.text_stream) == "echo: one two three"
        assert stream.get_final_message().usage.output_tokens == 4
    assert OPEN_CHAT in [m.id for m in client.models.list()]


def test_an_open_model_tool_call_round_trip(open_gateway: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=open_gateway.url, api_key="unused", max_retries=0, timeout=30)
    tool = {"name": "f", "input_schema": {"type": "object", "properties": {}}}
    question = {"role": "user", "content": "call it [fake_tool_call]"}
    with client.messages.stream(model=OPEN_CHAT, max_tokens=32, tools=[tool], messages=[question]) as stream:  # type: ignore[list-item]
        first = stream.get_final_message()
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.name, use.input, first.stop_reason) == ("f", {}, "tool_use")
    answer = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "done"}]}
    second = client.messages.create(
        model=OPEN_CHAT,
        max_tokens=32,
        tools=[tool],  # type: ignore[list-item]
        messages=[question, {"role": "assistant", "content": first.content}, answer],  # type: ignore[list-item]
    )
    assert second.content[0].type == "text" and second.content[0].text.startswith("echo:")


def test_an_image_to_a_text_only_open_model_is_a_400_naming_it(open_gateway: LiveServer) -> None:
    r = httpx.post(
        open_gateway.url + "/v1/messages",
        json={
            "model": OPEN_CHAT,
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    ],
                }
            ],
        },
        timeout=30,
    )
    assert r.status_code == 400
    assert r.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": f"messages[0].content[1]: '{OPEN_CHAT}' takes text only (an open chat model); send text, or "
            "choose a model that reads images.",
        },
    }
