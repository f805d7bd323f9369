"""The Mistral provider: the official `mistralai` SDK proves the fake speaks the real API, then the gateway drives
the fake end to end through the `openai` SDK and raw HTTP (tool-call ids mapped, reasoning, errors)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from mistralai.client import Mistral
from mistralai.client import errors as mistral_errors

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app
from unimodel.providers.mistral import MistralAdapter, upstream_call_id

from .fakes.mistral_fake import create_mistral_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer

MISTRAL_KEY = "mk-test-Lp42secretMISTRALkey9999"
MODEL = "mistral/mistral-large-latest"
CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class MistralFake:
    def __init__(self, script: FakeScript, server: LiveServer) -> None:
        self.script = script
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def last_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.script.last_request.json
        return body


@pytest.fixture
def fake() -> Iterator[MistralFake]:
    script = FakeScript(api_key=MISTRAL_KEY)
    with LiveServer(create_mistral_app(script)) as server:
        yield MistralFake(script, server)


@pytest.fixture
def sdk(fake: MistralFake) -> Mistral:
    return Mistral(api_key=MISTRAL_KEY, server_url=fake.url)


@pytest.fixture
def gateway(fake: MistralFake) -> Iterator[LiveServer]:
    config = ProviderConfig(base_url=fake.url, max_retries=0, read_timeout_s=10.0)
    with LiveServer(create_app(Settings(providers={"mistral": config}))) as live:
        yield live


def openai_client(gateway: LiveServer, key: str = MISTRAL_KEY) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="any-gateway-key", default_headers={"provider-key": key}, max_retries=0
    )


def chat(fake: MistralFake, body: dict[str, Any], key: str | None = MISTRAL_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(fake.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


# ------------------------------------------------------------------------ the official SDK against the fake


def test_mistral_sdk_completes_a_chat_against_the_fake(fake: MistralFake, sdk: Mistral) -> None:
    fake.script.push(FakeReply(text="Comté, without a doubt.", input_tokens=11, output_tokens=4))
    out = sdk.chat.complete(
        model="mistral-large-latest",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Best French cheese?"}],
        temperature=0.3,
        max_tokens=50,
        random_seed=7,
        safe_prompt=True,
    )
    assert out.choices[0].message.content == "Comté, without a doubt."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.prompt_tokens == 11 and out.usage.completion_tokens == 4
    assert re.fullmatch(r"[0-9a-f]{32}", out.id)
    assert fake.last_body["random_seed"] == 7 and fake.last_body["safe_prompt"] is True


def test_mistral_sdk_streams_text_with_usage_in_the_last_chunk(fake: MistralFake, sdk: Mistral) -> None:
    fake.script.push(FakeReply(text="one two three", input_tokens=5, output_tokens=3))
    events = list(sdk.chat.stream(model="mistral-small-latest", messages=[{"role": "user", "content": "Count"}]))
    text = "".join(
        e.data.choices[0].delta.content or "" for e in events if isinstance(e.data.choices[0].delta.content, str)
    )
    assert text == "one two three"
    assert [e.data.choices[0].finish_reason for e in events][-1] == "stop"
    assert events[-1].data.usage is not None and events[-1].data.usage.completion_tokens == 3
    assert all(e.data.usage is None for e in events[:-1])


def test_mistral_sdk_tool_call_round_trip_keeps_mistral_ids(fake: MistralFake, sdk: Mistral) -> None:
    fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]), FakeReply(text="Sunny."))
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = sdk.chat.complete(model="mistral-large-latest", messages=messages, tools=[WEATHER], tool_choice="any")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert CALL_ID.match(call.id or "") and json.loads(str(call.function.arguments)) == {"city": "Paris"}
    messages += [message, {"role": "tool", "name": "get_weather", "tool_call_id": call.id, "content": "sunny"}]
    second = sdk.chat.complete(model="mistral-large-latest", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Sunny."
    sent = fake.last_body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2]["tool_call_id"] == call.id


def test_mistral_sdk_streams_each_tool_call_whole(fake: MistralFake, sdk: Mistral) -> None:
    fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]))
    events = list(
        sdk.chat.stream(model="mistral-large-latest", messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER])
    )
    calls = [c for e in events for c in e.data.choices[0].delta.tool_calls or []]
    assert [(c.index, json.loads(str(c.function.arguments))) for c in calls] == [
        (0, {"city": "Oslo"}),
        (1, {"city": "Lima"}),
    ]
    assert all(CALL_ID.match(c.id or "") for c in calls)
    assert events[-1].data.choices[0].finish_reason == "tool_calls" and events[-1].data.usage is not None


def test_mistral_sdk_reads_thinking_chunks_of_a_reasoning_model(fake: MistralFake, sdk: Mistral) -> None:
    fake.script.push(FakeReply(text="4", thinking="2 + 2 is 4."))
    out = sdk.chat.complete(model="magistral-medium-latest", messages=[{"role": "user", "content": "2+2?"}])
    content = out.choices[0].message.content
    assert isinstance(content, list)
    assert content[0].type == "thinking" and content[0].thinking[0].text == "2 + 2 is 4."  # type: ignore[union-attr]
    assert content[1].type == "text" and content[1].text == "4"  # type: ignore[union-attr]


def test_mistral_sdk_sees_the_real_errors(fake: MistralFake, sdk: Mistral) -> None:
    bad_id = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_abc123", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "y"},
    ]
    with pytest.raises(mistral_errors.SDKError) as info:
        sdk.chat.complete(model="mistral-large-latest", messages=bad_id)
    assert info.value.status_code == 400
    assert "Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9." in info.value.body
    with pytest.raises(mistral_errors.HTTPValidationError) as validation:
        sdk.chat.complete(model="mistral-large-latest", messages=[{"role": "user", "content": "x"}], temperature=1.6)
    detail = validation.value.data.detail or []
    assert [(d.loc, d.type) for d in detail] == [(["body", "temperature"], "less_than_equal")]
    with pytest.raises(mistral_errors.SDKError) as auth:
        Mistral(api_key="wrong", server_url=fake.url).chat.complete(
            model="mistral-large-latest", messages=[{"role": "user", "content": "x"}]
        )
    assert auth.value.status_code == 401


# ------------------------------------------------------------------------------ the fake validates like the API

TOOL_CALL = {"id": "a1B2c3D4e", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
VALIDATION_CASES = [
    ("unknown field", {"user": "u1"}, 422, "extra_forbidden", ["body", "user"]),
    ("name on a user message", {"messages": [{"role": "user", "content": "x", "name": "bob"}]}, 422,
     "extra_forbidden", ["body", "messages", 0, "user", "name"]),
    ("developer role", {"messages": [{"role": "developer", "content": "x"}]}, 422, "union_tag_invalid",
     ["body", "messages", 0]),
    ("temperature above 1.5", {"temperature": 1.51}, 422, "less_than_equal", ["body", "temperature"]),
    ("missing model", {"model": None}, 422, "missing", ["body", "model"]),
    ("tool message without a call", {"messages": [{"role": "user", "content": "x"},
     {"role": "tool", "tool_call_id": "a1B2c3D4e", "content": "y"}]}, 400,
     "Unexpected role 'tool' after role 'user'", None),
    ("user right after tool", {"messages": [{"role": "user", "content": "x"},
     {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
     {"role": "tool", "tool_call_id": "a1B2c3D4e", "content": "y"}, {"role": "user", "content": "z"}]}, 400,
     "Unexpected role 'user' after role 'tool'", None),
    ("unanswered call", {"messages": [{"role": "user", "content": "x"},
     {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL, {**TOOL_CALL, "id": "Z9y8X7w6V"}]},
     {"role": "tool", "tool_call_id": "a1B2c3D4e", "content": "y"}]}, 400,
     "Not the same number of function calls and responses", None),
    ("trailing assistant without prefix", {"messages": [{"role": "user", "content": "x"},
     {"role": "assistant", "content": "y"}]}, 400,
     "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant", None),
    ("ten-character tool call id", {"messages": [{"role": "user", "content": "x"},
     {"role": "assistant", "content": "", "tool_calls": [{**TOOL_CALL, "id": "a1B2c3D4e5"}]},
     {"role": "tool", "tool_call_id": "a1B2c3D4e5", "content": "y"}]}, 400,
     "Tool call id was a1B2c3D4e5 but must be a-z, A-Z, 0-9, with a length of 9.", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "status", "what", "loc"), [c[1:] for c in VALIDATION_CASES], ids=[c[0] for c in VALIDATION_CASES]
)
def test_mistral_fake_refuses_what_the_api_refuses(
    fake: MistralFake, change: dict[str, Any], status: int, what: str, loc: list[Any] | None
) -> None:
    body = {"model": "mistral-large-latest", "messages": [{"role": "user", "content": "Hello"}], **change}
    body = {k: v for k, v in body.items() if v is not None}
    fake.script.push(FakeReply(text="never sent"))
    response = chat(fake, body)
    assert response.status_code == status
    answer = response.json()
    if status == 422:
        assert [(d["type"], d["loc"]) for d in answer["detail"]] == [(what, loc)]
    else:
        assert answer["object"] == "error" and answer["message"] == what
    assert len(fake.script.replies) == 1  # a refused request consumes no reply


def test_mistral_fake_accepts_the_bridged_tool_turn_and_a_prefix(fake: MistralFake) -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "name": "get_weather", "tool_call_id": "a1B2c3D4e", "content": "y"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "z"},
        {"role": "assistant", "content": "Sure,", "prefix": True},
    ]
    assert chat(fake, {"model": "mistral-large-latest", "messages": messages}).status_code == 200


def test_mistral_fake_wants_a_bearer_key(fake: MistralFake) -> None:
    response = chat(fake, {"model": "mistral-large-latest", "messages": [{"role": "user", "content": "x"}]}, key=None)
    assert response.status_code == 401 and response.json()["message"] == "Unauthorized"


# ----------------------------------------------------------------------------------------- adapter details


def test_tool_call_ids_map_to_nine_alphanumerics_deterministically() -> None:
    ids = ["call_abc123XYZdef456GHI789jk", "toolu_01A09q90qw90lq917835lq9", "call_1", "call_2", "x" * 200, "é-ü"]
    mapped = [upstream_call_id(i) for i in ids]
    assert all(CALL_ID.match(m) for m in mapped)
    assert len(set(mapped)) == len(ids)
    assert mapped == [upstream_call_id(i) for i in ids]  # stateless: the same id maps the same on every turn
    assert upstream_call_id("gSIMJiOkT") == "gSIMJiOkT"  # Mistral's own ids pass through


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (422, {"detail": [{"type": "extra_forbidden", "loc": ["body", "messages", 0, "user", "name"],
                           "msg": "Extra inputs are not permitted", "input": "bob"}]},
         "messages.0.user.name: Extra inputs are not permitted"),
        (422, {"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", "n"],
                                                          "msg": "Extra inputs are not permitted", "input": 1}]},
               "type": "invalid_request_error", "param": None, "code": None},
         "n: Extra inputs are not permitted"),
        (422, {"object": "error", "message": '{"detail":[{"type":"extra_forbidden","loc":["body","frequency_penalty"],'
                                             '"msg":"Extra inputs are not permitted","input":0.0}]}',
               "type": "internal_error_proxy", "param": None, "code": "1000"},
         "frequency_penalty: Extra inputs are not permitted"),
        (400, {"object": "error", "message": "Unexpected role 'user' after role 'tool'",
               "type": "invalid_request_message_order", "param": None, "code": "3230"},
         "Unexpected role 'user' after role 'tool'"),
        (429, {"message": "Requests rate limit exceeded"}, "Requests rate limit exceeded"),
    ],
)  # fmt: skip
def test_mistral_error_bodies_become_one_readable_message(status: int, body: dict[str, Any], message: str) -> None:
    error = MistralAdapter(ProviderConfig()).map_error(status, body, {})
    assert message in error.message
    assert error.status == (400 if status == 422 else status)
    assert error.code == ("rate_limited" if status == 429 else "upstream_invalid_request")


# ------------------------------------------------------------------------------------- the gateway end to end


def test_openai_sdk_chats_with_mistral_through_the_gateway(gateway: LiveServer, fake: MistralFake) -> None:
    fake.script.push(FakeReply(text="Paris.", input_tokens=12, output_tokens=2))
    out = openai_client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        max_completion_tokens=32,
        seed=11,
        temperature=0.2,
    )
    assert out.choices[0].message.content == "Paris." and out.choices[0].finish_reason == "stop"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (12, 2)
    assert out.model == MODEL
    sent = fake.last_body
    assert sent["max_tokens"] == 32 and sent["random_seed"] == 11 and "seed" not in sent
    assert fake.script.last_request.header("authorization") == f"Bearer {MISTRAL_KEY}"
    assert fake.script.last_request.path == "/v1/chat/completions"


def test_openai_sdk_streams_mistral_with_usage(gateway: LiveServer, fake: MistralFake) -> None:
    fake.script.push(FakeReply(text="alpha beta gamma", input_tokens=6, output_tokens=3))
    stream = openai_client(gateway).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Three words"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta gamma"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert "stream_options" not in fake.last_body and fake.last_body["stream"] is True


def test_client_openai_style_tool_call_ids_survive_a_mistral_turn(gateway: LiveServer, fake: MistralFake) -> None:
    """The client's history holds ids Mistral would refuse; it gets its answer, and Mistral sees 9-character ids."""
    fake.script.push(FakeReply(text="18 degrees in Paris, 24 in Tokyo."))
    client_ids = ["call_abc123XYZdef456GHI789jk", "call_Mn34Op56Qr78St90Uv12Wx34"]
    messages: list[Any] = [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
            for cid, c in zip(client_ids, ["Paris", "Tokyo"], strict=True)]},
        {"role": "tool", "tool_call_id": client_ids[0], "content": "18"},
        {"role": "tool", "tool_call_id": client_ids[1], "content": "24"},
    ]  # fmt: skip
    out = openai_client(gateway).chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert out.choices[0].message.content == "18 degrees in Paris, 24 in Tokyo."
    sent = fake.last_body["messages"]
    upstream = [c["id"] for c in sent[1]["tool_calls"]]
    assert upstream == [upstream_call_id(i) for i in client_ids] and all(CALL_ID.match(i) for i in upstream)
    assert [(m["tool_call_id"], m["name"]) for m in sent[2:]] == [
        (upstream[0], "get_weather"),
        (upstream[1], "get_weather"),
    ]
    assert sent[1]["content"] == ""


