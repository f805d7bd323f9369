"""The OpenAI Responses API end to end: the official `openai` SDK (`responses.create`, `.stream`, `.retrieve`,
`.delete`, `.input_items.list`) against a running unimodel, the OpenAI, Anthropic and Gemini fakes and an open model
(a fake worker) behind it; streamed events in order; stored responses, continuation and their scope; bad input."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from unimodel.config import Settings
from unimodel.frontends.openai_responses import parse_request
from unimodel.frontends.openai_responses_encode import ResponseCall, encode_result, encode_stream
from unimodel.frontends.openai_responses_items import parse_item, to_messages
from unimodel.gateway import create_app
from unimodel.protocol import (
    ChatResult,
    Finish,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    ToolCallDelta,
    ToolCallPart,
    Usage,
    UsageEvent,
)
from unimodel.runtime.backend import LocalBackend, worker_command
from unimodel.store import StoreError

from .conftest import OPENAI_KEY
from .fakes.anthropic_fake import create_anthropic_app
from .fakes.cohere_fake import create_cohere_app
from .fakes.google_fake import create_google_app
from .fakes.mistral_fake import create_mistral_app
from .fakes.openai_fake import create_openai_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer
from .platform_helpers import PlatformFactory

FAKE_WORKER = str(Path(__file__).parent / "fakes" / "fake_worker.py")
ANTHROPIC_KEY = "sk-ant-api03-responses-Qw77secretANTHROPIC"
GOOGLE_KEY = "AIzaSy-responses-secretGOOGLEkey000000"
MISTRAL_KEY = "mistral-responses-secretMISTRALkey0000"
COHERE_KEY = "cohere-responses-secretCOHEREkey000000"
OPEN = "acme/tiny-chat"
CLOSED = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "google": "google/gemini-2.5-flash",
    "mistral": "mistral/mistral-large-latest",
    "cohere": "cohere/command-a-03-2025",
}
KEYS = {
    "openai": OPENAI_KEY,
    "anthropic": ANTHROPIC_KEY,
    "google": GOOGLE_KEY,
    "mistral": MISTRAL_KEY,
    "cohere": COHERE_KEY,
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@dataclass
class World:
    gateway: LiveServer
    scripts: dict[str, FakeScript]

    def client(self, provider: str | None = None, prefix: str = "/v1") -> openai.OpenAI:
        headers = {"provider-key": KEYS[provider]} if provider else {}
        return openai.OpenAI(
            base_url=self.gateway.url + prefix, api_key="any-gateway-key", default_headers=headers, max_retries=0
        )

    def post(self, body: Any, provider: str = "openai", **kw: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json", "provider-key": KEYS[provider]}
        return httpx.post(self.gateway.url + "/v1/responses", content=content, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("responses")
    scripts = {
        "openai": FakeScript(api_key=OPENAI_KEY),
        "anthropic": FakeScript(api_key=ANTHROPIC_KEY),
        "google": FakeScript(api_key=GOOGLE_KEY),
        "mistral": FakeScript(api_key=MISTRAL_KEY),
        "cohere": FakeScript(api_key=COHERE_KEY),
    }
    fakes = {
        "openai": LiveServer(create_openai_app(scripts["openai"])).start(),
        "anthropic": LiveServer(create_anthropic_app(scripts["anthropic"])).start(),
        "google": LiveServer(create_google_app(scripts["google"])).start(),
        "mistral": LiveServer(create_mistral_app(scripts["mistral"])).start(),
        "cohere": LiveServer(create_cohere_app(scripts["cohere"])).start(),
    }
    base = {"max_retries": 0, "read_timeout_s": 10.0}
    settings = Settings(
        providers={
            "openai": {**base, "base_url": fakes["openai"].url + "/v1"},
            "anthropic": {**base, "base_url": fakes["anthropic"].url},
            "google": {**base, "base_url": fakes["google"].url},
            "mistral": {**base, "base_url": fakes["mistral"].url},
            "cohere": {**base, "base_url": fakes["cohere"].url},
        },
        models=[{"id": OPEN, "task": "chat", "idle_timeout_s": 120, "engine_args": {"load_s": 0.1}}],
        runtime={"default_models": False, "log_dir": str(tmp), "tick_s": 0.5},
        store={"data_dir": str(tmp / "store")},
    )
    command = functools.partial(worker_command, program=[sys.executable, FAKE_WORKER])
    gateway = LiveServer(create_app(settings, backend=LocalBackend(settings.runtime, command_for=command))).start()
    yield World(gateway, scripts)
    gateway.stop(timeout_s=20)
    for fake in fakes.values():
        fake.stop()


PROVIDERS = ["openai", "anthropic", "google", "mistral", "cohere"]


@pytest.fixture(autouse=True)
def _no_replies_left(world: World) -> None:
    """Each test starts with empty scripts, whatever an earlier one left queued."""
    for script in world.scripts.values():
        script.replies.clear()


EVERY_MODEL = [*PROVIDERS, "open"]


def model_and_client(world: World, which: str) -> tuple[str, openai.OpenAI]:
    if which == "open":
        return OPEN, world.client()
    return CLOSED[which], world.client(which)


def sent(world: World, provider: str) -> str:
    """The last request the provider's fake received, as JSON text."""
    return json.dumps(world.scripts[provider].last_request.json)


