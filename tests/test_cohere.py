"""The Cohere provider: the official `cohere` SDK proves the fake speaks the real v2 Chat API, the fake rejects
what the real API rejects, and the gateway serves `cohere/<model>` end to end (openai SDK and raw HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import cohere
import httpx
import openai
import pytest

from unimodel.config import Settings
from unimodel.gateway import create_app

from .fakes.cohere_fake import create_cohere_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer

COHERE_KEY = "co-test-Vb93secretCOHEREkey00000000"
MODEL = "command-a-03-2025"
WEATHER_PARAMETERS: Any = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
    "required": ["city"],
}
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather for a city", "parameters": WEATHER_PARAMETERS},
}
NO_RETRY: Any = {"max_retries": 0}
# The cohere SDK's models still read pydantic v1's `__fields__`.
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated:DeprecationWarning")


class CohereFake:
    def __init__(self, script: FakeScript, server: LiveServer) -> None:
        self.script = script
        self.url = server.url


@pytest.fixture
def fake() -> Iterator[CohereFake]:
    script = FakeScript(api_key=COHERE_KEY)
    with LiveServer(create_cohere_app(script)) as server:
        yield CohereFake(script, server)


@pytest.fixture
def gateway(fake: CohereFake) -> Iterator[LiveServer]:
    # A plain table, as the TOML file gives it (only the keys set count as set).
    settings = Settings(providers={"cohere": {"base_url": fake.url, "max_retries": 0, "read_timeout_s": 10.0}})
    with LiveServer(create_app(settings)) as server:
        yield server


def co(fake: CohereFake, api_key: str = COHERE_KEY) -> cohere.ClientV2:
    return cohere.ClientV2(api_key=api_key, base_url=fake.url)


def raw_chat(fake: CohereFake, body: dict[str, Any], key: str | None = COHERE_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(fake.url + "/v2/chat", json=body, headers=headers)


def oai(gateway: LiveServer, key: str = COHERE_KEY) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="any-gateway-key", default_headers={"provider-key": key}, max_retries=0
    )


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


# ============================================================================ the official SDK against the fake


def test_cohere_sdk_chat_reads_the_fake_answer(fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="LLMs are large language models.", input_tokens=5, output_tokens=6))
    response = co(fake).chat(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is an LLM?"}],
        temperature=0.3,
        p=0.75,
        k=10,
        max_tokens=100,
    )
    assert response.finish_reason == "COMPLETE"
    assert response.message.content is not None
    assert response.message.content[0].type == "text"
    assert response.message.content[0].text == "LLMs are large language models."
    assert response.usage is not None and response.usage.billed_units is not None
    assert (response.usage.billed_units.input_tokens, response.usage.billed_units.output_tokens) == (5, 6)
    sent = fake.script.last_request
    assert sent.path == "/v2/chat"
    assert sent.header("authorization") == f"Bearer {COHERE_KEY}"
    assert sent.json["stream"] is False and sent.json["p"] == 0.75 and sent.json["k"] == 10


def test_cohere_sdk_chat_stream_reads_the_fake_events(fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="one two three", input_tokens=4, output_tokens=3))
    events = list(co(fake).chat_stream(model=MODEL, messages=user("Count to three")))
    kinds = [e.type for e in events]
    assert kinds[0] == "message-start" and kinds[1] == "content-start"
    assert kinds[-2:] == ["content-end", "message-end"]
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")  # type: ignore[union-attr]
    assert text == "one two three"
    end = events[-1]
    assert end.type == "message-end" and end.delta is not None
    assert end.delta.finish_reason == "COMPLETE"
    assert end.delta.usage is not None and end.delta.usage.billed_units is not None
    assert end.delta.usage.billed_units.output_tokens == 3
    assert fake.script.last_request.json["stream"] is True


def test_cohere_sdk_tool_call_round_trip(fake: CohereFake) -> None:
    fake.script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Madrid"}), ("get_weather", {"city": "Brasilia"})]),
        FakeReply(text="24°C in Madrid and 28°C in Brasilia."),
    )
    client = co(fake)
    messages: list[Any] = [{"role": "user", "content": "Weather in Madrid and Brasilia?"}]
    first = client.chat(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert first.finish_reason == "TOOL_CALL"
    assert first.message.tool_plan == "I will use the get_weather tool to answer the question."
    calls = first.message.tool_calls or []
    assert [json.loads(c.function.arguments or "") for c in calls if c.function] == [
        {"city": "Madrid"},
        {"city": "Brasilia"},
    ]
    assert all(c.id.startswith("get_weather_") and len(c.id) == len("get_weather_") + 12 for c in calls)
    messages.append(first.message)  # the SDK's own response object goes back, as Cohere's docs do it
    for call, temperature in zip(calls, ("24°C", "28°C"), strict=True):
        document = {"type": "document", "document": {"data": json.dumps({"temperature": temperature})}}
        messages.append({"role": "tool", "tool_call_id": call.id, "content": [document]})
    second = client.chat(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert second.message.content is not None and second.message.content[0].type == "text"
    assert second.message.content[0].text == "24°C in Madrid and 28°C in Brasilia."
    replayed = fake.script.last_request.json["messages"][1]
    assert replayed["role"] == "assistant" and replayed["tool_plan"] == first.message.tool_plan
    assert [c["id"] for c in replayed["tool_calls"]] == [c.id for c in calls]


def test_cohere_sdk_chat_stream_tool_calls_by_index(fake: CohereFake) -> None:
    fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]))
    events = list(co(fake).chat_stream(model=MODEL, messages=user("Weather in Oslo and Lima?"), tools=[WEATHER_TOOL]))
    plan = "".join(e.delta.message.tool_plan for e in events if e.type == "tool-plan-delta")  # type: ignore[union-attr,misc]
    assert plan == "I will use the get_weather tool to answer the question."
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    for event in events:
        if event.type == "tool-call-start":
            call = event.delta.message.tool_calls  # type: ignore[union-attr]
            names[event.index] = call.function.name  # type: ignore[index,union-attr]
        elif event.type == "tool-call-delta":
            fragment = event.delta.message.tool_calls.function.arguments  # type: ignore[union-attr]
            args[event.index] = args.get(event.index, "") + fragment  # type: ignore[index,call-overload,operator]
    assert names == {0: "get_weather", 1: "get_weather"}
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Oslo"}, 1: {"city": "Lima"}}
    assert events[-1].type == "message-end" and events[-1].delta.finish_reason == "TOOL_CALL"  # type: ignore[union-attr]


def test_cohere_sdk_thinking_blocks(fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="3 sisters.", thinking="Alice plus her two sisters."))
    response = co(fake).chat(
        model="command-a-reasoning-08-2025",
        messages=user("How many sisters does Alice's brother have?"),
        thinking={"type": "enabled", "token_budget": 500},
    )
    content = response.message.content or []
    assert [c.type for c in content] == ["thinking", "text"]
    assert content[0].thinking == "Alice plus her two sisters."  # type: ignore[union-attr]
    assert content[1].text == "3 sisters."  # type: ignore[union-attr]
    stream = list(
        co(fake).chat_stream(model="command-a-reasoning-08-2025", messages=user("Hi"), thinking={"type": "enabled"})
    )
    thoughts = "".join(
        e.delta.message.content.thinking or ""  # type: ignore[union-attr]
        for e in stream
        if e.type == "content-delta"
    )
    assert thoughts == "The user asked a question; I will answer it directly."


def test_cohere_sdk_raises_typed_errors(fake: CohereFake) -> None:
    with pytest.raises(cohere.UnauthorizedError) as unauthorized:
        co(fake, api_key="wrong").chat(model=MODEL, messages=user("hi"), request_options=NO_RETRY)
    assert unauthorized.value.body["message"] == "invalid api token"
    fake.script.push(FakeReply(status=429, retry_after=3))
    with pytest.raises(cohere.TooManyRequestsError) as limited:
        co(fake).chat(model=MODEL, messages=user("hi"), request_options=NO_RETRY)
    assert limited.value.headers is not None and limited.value.headers["retry-after"] == "3"
    with pytest.raises(cohere.BadRequestError) as bad:
        co(fake).chat(
            model=MODEL,
            messages=[*user("hi"), {"role": "tool", "tool_call_id": "get_weather_000000000000", "content": "sunny"}],
            request_options=NO_RETRY,
        )
    assert bad.value.body["message"] == "tool call id not found in previous tool calls"
    fake.script.models = frozenset({MODEL})
    with pytest.raises(cohere.NotFoundError):
        co(fake).chat(model="command-z", messages=user("hi"), request_options=NO_RETRY)


def test_cohere_sdk_sees_an_in_stream_error_as_message_end(fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="a b c d", stream_error="internal", stream_error_after=3))
    events = list(co(fake).chat_stream(model=MODEL, messages=user("hi")))
    end = events[-1]
    assert end.type == "message-end" and end.delta is not None
    assert end.delta.finish_reason == "ERROR" and end.delta.error


def test_cohere_assistant_reasoning_without_text_sends_no_empty_text_block() -> None:
    from unimodel.protocol import Message, ReasoningPart, TextPart
    from unimodel.providers.cohere import encode_messages

    messages = (
        Message("user", (TextPart("Hi"),)),
        Message("assistant", (ReasoningPart("Nothing to say yet."),)),
        Message("assistant", (ReasoningPart("Signed elsewhere.", signature="sig"),)),
    )
    assert encode_messages(messages, "cohere") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "Nothing to say yet."}]},
    ]


# ============================================================================ the fake validates like the API


def _with(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**body, **changes}
    return {k: v for k, v in out.items() if v is not None}


BASE: Any = {"model": MODEL, "messages": user("Hi")}
TOOLS: Any = [WEATHER_TOOL]
CALL: Any = {
    "id": "get_weather_abc123def456",
    "type": "function",
    "function": {"name": "get_weather", "arguments": "{}"},
}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (_with(BASE, messages=[{"role": "bot", "content": "hi"}]), 400, "invalid role 'bot' in messages at index 0"),
        (_with(BASE, model=None), 400, "a model parameter is required for this endpoint."),
        (_with(BASE, messages=None), 400, "invalid request: messages is required."),
        (_with(BASE, messages=[]), 400, "messages must contain at least one message"),
        (_with(BASE, temperature=1.5), 400, "invalid request: temperature must be between 0 and 1 inclusive."),
        (_with(BASE, p=1.0), 400, "p must be between 0.01 and 0.99 inclusive"),
        (_with(BASE, k=501), 400, "k must be between 0 and 500 inclusive"),
        (_with(BASE, presence_penalty=2), 400, "presence_penalty must be between 0 and 1 inclusive"),
        (_with(BASE, seed=-1), 400, "seed must be a non-negative integer"),
        (_with(BASE, stop_sequences=["a", "b", "c", "d", "e", "f"]), 400, "at most 5"),
        (_with(BASE, temperature="0.5"), 422, "parameter 'temperature' is of type string but should be of type number"),
        (_with(BASE, foo=1), 422, "unknown field: parameter 'foo' is not a valid field"),
        (
            _with(BASE, tools=[{"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}]),
            422,
            "unknown field: parameter 'strict' is not a valid field",
        ),
        (_with(BASE, messages=[{"role": "user", "content": "hi", "name": "ada"}]), 422, "parameter 'name'"),
        (
            _with(BASE, messages=[*user("hi"), {"role": "tool", "tool_call_id": "nope", "content": "x"}]),
            400,
            "tool call id not found in previous tool calls",
        ),
        (
            _with(
                BASE,
                messages=[*user("hi"), {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "x"}],
            ),
            400,
            "tool call id must be provided with tool message",
        ),
        (
            _with(BASE, messages=[*user("hi"), {"role": "assistant", "tool_calls": [CALL, CALL]}]),
            400,
            "cannot have duplicate tool ids",
        ),
        (_with(BASE, messages=[{"role": "assistant"}]), 400, "must have content or tool_calls"),
        (_with(BASE, messages=user("   ")), 400, "must be at least 1 token long"),
        (_with(BASE, tool_choice="REQUIRED"), 400, "tool_choice 'REQUIRED' can only be used when tools are provided"),
        (_with(BASE, tools=TOOLS, tool_choice="ANY"), 400, "tool_choice must be one of 'REQUIRED' or 'NONE'"),
        (
            _with(BASE, tools=TOOLS, response_format={"type": "json_object"}),
            400,
            "response_format is not supported with tools",
        ),
        (_with(BASE, documents=["doc"], response_format={"type": "json_object"}), 400, "not supported with RAG"),
        (_with(BASE, tools=TOOLS, safety_mode="STRICT"), 400, "safety_mode is not supported in combination"),
        (
            _with(BASE, tools=[{"type": "function", "function": {"name": "get-weather", "parameters": {}}}]),
            400,
            "tool names can only contain certain characters",
        ),
        (_with(BASE, tools=[{"type": "function", "function": {"name": "f"}}]), 400, "must have parameters"),
        (
            _with(
                BASE, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]
            ),
            400,
            "must be a base64 data URL or an http(s) URL",
        ),
        (
            _with(BASE, messages=[{"role": "user", "content": [{"type": "image", "url": "https://x.png"}]}]),
            400,
            "invalid content type 'image'",
        ),
        (_with(BASE, thinking={"type": "on"}), 400, "thinking.type must be one of 'enabled' or 'disabled'"),
        (_with(BASE, thinking={"type": "enabled", "budget_tokens": 10}), 422, "parameter 'budget_tokens'"),
    ],
)
def test_cohere_fake_rejects_what_the_api_rejects(fake: CohereFake, body: Any, status: int, message: str) -> None:
    fake.script.push(FakeReply(text="never sent"))
    response = raw_chat(fake, body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"id", "message"}
    assert message in error["message"]
    assert len(fake.script.replies) == 1, "a rejected request consumes no scripted reply"


def test_cohere_fake_authentication(fake: CohereFake) -> None:
    missing = raw_chat(fake, BASE, key=None)
    assert missing.status_code == 401 and missing.json()["message"] == "no api key supplied"
    wrong = raw_chat(fake, BASE, key="co-wrong")
    assert wrong.status_code == 401 and wrong.json()["message"] == "invalid api token"
    assert (
        httpx.post(fake.url + "/v2/chat", content=b"{", headers={"authorization": f"Bearer {COHERE_KEY}"}).status_code
        == 400
    )
    unknown = httpx.get(fake.url + "/v2/nothing")
    assert unknown.status_code == 404 and unknown.text == "404 page not found"


def test_cohere_fake_accepts_a_rich_valid_request(fake: CohereFake) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "https://e.com/a.png", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "tool_plan": "I will check.",
                "tool_calls": [CALL],
                "content": [{"type": "thinking", "thinking": "Use the tool."}],
            },
            {
                "role": "tool",
                "tool_call_id": CALL["id"],
                "content": [
                    {"type": "document", "document": {"data": {"t": 20}, "id": "w1"}},
                    {"type": "text", "text": "ok"},
                ],
            },
        ],
        "tools": TOOLS,
        "strict_tools": True,
        "tool_choice": "NONE",
        "citation_options": {"mode": "FAST"},
        "max_tokens": 50,
        "stop_sequences": ["END"],
        "temperature": 1,
        "seed": 7,
        "frequency_penalty": 0.2,
        "k": 0,
        "p": 0.5,
        "logprobs": True,
        "thinking": {"type": "enabled", "token_budget": 100},
        "priority": 3,
        "stream": False,
    }
    response = raw_chat(fake, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["finish_reason"] == "COMPLETE"
    assert [c["type"] for c in answer["message"]["content"]] == ["thinking", "text"]
    assert "tool_calls" not in answer["message"]  # NONE forbids calls
    json_body = {**BASE, "response_format": {"type": "json_object", "json_schema": WEATHER_PARAMETERS}}
    structured = raw_chat(fake, json_body).json()
    assert json.loads(structured["message"]["content"][0]["text"]) == {"city": "example"}


def test_cohere_fake_stop_sequences_and_max_tokens(fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="one two three four five"), FakeReply(text="one two three four five"))
    stopped = raw_chat(fake, {**BASE, "stop_sequences": ["three"]}).json()
    assert stopped["finish_reason"] == "STOP_SEQUENCE"
    assert stopped["message"]["content"][0]["text"] == "one two "
    cut = raw_chat(fake, {**BASE, "max_tokens": 2}).json()
    assert cut["finish_reason"] == "MAX_TOKENS" and cut["message"]["content"][0]["text"] == "one two"


# ============================================================================ the gateway, end to end


def test_gateway_openai_sdk_chat_with_cohere(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="Paris.", input_tokens=11, output_tokens=2))
    out = oai(gateway).chat.completions.create(
        model=f"cohere/{MODEL}",
        messages=[{"role": "system", "content": "One word."}, {"role": "user", "content": "Capital of France?"}],
        temperature=0.2,
        top_p=0.5,
        max_tokens=64,
        seed=9,
    )
    assert out.choices[0].message.content == "Paris."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (11, 2)
    assert out.model == f"cohere/{MODEL}"
    sent = fake.script.last_request
    assert sent.header("authorization") == f"Bearer {COHERE_KEY}"
    assert sent.json == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "One word."}, {"role": "user", "content": "Capital of France?"}],
        "temperature": 0.2,
        "p": 0.5,
        "max_tokens": 64,
        "seed": 9,
    }


def test_gateway_openai_sdk_stream_with_usage(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="alpha beta gamma", input_tokens=4, output_tokens=3))
    chunks = list(
        oai(gateway).chat.completions.create(
            model=f"cohere/{MODEL}",
            messages=user("Three words"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta gamma"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert fake.script.last_request.json["stream"] is True


def test_gateway_streams_parallel_tool_calls_then_answers_the_results(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(
        FakeReply(
            text="I will check both cities.",
            tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})],
        ),
        FakeReply(text="Oslo is cold, Lima is mild."),
    )
    client = oai(gateway)
    messages: list[Any] = user("Weather in Oslo and Lima?")
    stream = client.chat.completions.create(
        model=f"cohere/{MODEL}", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    content = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["name"] = call.function.name or entry["name"]
                    entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert content == "I will check both cities."  # Cohere's tool_plan, streamed as tool-plan-delta
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_weather"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "Oslo"}, {"city": "Lima"}]
    tool_calls = [
        {
            "id": calls[i]["id"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": calls[i]["arguments"]},
        }
        for i in (0, 1)
    ]
    messages.append({"role": "assistant", "content": content, "tool_calls": tool_calls})
    messages += [{"role": "tool", "tool_call_id": calls[i]["id"], "content": f"result {i}"} for i in (0, 1)]
    second = client.chat.completions.create(model=f"cohere/{MODEL}", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Oslo is cold, Lima is mild."
    sent = fake.script.last_request.json["messages"]
    assert sent[1] == {"role": "assistant", "tool_plan": "I will check both cities.", "tool_calls": tool_calls}
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "result 0"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "result 1"},
    ]


def test_gateway_tool_result_turn_with_the_sdk_message(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Rome"})]), FakeReply(text="Sunny in Rome."))
    client = oai(gateway)
    messages: list[Any] = user("Weather in Rome?")
    first = client.chat.completions.create(
        model=f"cohere/{MODEL}", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    assert fake.script.last_request.json["tool_choice"] == "REQUIRED"
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.content == "I will use the get_weather tool to answer the question."
    assert message.tool_calls is not None and json.loads(message.tool_calls[0].function.arguments) == {"city": "Rome"}  # type: ignore[union-attr]
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": '{"sky": "clear"}'})
    second = client.chat.completions.create(model=f"cohere/{MODEL}", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Sunny in Rome."
    assert fake.script.last_request.json["messages"][2]["tool_call_id"] == message.tool_calls[0].id


def test_gateway_refuses_a_named_tool_choice_before_calling_cohere(gateway: LiveServer, fake: CohereFake) -> None:
    with pytest.raises(openai.BadRequestError, match="'tool_choice' is not supported by provider 'cohere'"):
        oai(gateway).chat.completions.create(
            model=f"cohere/{MODEL}",
            messages=user("Weather?"),
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert fake.script.requests == []


def test_gateway_reasoning_from_cohere_thinking(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="3.", thinking="Two sisters plus Alice."))
    out = oai(gateway).chat.completions.create(
        model="cohere/command-a-reasoning-08-2025",
        messages=user("How many sisters?"),
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    message = out.choices[0].message.model_dump()
    assert message["content"] == "3." and message["reasoning_content"] == "Two sisters plus Alice."
    assert fake.script.last_request.json["thinking"] == {"type": "enabled", "token_budget": 1024}


def test_gateway_v2_envelope_over_raw_http(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="Hello from Cohere"))
    response = httpx.post(
        f"{gateway.url}/models/v2/cohere/{MODEL}",
        headers={"provider-key": COHERE_KEY},
        json={"messages": user("Hi"), "params": {"max_new_tokens": 20, "top_k": 5}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error"] is None
    assert body["output"] == {"role": "assistant", "content": "Hello from Cohere"}
    assert body["provider"]["finish_reason"] == "COMPLETE" and "billed_units" in body["provider"]["usage"]
    assert fake.script.last_request.json["max_tokens"] == 20 and fake.script.last_request.json["k"] == 5


def test_gateway_openai_sse_over_raw_http(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="one two"))
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"provider-key": COHERE_KEY},
        json={"model": f"cohere/{MODEL}", "messages": user("Two words"), "stream": True},
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "one two"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_gateway_keeps_cohere_error_statuses(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(status=429, retry_after=3))
    limited = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"provider-key": COHERE_KEY},
        json={"model": f"cohere/{MODEL}", "messages": user("hi")},
    )
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "rate_limited"
    with pytest.raises(openai.AuthenticationError, match="invalid api token"):
        oai(gateway, key="co-wrong").chat.completions.create(model=f"cohere/{MODEL}", messages=user("hi"))
    with pytest.raises(openai.BadRequestError, match="temperature"):
        oai(gateway).chat.completions.create(model=f"cohere/{MODEL}", messages=user("hi"), temperature=1.5)


def test_gateway_ends_the_stream_on_a_cohere_in_stream_error(gateway: LiveServer, fake: CohereFake) -> None:
    fake.script.push(FakeReply(text="a b c d", stream_error="internal", stream_error_after=3))
    stream = oai(gateway).chat.completions.create(model=f"cohere/{MODEL}", messages=user("hi"), stream=True)
    seen = ""
    with pytest.raises(openai.APIError, match="failed mid-stream"):
        for chunk in stream:
            seen += "".join(c.delta.content or "" for c in chunk.choices)
    assert seen == "a "
