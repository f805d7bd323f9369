"""Request validation of the fake Gemini API, the way the real one validates.

Two passes, as the real service does them:

1. The proto-JSON parse of the body against the `google.ai.generativelanguage.v1beta` messages: unknown
   fields ("Invalid JSON payload received. Unknown name "x" at 'generation_config': Cannot find field."),
   values of the wrong type, unknown enum values, bad base64. Field names are accepted in lowerCamelCase or
   in their proto snake_case, a repeated field also takes a single value, and every violation is reported.
2. Semantic checks with the service's `* GenerateContentRequest.<path>: <problem>` wording: roles, empty
   parts, the data oneof, function responses that answer the preceding function call turn by name, Gemini 3
   thought signatures on function calls, schema rules (typed, OBJECT with properties, STRING-only enums),
   generation config ranges, tool config.

Every failure raises `GoogleError`, rendered as `{"error": {"code", "message", "status", "details"?}}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .common import is_int, is_number

__all__ = ["GoogleError", "is_thinking_model", "thinking_active", "validate_generate_content"]

PKG = "type.googleapis.com/google.ai.generativelanguage.v1beta"
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "image/gif"})
RESPONSE_MIME_TYPES = ("text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
SIGNATURE_HELP = "https://ai.google.dev/gemini-api/docs/thought-signatures"


class GoogleError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: int = 400,
        status: str = "INVALID_ARGUMENT",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details


def _field_error(path: str, problem: str) -> GoogleError:
    return GoogleError(f"* GenerateContentRequest.{path}: {problem}\n")


# --------------------------------------------------------------------------------- proto descriptors


@dataclass(frozen=True)
class F:
    """One proto field: `kind` is a scalar type (TYPE_STRING …), "message", "enum", "struct", "value" or "map"."""

    kind: str
    of: str = ""  # message name, enum name, or the map's value message
    repeated: bool = False


def _msg(**fields: F) -> dict[str, F]:
    return fields


S, I32, I64 = F("TYPE_STRING"), F("TYPE_INT32"), F("TYPE_INT64")
FLOAT, DOUBLE, BOOL, BYTES = F("TYPE_FLOAT"), F("TYPE_DOUBLE"), F("TYPE_BOOL"), F("TYPE_BYTES")
STRUCT, VALUE = F("struct"), F("value")
REP_S = F("TYPE_STRING", repeated=True)


def M(name: str, repeated: bool = False) -> F:
    return F("message", name, repeated)


def E(name: str, repeated: bool = False) -> F:
    return F("enum", name, repeated)


MESSAGES: dict[str, dict[str, F]] = {
    "GenerateContentRequest": _msg(
        model=S,
        system_instruction=M("Content"),
        contents=M("Content", True),
        tools=M("Tool", True),
        tool_config=M("ToolConfig"),
        safety_settings=M("SafetySetting", True),
        generation_config=M("GenerationConfig"),
        cached_content=S,
    ),
    "Content": _msg(parts=M("Part", True), role=S),
    "Part": _msg(
        text=S,
        inline_data=M("Blob"),
        function_call=M("FunctionCall"),
        function_response=M("FunctionResponse"),
        file_data=M("FileData"),
        executable_code=M("ExecutableCode"),
        code_execution_result=M("CodeExecutionResult"),
        video_metadata=M("VideoMetadata"),
        thought=BOOL,
        thought_signature=BYTES,
        part_metadata=STRUCT,
        media_resolution=VALUE,
    ),
    "Blob": _msg(mime_type=S, data=BYTES),
    "FileData": _msg(mime_type=S, file_uri=S),
    "FunctionCall": _msg(id=S, name=S, args=STRUCT),
    "FunctionResponse": _msg(
        id=S,
        name=S,
        response=STRUCT,
        parts=M("FunctionResponsePart", True),
        will_continue=BOOL,
        scheduling=E("FunctionResponse.Scheduling"),
    ),
    "FunctionResponsePart": _msg(inline_data=M("Blob")),
    "ExecutableCode": _msg(language=E("ExecutableCode.Language"), code=S),
    "CodeExecutionResult": _msg(outcome=E("CodeExecutionResult.Outcome"), output=S),
    "VideoMetadata": _msg(start_offset=S, end_offset=S, fps=DOUBLE),
    "Tool": _msg(
        function_declarations=M("FunctionDeclaration", True),
        google_search_retrieval=STRUCT,
        code_execution=STRUCT,
        google_search=STRUCT,
        url_context=STRUCT,
        computer_use=STRUCT,
        file_search=STRUCT,
        google_maps=STRUCT,
    ),
    "FunctionDeclaration": _msg(
        name=S,
        description=S,
        parameters=M("Schema"),
        parameters_json_schema=VALUE,
        response=M("Schema"),
        response_json_schema=VALUE,
        behavior=E("FunctionDeclaration.Behavior"),
    ),
    "Schema": _msg(
        type=E("Type"),
        format=S,
        title=S,
        description=S,
        nullable=BOOL,
        enum=REP_S,
        items=M("Schema"),
        max_items=I64,
        min_items=I64,
        properties=F("map", "Schema"),
        required=REP_S,
        min_properties=I64,
        max_properties=I64,
        minimum=DOUBLE,
        maximum=DOUBLE,
        min_length=I64,
        max_length=I64,
        pattern=S,
        example=VALUE,
        any_of=M("Schema", True),
        property_ordering=REP_S,
        default=VALUE,
    ),
    "ToolConfig": _msg(function_calling_config=M("FunctionCallingConfig"), retrieval_config=STRUCT),
    "FunctionCallingConfig": _msg(mode=E("FunctionCallingConfig.Mode"), allowed_function_names=REP_S),
    "SafetySetting": _msg(category=E("HarmCategory"), threshold=E("SafetySetting.HarmBlockThreshold")),
    "GenerationConfig": _msg(
        candidate_count=I32,
        stop_sequences=REP_S,
        max_output_tokens=I32,
        temperature=FLOAT,
        top_p=FLOAT,
        top_k=I32,
        seed=I32,
        response_mime_type=S,
        response_schema=M("Schema"),
        response_json_schema=VALUE,
        presence_penalty=FLOAT,
        frequency_penalty=FLOAT,
        response_logprobs=BOOL,
        logprobs=I32,
        enable_enhanced_civic_answers=BOOL,
        response_modalities=E("GenerationConfig.Modality", True),
        speech_config=STRUCT,
        thinking_config=M("ThinkingConfig"),
        image_config=STRUCT,
        media_resolution=E("GenerationConfig.MediaResolution"),
    ),
    "ThinkingConfig": _msg(
        include_thoughts=BOOL, thinking_budget=I32, thinking_level=E("ThinkingConfig.ThinkingLevel")
    ),
}

ENUMS: dict[str, tuple[str, ...]] = {
    "Type": ("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"),
    "FunctionResponse.Scheduling": ("SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"),
    "ExecutableCode.Language": ("LANGUAGE_UNSPECIFIED", "PYTHON"),
    "CodeExecutionResult.Outcome": ("OUTCOME_UNSPECIFIED", "OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_DEADLINE_EXCEEDED"),
    "FunctionDeclaration.Behavior": ("UNSPECIFIED", "BLOCKING", "NON_BLOCKING"),
    "FunctionCallingConfig.Mode": ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"),
    "HarmCategory": (
        "HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY", "HARM_CATEGORY_VIOLENCE",
        "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL", "HARM_CATEGORY_DANGEROUS", "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    ),
    "SafetySetting.HarmBlockThreshold": (
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH",
        "BLOCK_NONE", "OFF",
    ),
    "GenerationConfig.Modality": ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"),
    "GenerationConfig.MediaResolution": (
        "MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH",
    ),
    "ThinkingConfig.ThinkingLevel": ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"),
}  # fmt: skip
# OpenAPI-style lowercase type names ("object", "string") are accepted, as the REST examples use them.
CASE_INSENSITIVE_ENUMS = frozenset({"Type"})

# The JSON names the service also accepts besides lowerCamelCase and snake_case.
JSON_ALIASES = {("GenerationConfig", "_responseJsonSchema"): "response_json_schema"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _lookup(message: str) -> dict[str, str]:
    """JSON key → proto field name for one message."""
    out: dict[str, str] = {}
    for name in MESSAGES[message]:
        out[name] = name
        out[_camel(name)] = name
    for (owner, alias), name in JSON_ALIASES.items():
        if owner == message:
            out[alias] = name
    return out


_KEYS = {name: _lookup(name) for name in MESSAGES}


def _show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class ProtoParser:
    """Parses a JSON body as a proto message: the normalized body (snake_case keys) and every violation."""

    def __init__(self) -> None:
        self.violations: list[dict[str, str]] = []

    def unknown(self, key: str, path: str) -> None:
        where = f" at '{path}'" if path else ""
        self.violations.append(
            {"description": f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'}
        )

    def invalid(self, path: str, kind: str, shown: str) -> None:
        self.violations.append(
            {
                "field": path,
                "description": f"Invalid JSON payload received. Invalid value at '{path}' ({kind}), {shown}",
            }
        )

    def message(self, name: str, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.invalid(path, f"{PKG}.{name}", _show(value))
            return None
        keys = _KEYS[name]
        out: dict[str, Any] = {}
        for key, item in value.items():
            proto = keys.get(key)
            if proto is None:
                self.unknown(key, path)
                continue
            if item is None:  # JSON null means "not set"
                continue
            out[proto] = self.field(MESSAGES[name][proto], item, f"{path}.{proto}" if path else proto)
        return out

    def field(self, spec: F, value: Any, path: str) -> Any:
        if spec.kind == "map":
            if not isinstance(value, dict):
                self.invalid(path, f"{PKG}.{spec.of}", _show(value))
                return {}
            return {k: self.message(spec.of, v, f"{path}[{i}].value") for i, (k, v) in enumerate(value.items())}
        if spec.repeated:
            items = value if isinstance(value, list) else [value]
            return [self.single(spec, item, f"{path}[{i}]") for i, item in enumerate(items)]
        if isinstance(value, list) and spec.kind not in ("value",):
            raise GoogleError("Invalid JSON payload received. Proto field is not repeating, cannot start list.")
        return self.single(spec, value, path)

    def single(self, spec: F, value: Any, path: str) -> Any:
        kind = spec.kind
        if kind == "message":
            return self.message(spec.of, value, path)
        if kind == "enum":
            names = ENUMS[spec.of]
            if is_int(value) and 0 <= value < len(names):
                return names[value]
            text = value.upper() if isinstance(value, str) and spec.of in CASE_INSENSITIVE_ENUMS else value
            if text not in names:
                self.invalid(path, f"{PKG}.{spec.of}", _show(value))
            return text
        if kind == "struct":
            if not isinstance(value, dict):
                self.invalid(path, "type.googleapis.com/google.protobuf.Struct", _show(value))
            return value
        if kind == "value":
            return value
        if kind == "TYPE_STRING":
            if not isinstance(value, str):
                self.invalid(path, kind, _show(value))
            return value
        if kind == "TYPE_BOOL":
            if not isinstance(value, bool):
                self.invalid(path, kind, _show(value))
            return value
        if kind == "TYPE_BYTES":
            if not isinstance(value, str) or not _is_base64(value):
                shown = _show(value) if not isinstance(value, str) else f'Base64 decoding failed for "{value[:40]}"'
                self.invalid(path, kind, shown)
            return value
        if kind in ("TYPE_INT32", "TYPE_INT64"):
            number = int(value) if isinstance(value, str) and re.fullmatch(r"-?\d+", value) else value
            if not is_int(number) and not (is_number(number) and float(number).is_integer()):
                self.invalid(path, kind, _show(value))
                return value
            return int(number)
        # TYPE_FLOAT, TYPE_DOUBLE
        if not is_number(value):
            self.invalid(path, kind, _show(value))
        return value


def _is_base64(text: str) -> bool:
    """Standard or URL-safe base64, padded or not (proto JSON takes both)."""
    if not _BASE64.match(text) or len(text.rstrip("=")) % 4 == 1:
        return False
    try:
        base64.b64decode(
            text.replace("-", "+").replace("_", "/").rstrip("=") + "=" * (-len(text.rstrip("=")) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        return False
    return True


# ------------------------------------------------------------------------------------------ semantics


def is_thinking_model(model: str) -> bool:
    name = model.rsplit("/", 1)[-1]
    return name.startswith(("gemini-2.5", "gemini-3"))


def requires_signatures(model: str) -> bool:
    return model.rsplit("/", 1)[-1].startswith("gemini-3")


def thinking_active(body: Mapping[str, Any], model: str) -> bool:
    config = (body.get("generation_config") or {}).get("thinking_config") or {}
    return is_thinking_model(model) and config.get("thinking_budget") != 0


def validate_generate_content(raw: Any, model: str) -> dict[str, Any]:
    """The normalized request (snake_case keys), or GoogleError the way the real API words it."""
    if not isinstance(raw, dict):
        raise GoogleError('Invalid JSON payload received. Unknown name "": Root element must be a message.')
    parser = ProtoParser()
    body = parser.message("GenerateContentRequest", raw, "") or {}
    if parser.violations:
        message = "\n".join(v["description"] for v in parser.violations)
        raise GoogleError(
            message,
            details=[{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": parser.violations}],
        )
    contents = body.get("contents") or []
    if not contents:
        raise _field_error("contents", "contents is not specified")
    _validate_contents(contents, model)
    if body.get("system_instruction") is not None:
        for j, part in enumerate(body["system_instruction"].get("parts") or []):
            if "text" not in part:
                raise _field_error(
                    f"system_instruction.parts[{j}]", "only text parts are allowed in a system instruction"
                )
    names = _validate_tools(body.get("tools") or [])
    _validate_tool_config(body.get("tool_config"), names)
    _validate_generation_config(body.get("generation_config") or {}, model)
    cached = body.get("cached_content")
    if cached is not None and not cached.startswith("cachedContents/"):
        raise _field_error("cached_content", f"'{cached}' is not a valid CachedContent name (cachedContents/...)")
    return body


DATA_FIELDS = (
    "text",
    "inline_data",
    "function_call",
    "function_response",
    "file_data",
    "executable_code",
    "code_execution_result",
)


@dataclass
class _Turn:
    index: int
    role: str
    calls: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)
    has_user_content: bool = False


def _validate_contents(contents: Sequence[dict[str, Any]], model: str) -> None:
    turns: list[_Turn] = []
    for i, content in enumerate(contents):
        role = content.get("role") or ("user" if len(contents) == 1 else "")
        if role not in ("user", "model"):
            raise GoogleError("Please use a valid role: user, model.")
        parts = content.get("parts") or []
        if not parts:
            raise _field_error(f"contents[{i}].parts", "contents.parts must not be empty.")
        turn = _Turn(i, role)
        for j, part in enumerate(parts):
            _validate_part(f"contents[{i}].parts[{j}]", part, role)
            if "function_call" in part:
                turn.calls.append(part["function_call"].get("name", ""))
            elif "function_response" in part:
                turn.responses.append((j, part["function_response"].get("name", "")))
            else:
                turn.has_user_content = turn.has_user_content or role == "user"
        turns.append(turn)
    for t, turn in enumerate(turns):
        previous = turns[t - 1] if t else None
        if turn.calls and previous is not None and previous.role == "model":
            raise GoogleError(
                "Please ensure that function call turn comes immediately after a user turn or after a function "
                "response turn."
            )
        if not turn.responses:
            continue
        if previous is None or not previous.calls:
            raise GoogleError("Please ensure that function response turn comes immediately after a function call turn.")
        if len(turn.responses) != len(previous.calls):
            raise GoogleError(
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )
        for j, name in turn.responses:
            if name not in previous.calls:
                raise _field_error(
                    f"contents[{turn.index}].parts[{j}].function_response.name",
                    f"'{name}' does not match the name of any function call in the preceding model turn",
                )
    if requires_signatures(model):
        _validate_signatures(contents, turns)


def _validate_part(path: str, part: Mapping[str, Any], role: str) -> None:
    set_fields = [f for f in DATA_FIELDS if f in part]
    if len(set_fields) > 1:
        raise GoogleError(
            f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{_camel(set_fields[1])}'"
        )
    if not set_fields or (set_fields == ["text"] and part["text"] == "" and "thought_signature" not in part):
        raise _field_error(f"{path}.data", "required oneof field 'data' must have one initialized field")
    kind = set_fields[0]
    if kind == "inline_data":
        blob = part["inline_data"]
        mime = blob.get("mime_type", "")
        if not mime:
            raise _field_error(f"{path}.inline_data.mime_type", "mime_type is not specified")
        if not blob.get("data"):
            raise _field_error(f"{path}.inline_data.data", "data is not specified")
        if mime.startswith("image/") and mime not in IMAGE_TYPES:
            raise GoogleError(f"Unsupported MIME type: {mime}")
    elif kind == "file_data":
        uri = part["file_data"].get("file_uri", "")
        if not uri:
            raise _field_error(f"{path}.file_data.file_uri", "file_uri is not specified")
        if not uri.startswith(("https://", "http://", "gs://")):
            raise GoogleError(f"Invalid or unsupported file uri: {uri}")
    elif kind == "function_call":
        if role != "model":
            raise _field_error(f"{path}.function_call", "function_call parts are only allowed in a model turn")
        if not part["function_call"].get("name"):
            raise _field_error(f"{path}.function_call.name", "Name cannot be empty.")
    elif kind == "function_response":
        if role != "user":
            raise _field_error(f"{path}.function_response", "function_response parts are only allowed in a user turn")
        response = part["function_response"]
        if not response.get("name"):
            raise _field_error(f"{path}.function_response.name", "Name cannot be empty.")
        if "response" not in response:
            raise _field_error(f"{path}.function_response.response", "response is not specified")


def _validate_signatures(contents: Sequence[dict[str, Any]], turns: Sequence[_Turn]) -> None:
    """Gemini 3: in the current turn (since the last user text), each step's first function call is signed."""
    start = max((t.index for t in turns if t.has_user_content), default=0)
    for turn in turns:
        if turn.index < start or not turn.calls:
            continue
        parts = contents[turn.index]["parts"]
        first = next(p for p in parts if "function_call" in p)
        if not first.get("thought_signature"):
            position = parts.index(first) + 1
            raise GoogleError(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to "
                "work correctly, and missing thought_signature may lead to degraded model performance. Additional "
                f"data, function call `default_api:{first['function_call']['name']}` , position {position}. Please "
                f"refer to {SIGNATURE_HELP} for more details."
            )