# ---- create, for every model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", EVERY_MODEL)
def test_sdk_create_answers_with_a_response_object(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    if which != "open":
        world.scripts[which].push(FakeReply(text="Paris is the capital.", input_tokens=11, output_tokens=4))
    out = client.responses.create(
        model=model, input="Capital of France?", instructions="Answer in one line.", max_output_tokens=64
    )
    assert out.id.startswith("resp_") and out.object == "response" and out.status == "completed"
    assert out.model == model and out.instructions == "Answer in one line." and out.max_output_tokens == 64
    assert out.store is True and out.previous_response_id is None
    assert out.output[0].type == "message" and out.output[0].role == "assistant"
    assert out.usage is not None and out.usage.total_tokens == out.usage.input_tokens + out.usage.output_tokens
    if which == "open":
        assert out.output_text == "echo: Capital of France?"  # the fake worker echoes
        return
    assert out.output_text == "Paris is the capital."
    thoughts = out.usage.output_tokens_details.reasoning_tokens  # Gemini 2.5 thinks by default; counted as output
    assert (out.usage.input_tokens, out.usage.output_tokens - thoughts) == (11, 4)
    assert "Answer in one line." in sent(world, which)


def test_openai_models_are_called_through_chat_completions(world: World) -> None:
    world.client("openai").responses.create(model="openai/gpt-4o-mini", input="Hi", temperature=0.2, top_p=0.9)
    last = world.scripts["openai"].last_request
    assert last.path == "/v1/chat/completions"
    assert last.json["temperature"] == 0.2 and last.json["top_p"] == 0.9
    assert last.json["messages"] == [{"role": "user", "content": "Hi"}]


def test_the_models_v2_prefix_serves_it_too(world: World) -> None:
    client = world.client("anthropic", prefix="/models/v2/openai/v1")
    out = client.responses.create(model="anthropic/claude-sonnet-4-5", input="Hello")
    assert out.output_text == "Hello"
    assert client.responses.retrieve(out.id).output_text == "Hello"


def test_images_and_developer_messages_reach_the_provider(world: World) -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    world.client("openai").responses.create(
        model="openai/gpt-4o-mini",
        input=[
            {"role": "developer", "content": "Describe images."},
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": png}],
            },
        ],
    )
    messages = world.scripts["openai"].last_request.json["messages"]
    assert messages[0] == {"role": "system", "content": "Describe images."}
    assert messages[1]["content"][1] == {"type": "image_url", "image_url": {"url": png}}


