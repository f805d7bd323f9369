"""The fake providers are faithful: the official SDKs talk to them as to the real APIs, and they reject
what the real APIs reject, with the same status, error type and wording."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes import FakeReply, FakeScript, LiveServer, create_anthropic_app, create_openai_app

WEATHER_TOOL_OPENAI: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],
}
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture
def oai() -> Iterator[tuple[FakeScript, str]]:
    script = FakeScript()
    with LiveServer(create_openai_app(script)) as server:
        yield script, server.url


@pytest.fixture
def ant() -> Iterator[tuple[FakeScript, str]]:
    script = FakeScript()
    with LiveServer(create_anthropic_app(script)) as server:
        yield script, server.url


def openai_client(url: str, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=url + "/v1", api_key=kwargs.pop("api_key", "sk-test"), **kwargs)


def anthropic_client(url: str, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=url, api_key=kwargs.pop("api_key", "sk-ant-test"), **kwargs)


USER_HI: Any = [{"role": "user", "content": "Hi there"}]


CALL_1: Any = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
CALL_OBJECT_ARGS: Any = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {}}}
TOOL_REPLY_2: Any = {"role": "tool", "tool_call_id": "call_2", "content": "sunny"}
LOOSE: Any = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


def block(message: Any, index: int = 0) -> Any:
    """A content block of an Anthropic message, untyped (the SDK's block union has no common `.text`)."""
    return message.content[index]


def arguments(call: Any) -> Any:
    """The parsed JSON arguments of an OpenAI function tool call."""
    return json.loads(call.function.arguments)


# =============================================================================================== server


def test_live_server_serves_and_releases_its_port() -> None:
    server = LiveServer(create_openai_app())
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/v1/models", headers={"authorization": "Bearer k"}).status_code == 200
        port = server.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        pass


# =============================================================================================== openai


def test_openai_completion_through_sdk(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(text="Hello from the fake", input_tokens=11, output_tokens=4))
    completion = openai_client(url).chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Be brief."}, *USER_HI], temperature=0.2
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.system_fingerprint
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello from the fake"
    assert choice.message.refusal is None and choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 4)
    assert completion.usage.total_tokens == 15
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.completion_tokens_details is not None
    request = script.last_request
    assert request.path == "/v1/chat/completions"
    assert request.header("authorization") == "Bearer sk-test"
    assert request.json["temperature"] == 0.2


