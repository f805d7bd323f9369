"""The Google (Gemini API) provider.

1. The fake Gemini API is faithful: the official `google-genai` SDK drives it (generate_content, streams,
   function calling, chats with Gemini 3 thought signatures, structured output, errors), and it rejects what
   the real API rejects, in the real API's words.
2. The gateway end to end: the openai SDK and raw httpx call `google/gemini-…` through the fake.
3. Adapter details no vector shows (image URIs, the http(s) refusal).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from unimodel.config import ProviderConfig, Settings
from unimodel.gateway import create_app
from unimodel.protocol import ChatRequest, ImagePart, InvalidRequest, Message, TextPart, UnsupportedParameter
from unimodel.providers import create_adapter

from .conftest import Fake
from .fakes.google_fake import create_google_app
from .fakes.script import FakeReply, FakeScript
from .fakes.server import LiveServer

GOOGLE_KEY = "AIzaSyTest-Gm42secretGOOGLEkey000000000"
FLASH = "gemini-2.5-flash"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
WEATHER_DECLARATION = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather for a city",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}),
)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture
def google_fake() -> Iterator[Fake]:
    script = FakeScript(api_key=GOOGLE_KEY)
    with LiveServer(create_google_app(script)) as server:
        yield Fake(script, server)


@pytest.fixture
def google_gateway(google_fake: Fake) -> Iterator[LiveServer]:
    settings = Settings(
        providers={"google": ProviderConfig(base_url=google_fake.url, max_retries=0, read_timeout_s=10.0)}
    )
    with LiveServer(create_app(settings)) as live:
        yield live


def sdk(fake: Fake, key: str = GOOGLE_KEY) -> genai.Client:
    options = types.HttpOptions(
        base_url=fake.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=key, http_options=options)


def post(fake: Fake, body: Any, model: str = FLASH, method: str = "generateContent") -> httpx.Response:
    return httpx.post(f"{fake.url}/v1beta/models/{model}:{method}", json=body, headers={"x-goog-api-key": GOOGLE_KEY})


def openai_client(gateway: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key="any-gateway-key",
        default_headers={"provider-key": GOOGLE_KEY},
        max_retries=0,
    )


# ============================================================================ the fake, through the SDK


def test_sdk_generate_content_against_the_fake(google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(text="Paris.", input_tokens=9, output_tokens=2))
    client = sdk(google_fake)
    config = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2, max_output_tokens=64)
    response = client.models.generate_content(model=FLASH, contents="Capital of France?", config=config)
    assert response.text == "Paris."
    assert response.candidates is not None and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (9, 2)
    assert usage.thoughts_token_count == 8 and usage.total_token_count == 19  # 2.5 models think by default
    assert response.model_version == FLASH and response.response_id
    sent = google_fake.script.last_request
    assert sent.path == f"/v1beta/models/{FLASH}:generateContent"
    assert sent.header("x-goog-api-key") == GOOGLE_KEY
    assert sent.json["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 64}


def test_sdk_stream_against_the_fake(google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(text="one two three four five six seven"))
    client = sdk(google_fake)  # the SDK closes its HTTP client when the Client object is collected
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="Count to seven"))
    assert "".join(c.text or "" for c in chunks) == "one two three four five six seven"
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates]
    assert finishes[:-1] == [None] * (len(chunks) - 1) and finishes[-1] == types.FinishReason.STOP
    counts = [c.usage_metadata.candidates_token_count for c in chunks if c.usage_metadata]
    assert counts == sorted(counts) and counts[-1] == 7  # a running total
    assert google_fake.script.last_request.query == "alt=sse"


def test_fake_stream_wire_format(google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(text="alpha beta"))
    raw = post(google_fake, {"contents": [{"parts": [{"text": "hi"}]}]}, method="streamGenerateContent?alt=sse")
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = raw.text.split("\r\n\r\n")
    assert events[-1] == "" and all(e.startswith("data: {") for e in events[:-1])
    last = json.loads(events[-2][len("data: ") :])
    assert last["candidates"][0]["finishReason"] == "STOP" and last["candidates"][0]["content"]["role"] == "model"
    google_fake.script.push(FakeReply(text="alpha beta"))
    array = post(google_fake, {"contents": [{"parts": [{"text": "hi"}]}]}, method="streamGenerateContent")
    assert isinstance(array.json(), list) and array.json()[-1]["candidates"][0]["finishReason"] == "STOP"


def test_sdk_function_calling_round_trip(google_fake: Fake) -> None:
    google_fake.script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]),
        FakeReply(text="Sunny in both."),
    )
    client = sdk(google_fake)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER_DECLARATION])])
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris and Rome?")])
    first = client.models.generate_content(model=FLASH, contents=[question], config=config)
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert first.candidates is not None and first.candidates[0].content is not None
    results = types.Content(
        role="user",
        parts=[types.Part.from_function_response(name="get_weather", response={"output": "sunny"}) for _ in calls],
    )
    second = client.models.generate_content(
        model=FLASH, contents=[question, first.candidates[0].content, results], config=config
    )
    assert second.text == "Sunny in both."
    sent = google_fake.script.last_request.json["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[1]["parts"][0]["thoughtSignature"]  # the 2.5 model signed its first call; the SDK sent it back


def test_sdk_chat_keeps_gemini3_thought_signatures(google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Oslo"})]), FakeReply(text="Snowy."))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER_DECLARATION])])
    client = sdk(google_fake)
    chat = client.chats.create(model="gemini-3-pro-preview", config=config)
    first = chat.send_message("Weather in Oslo?")
    assert first.function_calls and first.function_calls[0].name == "get_weather"
    reply = types.Part.from_function_response(name="get_weather", response={"output": "-3 C, snow"})
    assert chat.send_message(reply).text == "Snowy."


def test_fake_requires_gemini3_signatures_on_calls(google_fake: Fake) -> None:
    history = [
        {"role": "user", "parts": [{"text": "Weather in Oslo?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "snow"}}}]},
    ]
    tools = [
        {
            "functionDeclarations": [
                {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
            ]
        }
    ]
    refused = post(google_fake, {"contents": history, "tools": tools}, model="gemini-3-pro-preview")
    assert refused.status_code == 400
    assert "Function call is missing a thought_signature" in refused.json()["error"]["message"]
    assert post(google_fake, {"contents": history, "tools": tools}).status_code == 200  # 2.5 does not check
    history[1]["parts"][0]["thoughtSignature"] = "skip_thought_signature_validator"
    assert post(google_fake, {"contents": history, "tools": tools}, model="gemini-3-pro-preview").status_code == 200


def test_sdk_structured_output_against_the_fake(google_fake: Fake) -> None:
    class City(pydantic.BaseModel):
        name: str
        population: int

    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=City)
    client = sdk(google_fake)
    response = client.models.generate_content(model=FLASH, contents="A city", config=config)
    assert isinstance(response.parsed, City)
    schema = google_fake.script.last_request.json["generationConfig"]["responseSchema"]
    assert schema["type"] == "OBJECT" and set(schema["properties"]) == {"name", "population"}


def test_sdk_sees_google_errors(google_fake: Fake) -> None:
    wrong = sdk(google_fake, key="AIza-wrong")
    with pytest.raises(genai_errors.ClientError) as bad_key:
        wrong.models.generate_content(model=FLASH, contents="hi")
    assert bad_key.value.code == 400 and bad_key.value.status == "INVALID_ARGUMENT"
    assert bad_key.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    google_fake.script.push(FakeReply(status=429, retry_after=7), FakeReply(status=503))
    client = sdk(google_fake)
    with pytest.raises(genai_errors.ClientError) as limited:
        client.models.generate_content(model=FLASH, contents="hi")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in limited.value.details["error"][
        "details"
    ]
    with pytest.raises(genai_errors.ServerError) as overloaded:
        client.models.generate_content(model=FLASH, contents="hi")
    assert overloaded.value.code == 503 and overloaded.value.status == "UNAVAILABLE"
    missing = httpx.post(f"{google_fake.url}/v1beta/models/{FLASH}:generateContent", json={"contents": []})
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"


def test_sdk_sees_a_blocked_prompt_and_a_safety_stop(google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(finish="blocked:SAFETY"), FakeReply(finish="SAFETY"))
    client = sdk(google_fake)
    blocked = client.models.generate_content(model=FLASH, contents="something bad")
    assert not blocked.candidates and blocked.prompt_feedback is not None
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    stopped = client.models.generate_content(model=FLASH, contents="something bad")
    assert stopped.candidates is not None and stopped.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert stopped.candidates[0].content is None and stopped.candidates[0].safety_ratings


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
        ({"generationConfig": {}}, "* GenerateContentRequest.contents: contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"txt": "x"}]}]}, "Unknown name \"txt\" at 'contents[0].parts[0]'"),
        ({"contents": "x", "temperature": 1}, 'Unknown name "temperature": Cannot find field.'),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}},
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]},
            "(TYPE_BYTES), Base64 decoding failed",
        ),
        (
            {"contents": [{"parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": PNG}}]}]},
            "Oneof field 'data' is already set",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
            },
            "Unknown name \"additionalProperties\" at 'generation_config.response_schema': Cannot find field.",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "OBJECT",
                                    "properties": {"a": {"type": "STRING", "$ref": "#/x"}},
                                },
                            }
                        ]
                    }
                ],
            },
            "Unknown name \"$ref\" at 'tools[0].function_declarations[0].parameters.properties[0].value'",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"}},
            },
            "response_schema.properties: should be non-empty for OBJECT type",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "INTEGER", "enum": ["1"]},
                },
            },
            "response_schema.enum: only allowed for STRING type",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "x"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "get_time", "response": {"output": "1"}}}],
                    },
                ]
            },
            "'get_time' does not match the name of any function call in the preceding model turn",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "x"}]},
                    {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "f", "args": {}}},
                            {"functionCall": {"name": "f", "args": {}}},
                        ],
                    },
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
                ]
            },
            "the number of function response parts is equal to the number of function call parts",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "function response turn comes immediately after a function call turn",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}},
            },
            "allowed_function_names should only be set when the mode is ANY",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"stopSequences": ["a", "b", "c", "d", "e", "f"]},
            },
            "the number of stop_sequences must not exceed 5",
        ),
    ],
)
def test_fake_rejects_what_the_real_api_rejects(google_fake: Fake, body: dict[str, Any], message: str) -> None:
    response = post(google_fake, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
    assert message in error["message"]


def test_fake_accepts_snake_case_names_single_values_and_lowercase_types(google_fake: Fake) -> None:
    body = {
        "system_instruction": {"parts": {"text": "Be brief."}},
        "contents": {"parts": {"text": "Weather?"}},
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    }
                ]
            }
        ],
        "generation_config": {"max_output_tokens": 100, "thinking_config": {"thinking_budget": 0}},
    }
    response = post(google_fake, body)
    assert response.status_code == 200, response.text
    assert "thoughtsTokenCount" not in response.json()["usageMetadata"]  # thinking turned off


# ================================================================================ the gateway, end to end


def test_openai_sdk_chats_with_gemini_through_the_gateway(google_gateway: LiveServer, google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(text="Paris is the capital.", input_tokens=12, output_tokens=5))
    out = openai_client(google_gateway).chat.completions.create(
        model=f"google/{FLASH}",
        messages=[
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "Capital of France?"},
        ],
        temperature=0.3,
        max_tokens=64,
    )
    assert out.choices[0].message.content == "Paris is the capital."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens == 12
    assert out.usage.completion_tokens == 5 + 8  # the answer plus the thoughts (OpenAI counts reasoning there too)
    assert out.usage.completion_tokens_details is not None and out.usage.completion_tokens_details.reasoning_tokens == 8
    sent = google_fake.script.last_request
    assert sent.path == f"/v1beta/models/{FLASH}:generateContent" and sent.header("x-goog-api-key") == GOOGLE_KEY
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Answer in one line."}]}
    assert sent.json["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.3}


def test_openai_sdk_streams_gemini_with_usage(google_gateway: LiveServer, google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(text="alpha beta gamma delta epsilon", input_tokens=7, output_tokens=5))
    stream = openai_client(google_gateway).chat.completions.create(
        model=f"google/{FLASH}",
        messages=[{"role": "user", "content": "Say five words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta gamma delta epsilon"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 13
    assert google_fake.script.last_request.query == "alt=sse"


def test_openai_sdk_tool_call_round_trip_with_gemini(google_gateway: LiveServer, google_fake: Fake) -> None:
    google_fake.script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]),
        FakeReply(text="Sunny in both."),
    )
    client = openai_client(google_gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = client.chat.completions.create(model=f"google/{FLASH}", messages=messages, tools=[WEATHER_TOOL])
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert calls is not None and [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert len({c.id for c in calls}) == 2
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": c.id, "content": f'{{"sky": "sunny", "n": {i}}}'} for i, c in enumerate(calls)
    ]
    second = client.chat.completions.create(model=f"google/{FLASH}", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Sunny in both."
    contents = google_fake.script.last_request.json["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": {"sky": "sunny", "n": 0}}}},
        {"functionResponse": {"name": "get_weather", "response": {"output": {"sky": "sunny", "n": 1}}}},
    ]
    declaration = google_fake.script.last_request.json["tools"][0]["functionDeclarations"][0]
    assert "additionalProperties" not in json.dumps(declaration)


def test_openai_sdk_streams_parallel_gemini_tool_calls(google_gateway: LiveServer, google_fake: Fake) -> None:
    google_fake.script.push(
        FakeReply(tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})])
    )
    stream = openai_client(google_gateway).chat.completions.create(
        model=f"google/{FLASH}",
        messages=[{"role": "user", "content": "Weather in Oslo and Lima?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                args[call.index] = args.get(call.index, "") + ((call.function.arguments or "") if call.function else "")
                if call.function and call.function.name:
                    names[call.index] = call.function.name
            finish = choice.finish_reason or finish
    assert names == {0: "get_weather", 1: "get_weather"}
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Oslo"}, 1: {"city": "Lima"}}
    assert finish == "tool_calls"


def test_gemini3_thought_signature_survives_a_tool_turn(google_gateway: LiveServer, google_fake: Fake) -> None:
    """The fake refuses a Gemini 3 call turn without its signature, so the second call passing proves the replay."""
    google_fake.script.push(
        FakeReply(thinking="Oslo weather: call the tool.", tool_calls=[("get_weather", {"city": "Oslo"})]),
        FakeReply(text="It is snowing in Oslo."),
    )
    client = openai_client(google_gateway)
    extra: Any = {"thinkingConfig": {"includeThoughts": True}}
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(
        model="google/gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL], extra_body=extra
    )
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"] == "Oslo weather: call the tool."
    signature = message["tool_calls"][0]["extra_content"]["google"]["thought_signature"]
    messages += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "snow"}]
    second = client.chat.completions.create(
        model="google/gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL], extra_body=extra
    )
    assert second.choices[0].message.content == "It is snowing in Oslo."
    model_turn = google_fake.script.last_request.json["contents"][1]
    assert model_turn["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": signature}
    ]


def test_raw_httpx_v2_against_gemini(google_gateway: LiveServer, google_fake: Fake) -> None:
    google_fake.script.push(FakeReply(text="Hi from Gemini"), FakeReply(text="one two three"))
    url = f"{google_gateway.url}/models/v2/google/{FLASH}"
    headers = {"provider-key": GOOGLE_KEY}
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "image", "base64": PNG}]}]
    }
    response = httpx.post(url, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"role": "assistant", "content": "Hi from Gemini"}
    assert response.json()["provider"]["modelVersion"] == FLASH
    parts = google_fake.script.last_request.json["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    with httpx.stream("POST", url, json={"input": "Count", "stream": True}, headers=headers) as streamed:
        assert streamed.status_code == 200
        assert "".join(streamed.iter_text()) == "one two three"


def test_gateway_maps_gemini_errors(google_gateway: LiveServer, google_fake: Fake) -> None:
    client = openai_client(google_gateway)
    hi: Any = [{"role": "user", "content": "hi"}]
    google_fake.script.push(FakeReply(status=429, retry_after=3))
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=f"google/{FLASH}", messages=hi)
    assert limited.value.response.headers["retry-after"] == "3"
    wrong = openai.OpenAI(
        base_url=google_gateway.url + "/v1", api_key="x", default_headers={"provider-key": "AIza-wrong"}, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as auth:
        wrong.chat.completions.create(model=f"google/{FLASH}", messages=hi)
    assert auth.value.code == "provider_auth_failed" and "AIza-wrong" not in str(auth.value)
    with pytest.raises(openai.BadRequestError, match="uniqueItems"):
        client.chat.completions.create(
            model=f"google/{FLASH}",
            messages=hi,
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "t",
                    "schema": {
                        "type": "object",
                        "properties": {"t": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
                    },
                },
            },
        )
    with pytest.raises(openai.BadRequestError, match="'user' is not supported by provider 'google'"):
        client.chat.completions.create(model=f"google/{FLASH}", messages=hi, user="u-1")


@pytest.mark.parametrize(
    "reply",
    [
        FakeReply(text="one two three four five six seven eight nine", stream_error="INTERNAL", stream_error_after=1),
        FakeReply(text="one two three four five six seven eight nine", cut_stream_after=2),
    ],
    ids=["error_event", "cut"],
)
def test_a_broken_gemini_stream_ends_with_an_error_event(
    google_gateway: LiveServer, google_fake: Fake, reply: FakeReply
) -> None:
    google_fake.script.push(reply)
    with httpx.stream(
        "POST",
        google_gateway.url + "/v1/chat/completions",
        json={"model": f"google/{FLASH}", "stream": True, "messages": [{"role": "user", "content": "Count"}]},
        headers={"provider-key": GOOGLE_KEY},
        timeout=10,
    ) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert '"one two three ' in "".join(lines)  # the first chunk got through
    assert '"error"' in lines[-1] and "nine" not in "".join(lines)


def test_a_gemini_stream_refused_before_the_first_byte_keeps_its_status(
    google_gateway: LiveServer, google_fake: Fake
) -> None:
    google_fake.script.push(FakeReply(status=503))
    with pytest.raises(openai.InternalServerError) as info:
        openai_client(google_gateway).chat.completions.create(
            model=f"google/{FLASH}", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert info.value.status_code == 503


# ==================================================================================== adapter details


def _adapter_body(*parts: Any, base_url: str | None = None) -> dict[str, Any]:
    adapter = create_adapter("google", ProviderConfig(base_url=base_url))
    request = ChatRequest(model=FLASH, messages=(Message("user", parts),))
    return adapter.build_request(request, "k").body


def test_gemini_reads_files_api_gcs_and_youtube_uris_by_reference() -> None:
    body = _adapter_body(
        ImagePart(url="https://generativelanguage.googleapis.com/v1beta/files/abc123", mime_type="image/jpeg"),
        ImagePart(url="gs://my-bucket/photos/cat.png"),
        ImagePart(url="https://www.youtube.com/watch?v=9hE5-98ZeCg"),
    )
    assert body["contents"][0]["parts"] == [
        {
            "fileData": {
                "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123",
                "mimeType": "image/jpeg",
            }
        },
        {"fileData": {"fileUri": "gs://my-bucket/photos/cat.png", "mimeType": "image/png"}},
        {"fileData": {"fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}},
    ]


def test_a_plain_http_image_url_reaching_the_adapter_is_a_clear_400() -> None:
    with pytest.raises(InvalidRequest, match="Send the image as base64") as info:
        _adapter_body(TextPart("look"), ImagePart(url="https://example.com/cat.png"))
    assert info.value.status == 400 and info.value.param == "messages[0].image"


def test_schema_rewrite_refuses_a_map_type_by_name() -> None:
    adapter = create_adapter("google", ProviderConfig())
    from unimodel.protocol import ResponseFormat

    schema = {
        "type": "object",
        "properties": {"scores": {"type": "object", "additionalProperties": {"type": "number"}}},
    }
    request = ChatRequest(
        model=FLASH,
        messages=(Message("user", (TextPart("x"),)),),
        response_format=ResponseFormat("json_schema", schema),
    )
    with pytest.raises(UnsupportedParameter) as info:
        adapter.build_request(request, "k")
    assert info.value.param == "response_format.schema.properties.scores.additionalProperties"