# ---- streaming ----------------------------------------------------------------------------------------------------

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 4,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("which", PROVIDERS)
def test_stream_sends_the_typed_events_in_order(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    world.scripts[which].push(FakeReply(text="alpha beta gamma delta", input_tokens=5, output_tokens=4))
    events = list(client.responses.create(model=model, input="Four words", stream=True))
    types = [e.type for e in events]
    assert types[:4] == TEXT_EVENTS[:4] and types[-4:] == TEXT_EVENTS[-4:]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "alpha beta gamma delta"
    done = events[-1].response  # type: ignore[union-attr]
    assert done.status == "completed" and done.output_text == text
    assert done.usage.output_tokens - done.usage.output_tokens_details.reasoning_tokens == 4
    assert events[0].response.id == done.id and events[0].response.status == "in_progress"  # type: ignore[union-attr]
    assert client.responses.retrieve(done.id).output_text == text


def test_stream_helper_gives_the_final_response_from_an_open_model(world: World) -> None:
    client = world.client()
    with client.responses.stream(model=OPEN, input="one two three") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: one two three"
    assert final.usage is not None and final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_an_open_model_streams_a_function_call(world: World) -> None:
    events = list(world.client().responses.create(model=OPEN, input="[fake_tool_call]", stream=True))
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types and "response.function_call_arguments.done" in types
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "completed" and [o.type for o in final.output][-1] == "function_call"


@pytest.mark.parametrize("which", PROVIDERS)
def test_stream_of_function_calls(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    world.scripts[which].push(
        FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})])
    )
    events = list(client.responses.create(model=model, input="Oslo and Lima?", tools=[WEATHER], stream=True))  # type: ignore[list-item]
    added = [e.item for e in events if e.type == "response.output_item.added"]  # type: ignore[union-attr]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    # Cohere says its plan (`tool_plan`) before its calls, as the real API does: a message item comes first
    plan = ["message"] if which == "cohere" else []
    assert [a.type for a in added] == [*plan, "function_call", "function_call"]
    added = added[len(plan) :]
    assert [json.loads(d.arguments) for d in done] == [{"city": "Oslo"}, {"city": "Lima"}]  # type: ignore[union-attr]
    deltas: dict[int, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            deltas[e.output_index] = deltas.get(e.output_index, "") + e.delta
    assert [json.loads(v) for _, v in sorted(deltas.items())] == [{"city": "Oslo"}, {"city": "Lima"}]
    final = events[-1].response  # type: ignore[union-attr]
    assert [o.call_id for o in final.output[len(plan) :]] == [a.call_id for a in added]
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize("which", ["openai", "anthropic"])
def test_a_mid_stream_failure_ends_with_error_then_response_failed(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    kind = "server_error" if which == "openai" else "overloaded_error"
    world.scripts[which].push(FakeReply(text="one two three four five", stream_error=kind, stream_error_after=3))
    events = list(client.responses.create(model=model, input="Count", stream=True))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and failed.error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))
    stored = client.responses.retrieve(failed.id)
    assert stored.status == "failed"
    world.scripts[which].push(FakeReply(text="a b c", cut_stream_after=3))  # cut off: the stream helper raises
    with (
        pytest.raises(RuntimeError, match=r"response\.completed"),
        client.responses.stream(model=model, input="x") as s,
    ):
        s.get_final_response()


def test_no_key_in_a_failed_stream_or_its_stored_response(world: World) -> None:
    world.scripts["openai"].push(FakeReply(text="a b c d", stream_error="server_error", echo_headers=True))
    with httpx.stream(
        "POST",
        world.gateway.url + "/v1/responses",
        json={"model": "openai/gpt-4o-mini", "input": "hi", "stream": True},
        headers={"provider-key": OPENAI_KEY},
        timeout=30,
    ) as r:
        body = r.read().decode()
    assert "response.failed" in body and OPENAI_KEY not in body
    response_id = json.loads(body.split("data: ", 2)[1].split("\n")[0])["response"]["id"]
    stored = httpx.get(world.gateway.url + f"/v1/responses/{response_id}").text
    assert "failed" in stored and OPENAI_KEY not in stored


# ---- stored responses and continuation ------------------------------------------------------------------------