def test_openai_default_reply_echoes_last_user_text(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    completion = openai_client(url).chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert completion.choices[0].message.content == "Hi there"


def test_openai_parallel_tool_calls(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]))
    completion = openai_client(url).chat.completions.create(
        model="gpt-4o",
        messages=USER_HI,
        tools=[WEATHER_TOOL_OPENAI],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [arguments(c) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert all(c.id.startswith("call_") and c.type == "function" for c in calls)
    assert len({c.id for c in calls}) == 2


def test_openai_forced_tool_choice_default_reply(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    completion = openai_client(url).chat.completions.create(
        model="gpt-4o",
        messages=USER_HI,
        tools=[WEATHER_TOOL_OPENAI],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert arguments(call) == {"city": "example"}


def test_openai_stream_text_with_usage(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(text="one two three four"))
    stream = openai_client(url).chat.completions.create(
        model="gpt-4o", messages=USER_HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 4
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


def test_openai_stream_wire_format(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(text="Hi", tool_calls=[("get_weather", {"city": "Oslo"})]))
    body = {"model": "gpt-4o", "messages": USER_HI, "stream": True, "tools": [WEATHER_TOOL_OPENAI]}
    response = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer k"})
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert tool_deltas[0]["index"] == 0 and tool_deltas[0]["id"].startswith("call_")
    assert tool_deltas[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert all(set(d) == {"index", "function"} and set(d["function"]) == {"arguments"} for d in tool_deltas[1:])
    assert json.loads("".join(d["function"]["arguments"] for d in tool_deltas)) == {"city": "Oslo"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and deltas[-1] == {}
    assert "usage" not in chunks[0]


def test_openai_stream_helper_accumulates_tool_calls(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris", "unit": "c"}), ("get_weather", {"city": "Rome"})])
    )
    with openai_client(url).chat.completions.stream(
        model="gpt-4o",
        messages=USER_HI,
        tools=[WEATHER_TOOL_OPENAI],
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [arguments(c) for c in calls] == [{"city": "Paris", "unit": "c"}, {"city": "Rome"}]
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_stop_and_max_tokens_truncate(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    client = openai_client(url)
    script.push(FakeReply(text="alpha beta END gamma"), FakeReply(text="alpha beta gamma delta"))
    stopped = client.chat.completions.create(model="gpt-4o", messages=USER_HI, stop=["END", "zzz"])
    assert stopped.choices[0].message.content == "alpha beta "
    assert stopped.choices[0].finish_reason == "stop"
    cut = client.chat.completions.create(model="gpt-4o", messages=USER_HI, max_completion_tokens=2)
    assert cut.choices[0].message.content == "alpha beta"
    assert cut.choices[0].finish_reason == "length"


def test_openai_refusal_and_n(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    client = openai_client(url)
    script.push(FakeReply(text="I can't help with that.", finish="refusal"), FakeReply(text="ok"))
    refused = client.chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert refused.choices[0].message.content is None
    assert refused.choices[0].message.refusal == "I can't help with that."
    several = client.chat.completions.create(model="gpt-4o", messages=USER_HI, n=2)
    assert [c.index for c in several.choices] == [0, 1]


def test_openai_models_list(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    ids = [m.id for m in openai_client(url).models.list()]
    assert "gpt-4o" in ids


def _openai_error(client: openai.OpenAI, **params: Any) -> openai.APIStatusError:
    params.setdefault("model", "gpt-4o")
    params.setdefault("messages", USER_HI)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(**params)
    return info.value


def test_openai_tool_message_without_preceding_call_is_rejected(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    error = _openai_error(
        openai_client(url), messages=[*USER_HI, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    )
    assert isinstance(error, openai.BadRequestError) and error.status_code == 400
    body = error.response.json()["error"]
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "messages.[1].role"
    assert "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'" in body["message"]


def test_openai_unanswered_tool_call_is_rejected(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [
        *USER_HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "?"},
    ]
    error = _openai_error(openai_client(url), messages=messages)
    assert "did not have response messages: call_9" in error.message


def test_openai_unknown_parameter_is_rejected(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    error = _openai_error(openai_client(url), extra_body={"top_k": 5})
    assert error.status_code == 400
    assert error.response.json() == {
        "error": {
            "message": "Unrecognized request argument supplied: top_k",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


@pytest.mark.parametrize(
    ("params", "param", "code", "fragment"),
    [
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value", "Expected a value <= 2"),
        ({"top_p": -0.1}, "top_p", "decimal_below_min_value", "Expected a value >= 0"),
        ({"n": 0}, "n", "integer_below_min_value", "Expected a value >= 1"),
        ({"max_tokens": 0}, "max_tokens", "integer_below_min_value", "Expected a value >= 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length", "maximum length 4"),
        ({"messages": []}, "messages", "empty_array", "empty array"),
        ({"tool_choice": "auto"}, "tool_choice", None, "only allowed when 'tools' are specified"),
        (
            {"messages": [*USER_HI, {"role": "assistant", "tool_calls": [CALL_OBJECT_ARGS]}]},
            "messages[1].tool_calls[0].function.arguments",
            "invalid_type",
            "expected a string, but got an object instead",
        ),
        (
            {"messages": [*USER_HI, {"role": "assistant", "tool_calls": [CALL_1]}, TOOL_REPLY_2]},
            "messages.[2].tool_call_id",
            None,
            "'tool_call_id' of 'call_2' not found in 'tool_calls' of previous message",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": LOOSE}}},
            "response_format",
            "invalid_json_schema",
            "'additionalProperties' is required to be supplied and to be false",
        ),
        ({"stream_options": {"include_usage": True}}, "stream_options", None, "only allowed when 'stream'"),
        ({"response_format": {"type": "json_object"}}, "messages", None, "must contain the word 'json'"),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value", "Supported values"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role", "invalid_value", "'bot'"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter", "Missing"),
        (
            {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
            "tools[0].function.name",
            "invalid_value",
            "does not match pattern",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "invalid_value",
            "unsupported MIME type 'text/plain'",
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x.io/a.png"}}]}
                ]
            },
            "messages[0]",
            "invalid_value",
            "Image URLs are only allowed for messages with role 'user'",
        ),
    ],
)
def test_openai_validation_errors(
    oai: tuple[FakeScript, str], params: dict[str, Any], param: str, code: str | None, fragment: str
) -> None:
    _, url = oai
    error = _openai_error(openai_client(url), **params)
    body = error.response.json()["error"]
    assert error.status_code == 400
    assert (body["type"], body["param"], body["code"]) == ("invalid_request_error", param, code)
    assert fragment in body["message"]


def test_openai_accepts_rich_valid_request(oai: tuple[FakeScript, str]) -> None:
    _, url = oai
    png = "data:image/png;base64,iVBORw0KGgo="
    call: Any = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    completion = openai_client(url).chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "developer", "content": "Answer in json."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[WEATHER_TOOL_OPENAI],
        tool_choice="auto",
        response_format={"type": "json_object"},
        stop="\n\n",
        presence_penalty=1.5,
        seed=7,
    )
    assert json.loads(completion.choices[0].message.content or "") == {"echo": "Look"}


def test_openai_authentication(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    missing = httpx.post(url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": USER_HI})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    script.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(url, api_key="sk-wrong-key-123").chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert info.value.code == "invalid_api_key"


def test_openai_unknown_model_and_bad_json(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.models = frozenset({"gpt-4o"})
    with pytest.raises(openai.NotFoundError) as info:
        openai_client(url).chat.completions.create(model="gpt-5-nope", messages=USER_HI)
    assert info.value.code == "model_not_found"
    garbage = httpx.post(
        url + "/v1/chat/completions",
        content=b"{nope",
        headers={"authorization": "Bearer k", "content-type": "application/json"},
    )
    assert garbage.status_code == 400 and "could not parse the JSON body" in garbage.json()["error"]["message"]


def test_openai_429_carries_retry_after_and_sdk_retries(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(status=429, retry_after=2))
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(url).chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"
    script.push(FakeReply(status=429, retry_after=0), FakeReply(text="after retry"))
    done = openai_client(url, max_retries=1).chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert done.choices[0].message.content == "after retry"
    assert len(script.requests) == 3


def test_openai_server_errors_and_timeouts(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(status=503), FakeReply(delay_s=1.0))
    with pytest.raises(openai.InternalServerError) as info:
        openai_client(url).chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert info.value.status_code == 503
    with pytest.raises(openai.APITimeoutError):
        openai_client(url, timeout=0.2).chat.completions.create(model="gpt-4o", messages=USER_HI)


def test_openai_cut_stream_and_stream_error(oai: tuple[FakeScript, str]) -> None:
    script, url = oai
    script.push(FakeReply(text="a b c d e f", cut_stream_after=3), FakeReply(text="a b c", stream_error="server_error"))
    client = openai_client(url)
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        list(client.chat.completions.create(model="gpt-4o", messages=USER_HI, stream=True))
    with pytest.raises(openai.APIError) as info:
        list(client.chat.completions.create(model="gpt-4o", messages=USER_HI, stream=True))
    assert info.value.type == "server_error"


# ============================================================================================ anthropic


def test_anthropic_message_through_sdk(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    script.push(FakeReply(text="Hello from Claude", input_tokens=9, output_tokens=3))
    raw = anthropic_client(url).messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        system="Be brief.",
        messages=USER_HI,
    )
    assert raw.headers["request-id"].startswith("req_")
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-4-6"
    assert [b.type for b in message.content] == ["text"]
    assert block(message).text == "Hello from Claude"
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 3)
    assert message.usage.cache_read_input_tokens == 0
    request = script.last_request
    # SDK 2.x authenticates with "Authorization: Bearer" and a dated anthropic-version; x-api-key is covered
    # by the raw-httpx tests below.
    assert request.header("authorization") == "Bearer sk-ant-test" and request.header("anthropic-version")
    assert request.json["system"] == "Be brief."


def test_anthropic_tool_use_round_trip(ant: tuple[FakeScript, str]) -> None:
    _, url = ant
    client = anthropic_client(url)
    first = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=USER_HI,
        tools=[WEATHER_TOOL_ANTHROPIC],
        tool_choice={"type": "any"},
    )
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.id.startswith("toolu_") and use.input == {"city": "example"}
    second = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=[WEATHER_TOOL_ANTHROPIC],
        messages=[
            *USER_HI,
            {"role": "assistant", "content": first.content},  # the SDK serialises its own blocks
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
            {"role": "user", "content": "And tomorrow?"},  # consecutive user turns are merged, not rejected
        ],
    )
    assert block(second).text == "And tomorrow?"


def test_anthropic_stream_helper_with_text_and_tools(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    script.push(
        FakeReply(
            text="Let me check.",
            tool_calls=[("get_weather", {"city": "Paris", "unit": "c"}), ("get_weather", {"city": "Rome"})],
        )
    )
    with anthropic_client(url).messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=USER_HI,
        tools=[WEATHER_TOOL_ANTHROPIC],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Let me check."
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert [block(final, i).input for i in (1, 2)] == [{"city": "Paris", "unit": "c"}, {"city": "Rome"}]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens > 1 and final.usage.input_tokens > 0


def test_anthropic_stream_wire_format(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    script.push(FakeReply(text="Hi you", tool_calls=[("get_weather", {"city": "Oslo"})]))
    body = {"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": USER_HI, "stream": True,
            "tools": [WEATHER_TOOL_ANTHROPIC]}  # fmt: skip
    response = httpx.post(url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for raw in response.text.strip().split("\n\n"):
        name_line, data_line = raw.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == name_line[7:]
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    tool_start = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)
    assert tool_start["content_block"]["type"] == "tool_use" and tool_start["content_block"]["input"] == {}
    partials = [e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("type") == "input_json_delta"]
    assert partials[0] == "" and json.loads("".join(partials)) == {"city": "Oslo"}
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] > 0


def test_anthropic_stop_sequence_max_tokens_and_thinking(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    client = anthropic_client(url)
    script.push(FakeReply(text="one two STOP three"), FakeReply(text="one two three four"), FakeReply(text="Answer"))
    stopped = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=USER_HI, stop_sequences=["STOP"]
    )
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "STOP")
    assert block(stopped).text == "one two "
    cut = client.messages.create(model="claude-sonnet-4-6", max_tokens=2, messages=USER_HI)
    assert (cut.stop_reason, block(cut).text) == ("max_tokens", "one two")
    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=4096,
        messages=USER_HI,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert block(final).signature


def _anthropic_error(client: anthropic.Anthropic, **params: Any) -> anthropic.APIStatusError:
    params.setdefault("model", "claude-sonnet-4-6")
    params.setdefault("max_tokens", 100)
    params.setdefault("messages", USER_HI)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(**params)
    return info.value


def test_anthropic_missing_max_tokens_is_rejected(ant: tuple[FakeScript, str]) -> None:
    _, url = ant
    response = httpx.post(
        url + "/v1/messages", json={"model": "claude-sonnet-4-6", "messages": USER_HI}, headers=ANTHROPIC_HEADERS
    )
    assert response.status_code == 400
    assert response.headers["request-id"].startswith("req_")
    body = response.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}


def test_anthropic_system_role_in_messages_is_rejected(ant: tuple[FakeScript, str]) -> None:
    _, url = ant
    error = _anthropic_error(anthropic_client(url), messages=[{"role": "system", "content": "Be brief."}, *USER_HI])
    assert isinstance(error, anthropic.BadRequestError)
    body = error.response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith('messages: Unexpected role "system"')


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"extra_body": {"frequency_penalty": 1}}, "frequency_penalty: Extra inputs are not permitted"),
        ({"extra_body": {"temperature": 1.5}}, "temperature: Input should be less than or equal to 1"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": [{"role": "assistant", "content": "Hi"}]}, 'messages: first message must use the "user" role'),
        ({"messages": [{"role": "user", "content": ""}]}, "messages.0: all messages must have non-empty content"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}]}
                ]
            },
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_x.",
        ),
        (
            {
                "messages": [
                    *USER_HI,
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "toolu_y", "name": "get_weather", "input": {}}],
                    },
                    {"role": "user", "content": "go on"},
                ]
            },
            "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_y.",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "aGk="}}
                        ],
                    }
                ]
            },
            "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg'",
        ),
        (
            {"tools": [{"name": "t", "input_schema": {"type": "string"}}]},
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice: Input tag 'sometimes' found using 'type'"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 512}},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]}]},
            "messages.0.content.0: `tool_use` blocks can only be in `assistant` messages",
        ),
        (
            {"messages": [*USER_HI, {"role": "assistant", "content": "The answer is "}]},
            "messages: final assistant content cannot end with trailing whitespace",
        ),
        ({"metadata": {"user_id": "u", "team": "x"}}, "metadata.team: Extra inputs are not permitted"),
    ],
)
def test_anthropic_validation_errors(ant: tuple[FakeScript, str], params: dict[str, Any], message: str) -> None:
    _, url = ant
    error = _anthropic_error(anthropic_client(url), **params)
    assert error.status_code == 400
    body = error.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(message)
    assert body["request_id"] == error.response.headers["request-id"]


