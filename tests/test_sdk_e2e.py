"""End to end: the official `bytez` and `openai` SDKs against a running unimodel, fakes behind it."""

from __future__ import annotations

import json

import openai
import pytest
from bytez import Bytez

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, Fake
from .fakes.script import FakeReply
from .fakes.server import LiveServer

MODELS = [
    ("openai/gpt-4o-mini", OPENAI_KEY, "openai_fake"),
    ("anthropic/claude-sonnet-4-5", ANTHROPIC_KEY, "anthropic_fake"),
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def bytez_client(gateway: LiveServer) -> Bytez:
    sdk = Bytez("any-gateway-key", dev=True)
    sdk._client.host = gateway.url + "/models/v2/"  # dev mode targets localhost:8080; the test server has its own port
    return sdk


def openai_client(gateway: LiveServer, provider_key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url + "/models/v2/openai/v1",
        api_key="any-gateway-key",
        default_headers={"provider-key": provider_key},
        max_retries=0,
    )


@pytest.mark.parametrize(("model_id", "key", "fake_name"), MODELS)
def test_bytez_sdk_runs_a_closed_model(
    gateway: LiveServer, model_id: str, key: str, fake_name: str, request: pytest.FixtureRequest
) -> None:
    fake: Fake = request.getfixturevalue(fake_name)
    fake.script.push(FakeReply(text="Hi from the fake"))
    model = bytez_client(gateway).model(model_id, provider_key=key)
    result = model.run([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    assert result.error is None
    assert result.output == {"role": "assistant", "content": "Hi from the fake"}
    assert isinstance(result.provider, dict)
    assert "Be brief." in json.dumps(fake.script.last_request.json)


@pytest.mark.parametrize(("model_id", "key", "fake_name"), MODELS)
def test_bytez_sdk_streams_a_closed_model(
    gateway: LiveServer, model_id: str, key: str, fake_name: str, request: pytest.FixtureRequest
) -> None:
    fake: Fake = request.getfixturevalue(fake_name)
    fake.script.push(FakeReply(text="one two three four"))
    model = bytez_client(gateway).model(model_id, provider_key=key)
    chunks = list(model.run("Count to four", {"max_new_tokens": 20}, stream=True))
    assert "".join(chunks) == "one two three four"
    assert fake.script.last_request.json["stream"] is True


def test_bytez_sdk_sees_errors_in_the_envelope(gateway: LiveServer) -> None:
    model = bytez_client(gateway).model("openai/gpt-4o-mini")  # no provider key
    result = model.run("Hello")
    assert result.output is None
    assert "provider-key" in result.error
    missing = bytez_client(gateway).model("acme/unknown-model", provider_key="x").run("Hello")
    assert missing.error == "Model does not exist or has yet to be added to the catalog."


def test_bytez_sdk_lists_models_and_tasks(gateway: LiveServer) -> None:
    sdk = bytez_client(gateway)
    listed = sdk.list.models({"modelId": "anthropic/claude-sonnet-4-5"})
    assert listed.error is None
    assert listed.output[0]["task"] == "chat"
    assert "chat" in sdk.list.tasks().output


@pytest.mark.parametrize(("model_id", "key", "fake_name"), MODELS)
def test_openai_sdk_chat(
    gateway: LiveServer, model_id: str, key: str, fake_name: str, request: pytest.FixtureRequest
) -> None:
    fake: Fake = request.getfixturevalue(fake_name)
    fake.script.push(FakeReply(text="Paris is the capital.", input_tokens=12, output_tokens=5))
    client = openai_client(gateway, key)
    out = client.chat.completions.create(
        model=model_id,
        messages=[
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "Capital of France?"},
        ],
        temperature=0.3,
        max_tokens=64,
    )
    assert out.choices[0].message.content == "Paris is the capital."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens == 12 and out.usage.completion_tokens == 5
    assert out.model == model_id


@pytest.mark.parametrize(("model_id", "key", "fake_name"), MODELS)
def test_openai_sdk_stream_with_usage(
    gateway: LiveServer, model_id: str, key: str, fake_name: str, request: pytest.FixtureRequest
) -> None:
    fake: Fake = request.getfixturevalue(fake_name)
    fake.script.push(FakeReply(text="alpha beta gamma delta", input_tokens=7, output_tokens=4))
    client = openai_client(gateway, key)
    stream = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Say four words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "alpha beta gamma delta"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize(("model_id", "key", "fake_name"), MODELS)
def test_openai_sdk_tool_calls_round_trip(
    gateway: LiveServer, model_id: str, key: str, fake_name: str, request: pytest.FixtureRequest
) -> None:
    fake: Fake = request.getfixturevalue(fake_name)
    fake.script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]),
        FakeReply(text="Sunny in both."),
    )
    client = openai_client(gateway, key)
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = client.chat.completions.create(model=model_id, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type]
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert calls is not None and [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    second = client.chat.completions.create(model=model_id, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type]
    assert second.choices[0].message.content == "Sunny in both."
    sent = json.dumps(fake.script.last_request.json)
    assert calls[0].id in sent and calls[1].id in sent


@pytest.mark.parametrize(("model_id", "key", "fake_name"), MODELS)
def test_openai_sdk_streamed_parallel_tool_calls(
    gateway: LiveServer, model_id: str, key: str, fake_name: str, request: pytest.FixtureRequest
) -> None:
    fake: Fake = request.getfixturevalue(fake_name)
    fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]))
    client = openai_client(gateway, key)
    stream = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Weather in Oslo and Lima?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                args[call.index] = args.get(call.index, "") + (call.function.arguments or "" if call.function else "")
                if call.function and call.function.name:
                    names[call.index] = call.function.name
            finish = choice.finish_reason or finish
    assert names == {0: "get_weather", 1: "get_weather"}
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Oslo"}, 1: {"city": "Lima"}}
    assert finish == "tool_calls"