def test_openai_sdk_tool_round_trip_with_mistral_ids_and_a_follow_up_question(
    gateway: LiveServer, fake: MistralFake
) -> None:
    fake.script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]), FakeReply(text="Sunny."), FakeReply(text="Oui.")
    )
    client = openai_client(gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], tool_choice="required")  # type: ignore[list-item]
    assert fake.last_body["tool_choice"] == "any"
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and calls is not None
    assert first.choices[0].message.content is None
    mistral_id = calls[0].id
    assert CALL_ID.match(mistral_id)
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": mistral_id, "content": "sunny"}]  # fmt: skip
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert second.choices[0].message.content == "Sunny."
    sent = fake.last_body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == mistral_id and sent[2]["tool_call_id"] == mistral_id
    # The client goes on with a user message right after the tool result: Mistral needs an assistant turn between.
    messages.append({"role": "user", "content": "In French?"})
    third = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert third.choices[0].message.content == "Oui."
    assert [m["role"] for m in fake.last_body["messages"]] == ["user", "assistant", "tool", "assistant", "user"]


def test_openai_sdk_streams_parallel_mistral_tool_calls(gateway: LiveServer, fake: MistralFake) -> None:
    fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]))
    stream = openai_client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Oslo and Lima?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] = (call.function.name if call.function else None) or entry["name"]
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [json.loads(c["arguments"]) for c in calls.values()] == [{"city": "Oslo"}, {"city": "Lima"}]
    assert all(CALL_ID.match(c["id"]) and c["name"] == "get_weather" for c in calls.values())