@pytest.mark.parametrize("which", EVERY_MODEL)
def test_previous_response_id_continues_the_conversation(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    first = client.responses.create(model=model, input="My name is Ada.", instructions="Be terse.")
    second = client.responses.create(model=model, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    if which == "open":
        return  # the fake worker echoes only the last message
    upstream = sent(world, which)
    assert "My name is Ada." in upstream and "What is my name?" in upstream
    assert "Be terse." not in upstream  # instructions are not carried over, as OpenAI does


def test_a_conversation_can_switch_models(world: World) -> None:
    first = world.client("openai").responses.create(model="openai/gpt-4o-mini", input="Remember 42.")
    world.client("anthropic").responses.create(
        model="anthropic/claude-sonnet-4-5", input="What number?", previous_response_id=first.id
    )
    messages = world.scripts["anthropic"].last_request.json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Remember 42."


@pytest.mark.parametrize("which", PROVIDERS)
def test_function_call_round_trip_by_previous_response_and_by_items(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    world.scripts[which].push(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]), FakeReply(text="Sunny."))
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"}
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[result],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "Sunny."
    assert "sunny, 24 C" in sent(world, which)
    assert call.call_id in sent(world, which) or which == "google"  # Gemini matches results by name, not id
    # The same turn without the store: the caller sends the conversation back as items.
    world.scripts[which].push(FakeReply(text="Still sunny."))
    items: list[Any] = [{"role": "user", "content": "Weather in Paris?"}, *first.output, result]  # as the docs do
    third = client.responses.create(model=model, input=items, tools=[WEATHER], store=False)  # type: ignore[list-item]
    assert third.output_text == "Still sunny." and third.store is False
    assert "sunny, 24 C" in sent(world, which)


def test_retrieve_delete_and_input_items(world: World) -> None:
    client = world.client("openai")
    first = client.responses.create(model="openai/gpt-4o-mini", input="One", metadata={"ticket": "T-1"})
    second = client.responses.create(model="openai/gpt-4o-mini", input="Two", previous_response_id=first.id)
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == second.output_text and got.previous_response_id == first.id
    assert client.responses.retrieve(first.id).metadata == {"ticket": "T-1"}
    items = client.responses.input_items.list(second.id)
    kinds = [(i.type, getattr(i, "role", None)) for i in items.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]  # newest first
    assert items.data[0].content[0].text == "Two"  # type: ignore[union-attr]
    oldest = client.responses.input_items.list(second.id, order="asc", limit=1)
    assert [i.content[0].text for i in oldest.data] == ["One"] and oldest.has_more  # type: ignore[union-attr]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)
    # The continuation kept its own copy of the conversation.
    assert client.responses.retrieve(second.id).id == second.id
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="openai/gpt-4o-mini", input="Three", previous_response_id=first.id)


def test_store_false_is_answered_but_not_kept(world: World) -> None:
    client = world.client("anthropic")
    out = client.responses.create(model="anthropic/claude-sonnet-4-5", input="Hi", store=False)
    assert out.store is False and out.output_text == "Hi"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(out.id)