def _validate_tools(tools: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for i, tool in enumerate(tools):
        for k, decl in enumerate(tool.get("function_declarations") or []):
            path = f"tools[{i}].function_declarations[{k}]"
            name = decl.get("name", "")
            if not FUNCTION_NAME.match(name):
                raise _field_error(
                    f"{path}.name",
                    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, "
                    "A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.",
                )
            if name in names:
                raise GoogleError(f"Duplicate function declaration found: {name}")
            names.append(name)
            if decl.get("parameters") is not None and decl.get("parameters_json_schema") is not None:
                raise _field_error(f"{path}", "parameters and parameters_json_schema cannot both be set")
            if decl.get("parameters") is not None:
                if decl["parameters"].get("type") != "OBJECT":
                    raise _field_error(f"{path}.parameters.type", "must be OBJECT")
                validate_schema(decl["parameters"], f"{path}.parameters")
            if decl.get("response") is not None:
                validate_schema(decl["response"], f"{path}.response")
    return names


def validate_schema(schema: Mapping[str, Any], path: str) -> None:
    kind = schema.get("type")
    if kind in (None, "TYPE_UNSPECIFIED") and not schema.get("any_of"):
        raise _field_error(f"{path}.type", "must be specified")
    if kind == "OBJECT" and not schema.get("properties"):
        raise _field_error(f"{path}.properties", "should be non-empty for OBJECT type")
    if schema.get("enum") and kind != "STRING":
        raise _field_error(f"{path}.enum", "only allowed for STRING type")
    properties = schema.get("properties") or {}
    for r, name in enumerate(schema.get("required") or []):
        if name not in properties:
            raise _field_error(f"{path}.required[{r}]", "property is not defined")
    for name, sub in properties.items():
        validate_schema(sub or {}, f"{path}.properties[{name}]")
    if schema.get("items") is not None:
        validate_schema(schema["items"], f"{path}.items")
    elif kind == "ARRAY":
        raise _field_error(f"{path}.items", "missing field.")
    for a, sub in enumerate(schema.get("any_of") or []):
        validate_schema(sub, f"{path}.any_of[{a}]")


def _validate_tool_config(config: Mapping[str, Any] | None, names: Sequence[str]) -> None:
    calling = (config or {}).get("function_calling_config") or {}
    allowed = calling.get("allowed_function_names") or []
    path = "tool_config.function_calling_config.allowed_function_names"
    if allowed and calling.get("mode") != "ANY":
        raise _field_error(path, "allowed_function_names should only be set when the mode is ANY.")
    for a, name in enumerate(allowed):
        if name not in names:
            raise _field_error(f"{path}[{a}]", f"function '{name}' is not declared in tools.")


def _range(config: Mapping[str, Any], key: str, low: float, high: float | None = None) -> None:
    value = config.get(key)
    if value is None:
        return
    if value < low or (high is not None and value > high):
        bounds = f"[{low:g}, {high:g}]" if high is not None else f"at least {low:g}"
        raise _field_error(
            f"generation_config.{key}",
            f"{key} must be {'in the range ' if high is not None else ''}{bounds}, got {value:g}",
        )


def _validate_generation_config(config: Mapping[str, Any], model: str) -> None:
    _range(config, "temperature", 0, 2)
    _range(config, "top_p", 0, 1)
    _range(config, "top_k", 1)
    _range(config, "candidate_count", 1, 8)
    _range(config, "max_output_tokens", 1)
    _range(config, "presence_penalty", -2, 2)
    _range(config, "frequency_penalty", -2, 2)
    _range(config, "logprobs", 0, 20)
    if len(config.get("stop_sequences") or []) > 5:
        raise _field_error("generation_config.stop_sequences", "the number of stop_sequences must not exceed 5")
    if config.get("logprobs") is not None and not config.get("response_logprobs"):
        raise _field_error("generation_config.logprobs", "logprobs can only be set when response_logprobs is true")
    mime = config.get("response_mime_type")
    if mime is not None and mime not in RESPONSE_MIME_TYPES:
        raise _field_error(
            "generation_config.response_mime_type",
            "allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and "
            "`text/x.enum`.",
        )
    has_schema = config.get("response_schema") is not None
    if has_schema and config.get("response_json_schema") is not None:
        raise _field_error(
            "generation_config.response_schema", "response_schema and response_json_schema cannot both be set"
        )
    if (has_schema or config.get("response_json_schema") is not None) and mime not in (
        "application/json",
        "text/x.enum",
    ):
        raise _field_error(
            "generation_config.response_mime_type",
            "response_mime_type must be set to `application/json` or `text/x.enum` when a response schema is set.",
        )
    if has_schema:
        validate_schema(config["response_schema"], "generation_config.response_schema")
    thinking = config.get("thinking_config") or {}
    name = model.rsplit("/", 1)[-1]
    if (
        thinking
        and not is_thinking_model(model)
        and (thinking.get("thinking_budget") or thinking.get("include_thoughts"))
    ):
        raise GoogleError(f"Thinking is not enabled for models/{name}")
    if thinking.get("thinking_budget") == 0 and name.startswith(("gemini-2.5-pro", "gemini-3")):
        raise GoogleError("Budget 0 is invalid. This model only works in thinking mode.")
    if thinking.get("thinking_level") is not None and not name.startswith("gemini-3"):
        raise GoogleError("Thinking level is not supported for this model.")