def test_openai_sdk_raises_typed_errors(gateway: LiveServer, openai_fake: Fake) -> None:
    client = openai_client(gateway, OPENAI_KEY)
    openai_fake.script.push(FakeReply(status=429, retry_after=2))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody/nothing", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai_client(gateway, "sk-wrong").chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="'seed' is not supported by provider 'anthropic'"):
        openai_client(gateway, ANTHROPIC_KEY).chat.completions.create(
            model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], seed=3
        )


def test_openai_sdk_lists_models(gateway: LiveServer) -> None:
    ids = [m.id for m in openai_client(gateway, "x").models.list()]
    assert "openai/gpt-4o-mini" in ids and "anthropic/claude-sonnet-4-5" in ids


def test_anthropic_thinking_survives_a_tool_turn_through_the_openai_sdk(
    gateway: LiveServer, anthropic_fake: Fake
) -> None:
    anthropic_fake.script.push(
        FakeReply(thinking="The user wants weather; call the tool.", tool_calls=[("get_weather", {"city": "Oslo"})]),
        FakeReply(text="It is sunny in Oslo."),
    )
    client = openai_client(gateway, ANTHROPIC_KEY)
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=messages,
        tools=[WEATHER_TOOL],
        max_tokens=2048,
        extra_body=thinking,  # type: ignore[arg-type,list-item]
    )
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"] == "The user wants weather; call the tool."
    block = message["thinking_blocks"][0]
    assert block["type"] == "thinking" and block["signature"]
    messages += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "sunny"}]
    second = client.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=messages,
        tools=[WEATHER_TOOL],
        max_tokens=2048,
        extra_body=thinking,  # type: ignore[arg-type,list-item]
    )
    assert second.choices[0].message.content == "It is sunny in Oslo."
    replayed = anthropic_fake.script.last_request.json["messages"][1]["content"]
    assert replayed[0] == {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}
    assert replayed[1]["type"] == "tool_use"