def test_anthropic_accepts_rich_valid_request(ant: tuple[FakeScript, str]) -> None:
    _, url = ant
    message = anthropic_client(url).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {"role": "assistant", "content": "It is"},
        ],
        metadata={"user_id": "user-1"},
        stop_sequences=["\n\nHuman:"],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        tools=[WEATHER_TOOL_ANTHROPIC],
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
    )
    assert block(message).text == "Describe"


def test_anthropic_authentication_and_version_headers(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": USER_HI}
    no_key = httpx.post(url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    no_version = httpx.post(url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["message"] == "anthropic-version: header is required"
    script.api_key = "sk-ant-right"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(url, api_key="sk-ant-wrong").messages.create(model="m", max_tokens=5, messages=USER_HI)


def test_anthropic_429_and_529(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    script.push(FakeReply(status=429, retry_after=3), FakeReply(status=529))
    client = anthropic_client(url)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=USER_HI)
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.response.json()["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=USER_HI)
    assert overloaded.value.status_code == 529
    assert overloaded.value.response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    script.push(FakeReply(status=529, retry_after=0), FakeReply(text="recovered"))
    retried = anthropic_client(url, max_retries=1).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=5,
        messages=USER_HI,
    )
    assert block(retried).text == "recovered"


def test_anthropic_stream_error_event_and_cut(ant: tuple[FakeScript, str]) -> None:
    script, url = ant
    script.push(
        FakeReply(text="a b c", stream_error="overloaded_error", stream_error_after=3),
        FakeReply(text="a b c d", cut_stream_after=4),
    )
    client = anthropic_client(url)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=50,
            messages=USER_HI,
        ) as stream,
    ):
        stream.get_final_message()
    assert "overloaded_error" in str(info.value)
    # SDK 2.x runs on the "httpx2" fork, so the transport error is matched by name and message.
    with (
        pytest.raises(Exception, match="incomplete chunked read") as cut,
        client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=50,
            messages=USER_HI,
        ) as stream,
    ):
        stream.get_final_message()
    assert type(cut.value).__name__ in ("RemoteProtocolError", "APIConnectionError")


def test_anthropic_models_and_unknown_path(ant: tuple[FakeScript, str]) -> None:
    _, url = ant
    ids = [m.id for m in anthropic_client(url).models.list()]
    assert "claude-sonnet-4-6" in ids
    missing = httpx.get(url + "/v1/nothing", headers=ANTHROPIC_HEADERS)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