def test_a_store_that_fails_does_not_fail_the_answer(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    store = world.gateway.app.state.platform.store

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the database is down")

    monkeypatch.setattr(store, "save_response", broken)
    out = world.client("openai").responses.create(model="openai/gpt-4o-mini", input="Still answered?")
    assert out.output_text == "Still answered?" and out.store is False
    monkeypatch.undo()
    with pytest.raises(openai.NotFoundError):
        world.client().responses.retrieve(out.id)


# ---- what else passes ------------------------------------------------------------------------------------------


class City(BaseModel):
    name: str
    country: str


@pytest.mark.parametrize("which", ["openai", "anthropic", "google"])
def test_text_format_json_schema_parses_into_a_model(world: World, which: str) -> None:
    model, client = model_and_client(world, which)
    city = {"name": "Paris", "country": "France"}
    if which == "anthropic":  # structured output comes back through a forced tool there
        world.scripts[which].push(FakeReply(tool_calls=[("json_response", city)]))
    else:
        world.scripts[which].push(FakeReply(text=json.dumps(city)))
    out = client.responses.parse(model=model, input="Capital of France as JSON", text_format=City)
    assert out.output_parsed == City(name="Paris", country="France")
    if which == "openai":
        fmt = world.scripts["openai"].last_request.json["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"


def test_json_object_format(world: World) -> None:
    out = world.client("openai").responses.create(
        model="openai/gpt-4o-mini", input="Reply in json please", text={"format": {"type": "json_object"}}
    )
    assert json.loads(out.output_text) == {"echo": "Reply in json please"}
    assert world.scripts["openai"].last_request.json["response_format"] == {"type": "json_object"}


def test_reasoning_effort_goes_to_a_reasoning_model_and_its_tokens_are_counted(world: World) -> None:
    client = world.client("openai")
    out = client.responses.create(model="openai/o4-mini", input="Think", reasoning={"effort": "high"})
    assert world.scripts["openai"].last_request.json["reasoning_effort"] == "high"
    assert out.reasoning is not None and out.reasoning.effort == "high"
    assert out.usage is not None and out.usage.output_tokens_details.reasoning_tokens == 256
    with pytest.raises(openai.BadRequestError, match="reasoning_effort"):  # the real API refuses it on gpt-4o
        client.responses.create(model="openai/gpt-4o", input="Think", reasoning={"effort": "low"})


def test_a_provider_without_efforts_names_the_field_the_caller_sent(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        world.client("anthropic").responses.create(
            model="anthropic/claude-sonnet-4-5", input="Think", reasoning={"effort": "low"}
        )
    assert info.value.body["param"] == "reasoning.effort"  # type: ignore[index]
    assert "'reasoning.effort' is not supported by provider 'anthropic'" in info.value.message


def test_tool_choice_forces_a_named_function(world: World) -> None:
    out = world.client("google").responses.create(
        model="google/gemini-2.5-flash",
        input="Anything",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    assert out.output[-1].type == "function_call"
    config = world.scripts["google"].last_request.json["toolConfig"]["functionCallingConfig"]
    assert config["mode"] == "ANY" and config["allowedFunctionNames"] == ["get_weather"]


def test_upstream_errors_keep_their_status_and_never_show_the_key(world: World) -> None:
    client = world.client("openai")
    world.scripts["openai"].push(FakeReply(status=429, retry_after=2))
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="openai/gpt-4o-mini", input="hi")
    world.scripts["openai"].push(FakeReply(status=500, echo_headers=True))
    r = world.post({"model": "openai/gpt-4o-mini", "input": "hi"})
    assert r.status_code == 502 and OPENAI_KEY not in r.text
    with pytest.raises(openai.AuthenticationError):
        world.client().responses.create(model="openai/gpt-4o-mini", input="hi")  # no provider key
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nobody/nothing", input="hi")


# ---- bad input -------------------------------------------------------------------------------------------------

M = "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (b'{"model": "openai/gpt-4o-mini", "input": ', "body", "not valid JSON"),
        (b"[1, 2]", "body", "expected a JSON object"),
        ({"input": "hi"}, "model", "required"),
        ({"model": M}, "input", "required"),
        ({"model": M, "input": ""}, "input", "must not be empty"),
        ({"model": M, "input": "hi", "colour": "red"}, "colour", "unknown field"),
        ({"model": M, "input": 5}, "input", "expected a string or an array"),
        ({"model": M, "input": "hi", "temperature": "hot"}, "temperature", "number"),
        ({"model": M, "input": "hi", "temperature": 3}, "temperature", "less than or equal to 2"),
        ({"model": M, "input": "hi", "max_output_tokens": 0}, "max_output_tokens", "greater than or equal to 1"),
        ({"model": M, "input": "hi", "stream": "yes"}, "stream", "boolean"),
        ({"model": M, "input": [{"role": "user", "content": 5}]}, "input[0].content", "a string or an array"),
        ({"model": M, "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "Input should be"),
        ({"model": M, "input": [{"type": "web_search_call"}]}, "input[0].type", "not supported"),
        ({"model": M, "input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0].type", "input_file"),
        ({"model": M, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0].image_url", "file_id"),
        ({"model": M, "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]}, "input[0].call_id", "no function_call"),
        ({"model": M, "input": [{"type": "function_call", "call_id": "c1", "name": "f"}]}, "input[0].arguments", "required"),
        ({"model": M, "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", "function tools only"),
        ({"model": M, "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name", "required"),
        ({"model": M, "input": "hi", "tools": [WEATHER, WEATHER]}, "tools[1].name", "twice"),
        ({"model": M, "input": "hi", "tool_choice": "required"}, "tool_choice", "needs 'tools'"),
        ({"model": M, "input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name", "not among"),
        ({"model": M, "input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice.type", "not supported"),
        ({"model": M, "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema", "required"),
        ({"model": M, "input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type", "not one of"),
        ({"model": M, "input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort", "Input should be"),
        ({"model": M, "input": "hi", "reasoning": {"summary": "auto"}}, "reasoning.summary", "summaries"),
        ({"model": M, "input": "hi", "stream_options": {"include_obfuscation": False}}, "stream_options", "stream"),
        ({"model": M, "input": "hi", "background": True}, "background", "not supported"),
        ({"model": M, "input": "hi", "conversation": "conv_1"}, "conversation", "previous_response_id"),
        ({"model": M, "input": "hi", "include": ["reasoning.encrypted_content"]}, "include", "not supported"),
        ({"model": M, "input": "hi", "truncation": "auto"}, "truncation", "disabled"),
        ({"model": M, "input": "hi", "metadata": {str(i): "v" for i in range(17)}}, "metadata", "at most 16"),
        ({"model": M, "input": "hi", "previous_response_id": "resp_unknown"}, "previous_response_id", "no response"),
        ({"model": "../etc", "input": "hi"}, "model", "not a valid model id"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_in_openai_shape_naming_the_field(world: World, body: Any, param: str, says: str) -> None:
    calls_before = len(world.scripts["openai"].requests)
    r = world.post(body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert says in error["message"], error
    assert len(world.scripts["openai"].requests) == calls_before  # refused before any upstream call


def test_unknown_and_wrong_ids_are_404s(world: World) -> None:
    for path in ("/v1/responses/resp_nope", "/v1/responses/not-an-id", "/v1/responses/resp_x/input_items"):
        r = httpx.get(world.gateway.url + path)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", r.text
    r = httpx.delete(world.gateway.url + "/models/v2/openai/v1/responses/resp_nope")
    assert r.status_code == 404 and "resp_nope" in r.json()["error"]["message"]
    r = httpx.get(world.gateway.url + "/v1/responses/resp_x/input_items", params={"limit": "0"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


# ---- keys: whose responses, the ledger, retention --------------------------------------------------------------


def responses_client(url: str, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url + "/v1", api_key=key or "none", default_headers={"provider-key": OPENAI_KEY}, max_retries=0
    )


def test_a_stored_response_is_seen_only_with_the_key_that_made_it(
    platform_factory: PlatformFactory, store_url: str
) -> None:
    p = platform_factory(store={"url": store_url})
    alice = responses_client(p.url, p.create_key("alice")[1])
    bob = responses_client(p.url, p.create_key("bob")[1])
    mine = alice.responses.create(model="openai/gpt-4o", input="Alice's secret plan")
    assert alice.responses.retrieve(mine.id).output_text == "Alice's secret plan"
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.input_items.list(mine.id)
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        bob.responses.create(model="openai/gpt-4o", input="and?", previous_response_id=mine.id)
    with pytest.raises(openai.AuthenticationError):
        responses_client(p.url, None).responses.retrieve(mine.id)
    assert alice.responses.retrieve(mine.id).id == mine.id  # bob's delete did nothing


def test_responses_are_in_the_usage_ledger(platform_factory: PlatformFactory, openai_fake: Any) -> None:
    p = platform_factory()
    key = p.create_key("ledger")[1]
    client = responses_client(p.url, key)
    openai_fake.script.push(FakeReply(text="a b c", input_tokens=9, output_tokens=3))
    client.responses.create(model="openai/gpt-4o", input="count")
    openai_fake.script.push(FakeReply(text="d e", input_tokens=7, output_tokens=2))
    list(client.responses.create(model="openai/gpt-4o", input="count", stream=True))
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(records) < 2:
        records = p.usage(key)["records"]
        time.sleep(0.1)
    assert [(r["inputTokens"], r["outputTokens"]) for r in records] == [(9, 3), (7, 2)]
    assert all(r["model"] == "openai/gpt-4o" and r["status"] == 200 for r in records)
    assert OPENAI_KEY not in json.dumps(records) and key not in json.dumps(records)


def test_open_mode_callers_without_a_key_share_the_anonymous_scope(platform_factory: PlatformFactory) -> None:
    p = platform_factory(auth={"mode": "open"})
    anonymous = responses_client(p.url, None).responses.create(model="openai/gpt-4o", input="shared")
    assert responses_client(p.url, "another-unknown-key").responses.retrieve(anonymous.id).id == anonymous.id
    with pytest.raises(openai.NotFoundError):  # a valid key is its own scope, in open mode too
        responses_client(p.url, p.admin_key).responses.retrieve(anonymous.id)


def test_a_response_past_its_retention_is_gone(platform_factory: PlatformFactory) -> None:
    p = platform_factory(responses={"retention_days": 1.5 / 86400})  # 1.5 s
    client = responses_client(p.url, p.create_key("short")[1])
    out = client.responses.create(model="openai/gpt-4o", input="fleeting")
    assert client.responses.retrieve(out.id).id == out.id
    time.sleep(1.6)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(out.id)


# ---- cut short, and reasoning ----------------------------------------------------------------------------------


def test_an_answer_cut_by_max_output_tokens_is_incomplete(world: World) -> None:
    client = world.client("openai")
    world.scripts["openai"].push(FakeReply(text="one two three four five six"))
    out = client.responses.create(model="openai/gpt-4o-mini", input="Count", max_output_tokens=2)
    assert out.status == "incomplete" and out.incomplete_details is not None
    assert out.incomplete_details.reason == "max_output_tokens" and out.output_text == "one two"
    world.scripts["openai"].push(FakeReply(text="one two three four five six"))
    events = list(client.responses.create(model="openai/gpt-4o-mini", input="Count", max_output_tokens=2, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]


async def _events(*events: Any) -> AsyncIterator[Any]:
    for event in events:
        yield event


def _sse(chunks: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        kind, data = chunk.decode().strip().split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        out.append(event)
    return out


async def test_streamed_reasoning_comes_back_as_a_signed_item_that_replays() -> None:
    call = ResponseCall("resp_test", "acme/thinker", parse_request(b'{"model": "acme/thinker", "input": "hi"}'), True)
    kept: list[dict[str, Any]] = []

    async def keep(response: dict[str, Any]) -> bool:
        kept.append(response)
        return True

    stream = _events(
        ReasoningDelta("Let me "),
        ReasoningDelta("think.", signature="sig-1"),
        ReasoningDelta("opaque", redacted=True),
        TextDelta("Done."),
        ToolCallDelta(0, "call_9", "f", '{"a": 1}', signature="gsig"),
        UsageEvent(Usage(3, 5, reasoning_tokens=2)),
        Finish("tool_calls"),
    )
    events = _sse([chunk async for chunk in encode_stream(stream, call, lambda usage: None, keep)])
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds.count("response.reasoning_text.delta") == 2 and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    output = events[-1]["response"]["output"]
    assert output == kept[0]["output"]
    assert [o["type"] for o in output] == ["reasoning", "reasoning", "message", "function_call"]
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "Let me think."}]
    assert output[0]["encrypted_content"] == "sig-1"
    assert output[1]["encrypted_content"] == "opaque" and "content" not in output[1]  # a redacted block
    assert output[3]["extra_content"] == {"google": {"thought_signature": "gsig"}}
    assert events[-1]["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    # Sent back as input items, the blocks keep their signatures (and the call its thought signature).
    items = [*[parse_item(o, f"input[{i}]") for i, o in enumerate(output)]]
    user = parse_item({"role": "user", "content": "hi"}, "input[x]")
    messages = to_messages(None, [], [user, *items], 0)
    turn = messages[-1]
    assert turn.role == "assistant"
    assert turn.parts[0] == ReasoningPart("Let me think.", "sig-1")
    assert turn.parts[1] == ReasoningPart("opaque", redacted=True)
    assert turn.parts[3] == ToolCallPart("call_9", "f", '{"a": 1}', "gsig")


async def test_a_whole_answer_with_reasoning_has_a_reasoning_item_first() -> None:
    call = ResponseCall("resp_t", "acme/x", parse_request(b'{"model": "acme/x", "input": "hi"}'), False)
    result = ChatResult("id", "x", "Hi", reasoning="because", reasoning_parts=[ReasoningPart("because", "s")])
    body = encode_result(call, result)
    assert [o["type"] for o in body["output"]] == ["reasoning", "message"]
    assert body["output"][0]["encrypted_content"] == "s" and body["store"] is False


def test_the_openai_fake_refuses_reasoning_effort_as_the_real_api_does() -> None:
    with LiveServer(create_openai_app(FakeScript())) as fake:
        client = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test", max_retries=0)
        hi = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.BadRequestError, match="not supported with this model"):
            client.chat.completions.create(model="gpt-4.1-mini", messages=hi, reasoning_effort="low")  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError, match="Invalid value: 'lots'"):
            client.chat.completions.create(model="o3-mini", messages=hi, reasoning_effort="lots")  # type: ignore[arg-type]
        out = client.chat.completions.create(model="o3-mini", messages=hi, reasoning_effort="medium")  # type: ignore[arg-type]
        assert out.usage is not None and out.usage.completion_tokens_details is not None
        assert out.usage.completion_tokens_details.reasoning_tokens == 64