def test_magistral_reasoning_reaches_the_openai_client(gateway: LiveServer, fake: MistralFake) -> None:
    fake.script.push(FakeReply(text="391", thinking="17 × 23 = 340 + 51 = 391."))
    out = openai_client(gateway).chat.completions.create(
        model="mistral/magistral-medium-latest", messages=[{"role": "user", "content": "17 × 23?"}]
    )
    message = out.choices[0].message.model_dump()
    assert message["content"] == "391" and message["reasoning_content"] == "17 × 23 = 340 + 51 = 391."
    fake.script.push(FakeReply(text="400", thinking="391 + 9 = 400."))
    stream = openai_client(gateway).chat.completions.create(
        model="mistral/magistral-medium-latest", messages=[{"role": "user", "content": "391 + 9?"}], stream=True
    )
    deltas = [c.choices[0].delta.model_dump() for c in stream if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "391 + 9 = 400."
    assert "".join(d.get("content") or "" for d in deltas) == "400"


def test_unsupported_and_out_of_range_parameters_are_refused_by_name(gateway: LiveServer, fake: MistralFake) -> None:
    client = openai_client(gateway)
    hello = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="'top_k' is not supported by provider 'mistral'"):
        client.chat.completions.create(model=MODEL, messages=hello, extra_body={"top_k": 5})  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="'user' is not supported by provider 'mistral'"):
        client.chat.completions.create(model=MODEL, messages=hello, user="u-1")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match=r"'temperature' must be at most 1\.5"):
        client.chat.completions.create(model=MODEL, messages=hello, temperature=1.9)  # type: ignore[arg-type]
    assert fake.script.requests == []


