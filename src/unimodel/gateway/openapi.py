"""The server's OpenAPI document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from .. import __version__
from ..frontends import openai_compat
from ..frontends.anthropic_wire import CountTokensRequest as AnthropicCountTokensRequest
from ..frontends.anthropic_wire import MessagesRequest as AnthropicMessagesRequest
from ..frontends.bytez_v2 import RunRequest
from ..frontends.openai_compat import ChatCompletionRequest
from ..frontends.openai_media import ImagesBody, SpeechBody
from ..frontends.openai_responses import SURFACE as RESPONSES
from ..frontends.openai_responses import ResponsesRequest
from .routes_admin import KeyLimits, NewKey, ProviderKey
from .routes_anthropic import ANTHROPIC_ERROR
from .routes_anthropic import openapi_paths as anthropic_paths
from .routes_clusters import ClusterBody
from .routes_openai_media import openapi_paths as media_paths

_REF = "#/components/schemas/{model}"

V2_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["error", "output"],
    "properties": {
        "error": {"type": ["string", "null"]},
        "output": {},
        "provider": {},
        "code": {"type": "string"},
    },
}
OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _responses(ok: dict[str, Any], error_ref: str, statuses: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok}
    for status in statuses:
        out[str(status)] = {
            "description": "An error; the body says what to change.",
            "content": {"application/json": {"schema": {"$ref": error_ref}}},
        }
    return out


def build_openapi() -> dict[str, Any]:
    _, defs = models_json_schema(
        [
            (RunRequest, "validation"),
            (ChatCompletionRequest, "validation"),
            (AnthropicMessagesRequest, "validation"),
            (AnthropicCountTokensRequest, "validation"),
            (ResponsesRequest, "validation"),
            (ImagesBody, "validation"),
            (SpeechBody, "validation"),
            (ClusterBody, "validation"),
            (NewKey, "validation"),
            (KeyLimits, "validation"),
            (ProviderKey, "validation"),
        ],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["V2Envelope"] = V2_ENVELOPE
    schemas["OpenAIError"] = OPENAI_ERROR
    schemas["AnthropicError"] = ANTHROPIC_ERROR
    run_errors = (400, 401, 403, 404, 413, 429, 502, 503, 504)
    v2_env = "#/components/schemas/V2Envelope"
    oai_err = "#/components/schemas/OpenAIError"
    model_param = {"name": "modelId", "in": "path", "required": True, "schema": {"type": "string"}}
    cluster_body = {
        "required": False,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClusterBody"}}},
    }
    cluster_ok = {"description": "The envelope", "content": {"application/json": {"schema": {"$ref": v2_env}}}}
    cluster_errors = (400, 401, 403, 404, 413)  # changes need an admin key when keys are on
    history_param = {
        "name": "history",
        "in": "query",
        "required": False,
        "description": "1: include the last ten minutes (one row per autoscaler tick) as `history`",
        "schema": {"type": "string", "enum": ["0", "1", "false", "true"]},
    }
    paths: dict[str, Any] = {
        "/models/v2/list/clusters": {
            "get": {
                "summary": "Every open model's cluster status",
                "operationId": "listClusters",
                "parameters": [history_param],
                "responses": _responses(cluster_ok, v2_env, (400,)),
            }
        },
        "/models/v2/{modelId}": {
            "get": {
                "summary": "An open model's cluster status",
                "operationId": "getCluster",
                "parameters": [model_param, history_param],
                "responses": _responses(cluster_ok, v2_env, (400, 404)),
            },
            "put": {
                "summary": "Configure an open model's cluster (timeout in minutes, capacity)",
                "operationId": "putCluster",
                "parameters": [model_param],
                "requestBody": cluster_body,
                "responses": {**_responses(cluster_ok, v2_env, cluster_errors), "202": cluster_ok},
            },
            "patch": {
                "summary": "Change an open model's cluster, or turn it on or off",
                "operationId": "patchCluster",
                "parameters": [model_param],
                "requestBody": cluster_body,
                "responses": _responses(cluster_ok, v2_env, cluster_errors),
            },
            "delete": {
                "summary": "Stop an open model's instances",
                "operationId": "deleteCluster",
                "parameters": [model_param],
                "responses": _responses(cluster_ok, v2_env, (400, 401, 403, 404)),
            },
            "post": {
                "summary": "Run a model",
                "operationId": "runModel",
                "parameters": [
                    {"name": "modelId", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "provider-key", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}},
                },
                "responses": _responses(
                    {
                        "description": "The `{error, output, provider}` envelope, or raw text when streaming.",
                        "content": {"application/json": {"schema": {"$ref": v2_env}}, "text/plain": {}},
                    },
                    v2_env,
                    run_errors,
                ),
            },
        },
        "/models/v2/list/models": {
            "get": {
                "summary": "List models",
                "operationId": "listModels",
                "parameters": [
                    {"name": "task", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "modelId", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": _responses(
                    {"description": "Catalog", "content": {"application/json": {"schema": {"$ref": v2_env}}}},
                    v2_env,
                    (),
                ),
            }
        },
        "/models/v2/list/tasks": {
            "get": {
                "summary": "List tasks",
                "operationId": "listTasks",
                "responses": _responses(
                    {"description": "Tasks", "content": {"application/json": {"schema": {"$ref": v2_env}}}}, v2_env, ()
                ),
            }
        },
    }
    paths.update(_platform_paths(v2_env))
    for prefix in openai_compat.SURFACE.prefixes:
        tag = prefix.strip("/").replace("/", "_")
        paths[f"{prefix}/chat/completions"] = {
            "post": {
                "summary": "OpenAI-compatible chat completions",
                "operationId": f"chatCompletions_{tag}",
                "parameters": [
                    {"name": "provider-key", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
                },
                "responses": _responses(
                    {
                        "description": "A chat.completion object, or SSE chat.completion.chunk events when streaming.",
                        "content": {"application/json": {}, "text/event-stream": {}},
                    },
                    oai_err,
                    run_errors,
                ),
            }
        }
        for name in ("completions", "embeddings"):
            paths[f"{prefix}/{name}"] = {
                "post": {
                    "summary": f"OpenAI-compatible {name} (open models)",
                    "operationId": f"{name}_{tag}",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": _responses(
                        {"description": name, "content": {"application/json": {}}}, oai_err, (400, 404, 413, 502, 503)
                    ),
                }
            }
        paths[f"{prefix}/models"] = {
            "get": {
                "summary": "OpenAI-compatible model list",
                "operationId": f"listModels_{tag}",
                "responses": {"200": {"description": "Models", "content": {"application/json": {}}}},
            }
        }
    paths.update(_responses_paths(oai_err, run_errors))
    paths.update(media_paths(oai_err, v2_env, run_errors))
    paths.update(anthropic_paths("#/components/schemas/AnthropicError", (400, 401, 403, 404, 413, 429, 500, 504, 529)))
    return {
        "openapi": "3.1.0",
        "info": {"title": "unimodel", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "gatewayKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A gateway key; `Authorization: Key <key>` and a bare key work too.",
                }
            },
        },
        "security": [{"gatewayKey": []}, {}],
    }


def _responses_paths(oai_err: str, run_errors: tuple[int, ...]) -> dict[str, Any]:
    """The Responses API under each OpenAI prefix."""
    id_param = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}
    stored = {"description": "A stored Response object", "content": {"application/json": {}}}
    out: dict[str, Any] = {}
    for path in RESPONSES.prefixes:
        tag = path.strip("/").replace("/", "_")
        out[path] = {
            "post": {
                "summary": "OpenAI Responses API: create a response (any model)",
                "operationId": f"createResponse_{tag}",
                "parameters": [
                    {"name": "provider-key", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ResponsesRequest"}}},
                },
                "responses": _responses(
                    {
                        "description": "A Response object, or SSE response.* events when streaming.",
                        "content": {"application/json": {}, "text/event-stream": {}},
                    },
                    oai_err,
                    run_errors,
                ),
            }
        }
        out[path + "/{response_id}"] = {
            "get": {
                "summary": "A stored response (the key that made it only)",
                "operationId": f"getResponse_{tag}",
                "parameters": [id_param],
                "responses": _responses(stored, oai_err, (400, 401, 404, 503)),
            },
            "delete": {
                "summary": "Delete a stored response",
                "operationId": f"deleteResponse_{tag}",
                "parameters": [id_param],
                "responses": _responses(
                    {"description": "Deleted", "content": {"application/json": {}}}, oai_err, (401, 404, 503)
                ),
            },
        }
        out[path + "/{response_id}/input_items"] = {
            "get": {
                "summary": "The items a stored response's model was given",
                "operationId": f"listResponseInputItems_{tag}",
                "parameters": [
                    id_param,
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                    {"name": "order", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]}},
                    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": _responses(
                    {"description": "A list of items", "content": {"application/json": {}}}, oai_err, (400, 401, 404)
                ),
            }
        }
    return out


def _platform_paths(v2_env: str) -> dict[str, Any]:
    """Usage, the admin API, health and metrics."""
    ok = {"description": "The envelope", "content": {"application/json": {"schema": {"$ref": v2_env}}}}
    key_param = {"name": "keyId", "in": "path", "required": True, "schema": {"type": "string"}}
    provider_param = {"name": "provider", "in": "path", "required": True, "schema": {"type": "string"}}
    time_params = [
        {"name": "from", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "to", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "model", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "string"}},
    ]

    def body(model: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}

    def op(op_id: str, summary: str, errors: tuple[int, ...], **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "operationId": op_id, "responses": _responses(ok, v2_env, errors), **extra}

    admin_errors = (400, 401, 403, 404, 413, 503)
    return {
        "/models/v2/usage": {
            "get": op(
                "getUsage",
                "The calling key's usage records and totals (time ISO 8601 or Unix seconds)",
                (400, 401, 503),
                parameters=time_params,
            )
        },
        "/models/v2/admin/usage": {
            "get": op(
                "getAllUsage",
                "Every key's usage (admin)",
                (400, 401, 403, 503),
                parameters=[
                    *time_params,
                    {"name": "key", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
            )
        },
        "/models/v2/admin/keys": {
            "get": op("listKeys", "Every gateway key (admin; never a secret)", (401, 403)),
            "post": op(
                "createKey",
                "Create a gateway key; the key is shown once (admin)",
                admin_errors,
                requestBody=body("NewKey"),
            ),
        },
        "/models/v2/admin/keys/{keyId}": {
            "get": op("getKey", "A gateway key (admin)", admin_errors, parameters=[key_param]),
            "patch": op(
                "patchKey",
                "Change a key's limits; null returns to the server default (admin)",
                admin_errors,
                parameters=[key_param],
                requestBody=body("KeyLimits"),
            ),
            "delete": op("revokeKey", "Revoke a key (admin)", admin_errors, parameters=[key_param]),
        },
        "/models/v2/admin/keys/{keyId}/providers/{provider}": {
            "put": op(
                "putProviderKey",
                "Store a provider key on a gateway key, encrypted (admin)",
                admin_errors,
                parameters=[key_param, provider_param],
                requestBody=body("ProviderKey"),
            ),
            "delete": op(
                "deleteProviderKey",
                "Remove a stored provider key (admin)",
                admin_errors,
                parameters=[key_param, provider_param],
            ),
        },
        "/healthz": {
            "get": {"summary": "Liveness", "operationId": "healthz", "responses": {"200": {"description": "Alive"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: store, usage ledger and shared limits, each with a reason when not ok",
                "operationId": "readyz",
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Degraded"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (an admin key when keys are on, unless [metrics] access is public)",
                "operationId": "metrics",
                "responses": {
                    "200": {"description": "Prometheus text format", "content": {"text/plain": {}}},
                    "401": {"description": "No valid key"},
                    "403": {"description": "Not an admin key"},
                },
            }
        },
    }