def test_mistral_errors_keep_their_meaning_through_the_gateway(gateway: LiveServer, fake: MistralFake) -> None:
    url = gateway.url + "/v1/chat/completions"
    headers = {"provider-key": MISTRAL_KEY}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    invalid = httpx.post(url, json={**body, "prompt_mode": "fast"}, headers=headers, timeout=10)
    assert invalid.status_code == 400
    error = invalid.json()["error"]
    assert (
        error["code"] == "upstream_invalid_request" and "prompt_mode: Input should be 'reasoning'" in error["message"]
    )
    fake.script.push(FakeReply(status=429, retry_after=3))
    limited = httpx.post(url, json=body, headers=headers, timeout=10)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "rate_limited"
    wrong_key = httpx.post(url, json=body, headers={"provider-key": "wrong"}, timeout=10)
    assert wrong_key.status_code == 401 and wrong_key.json()["error"]["code"] == "provider_auth_failed"
    assert "wrong" not in wrong_key.text


def test_bytez_v2_route_runs_a_mistral_model(gateway: LiveServer, fake: MistralFake) -> None:
    fake.script.push(FakeReply(text="Bonjour !"))
    response = httpx.post(
        gateway.url + "/models/v2/mistral/mistral-small-latest",
        json={"input": [{"role": "user", "content": "Say hello in French"}], "params": {"max_new_tokens": 20}},
        headers={"provider-key": MISTRAL_KEY},
        timeout=10,
    )
    answer = response.json()
    assert response.status_code == 200 and answer["error"] is None
    assert answer["output"] == {"role": "assistant", "content": "Bonjour !"}
    assert answer["provider"]["object"] == "chat.completion"
    assert fake.last_body["max_tokens"] == 20


def test_an_error_in_a_mistral_stream_ends_the_openai_stream(gateway: LiveServer, fake: MistralFake) -> None:
    fake.script.push(FakeReply(text="one two three four", stream_error="internal_server_error", stream_error_after=3))
    stream = openai_client(gateway).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError, match="Internal server error"):
        for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text == "one two "
