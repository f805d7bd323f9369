"""Faithful fakes of the providers' embeddings APIs, written from their API references and official SDKs: what each
takes, what it refuses, what it answers. Vectors are made from the text (the same text, the same vector), so a test
can check order and identity.

    OpenAI    POST /v1/embeddings          {model, input: str | [str], encoding_format?, dimensions?, user?}
    Mistral   POST /v1/embeddings          {model, input, output_dimension?, output_dtype?}   (no encoding_format)
    Cohere    POST /v2/embed               {model, texts, input_type (required), embedding_types?, output_dimension?,
                                            truncate?, max_tokens?}
    Gemini    POST /v1beta/models/{m}:batchEmbedContents   {requests: [{model, content: {parts: [{text}]},
                                            taskType?, outputDimensionality?}]}

    app = create_embeddings_app("cohere", api_key="co-test-key"); app.state.requests holds the bodies received.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DIMENSIONS = 8  # the fakes' native size (real models: 384–3072)
OPENAI_MODELS = {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"}
MISTRAL_MODELS = {"mistral-embed", "codestral-embed"}
COHERE_MODELS = {"embed-v4.0", "embed-english-v3.0", "embed-multilingual-v3.0"}
GEMINI_MODELS = {"gemini-embedding-001", "text-embedding-004"}
COHERE_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
GEMINI_TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}


def vector(text: str, size: int = DIMENSIONS) -> list[float]:
    """A deterministic unit-ish vector for `text`."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(size)]


def tokens(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)


def _openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}, status
    )


def create_embeddings_app(provider: str, api_key: str) -> Starlette:
    requests: list[dict[str, Any]] = []

    async def body_of(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    async def openai(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return _openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        body = await body_of(request)
        if not isinstance(body, dict):
            return _openai_error(400, "We could not parse the JSON body of your request.")
        requests.append(body)
        unknown = set(body) - {"model", "input", "encoding_format", "dimensions", "user"}
        if unknown:
            return _openai_error(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        model, texts = body.get("model"), body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            return _openai_error(400, "'$.input' is invalid. Please check the API reference.", param="input")
        if len(texts) > 2048:
            return _openai_error(400, "'$.input' must have at most 2048 items.", param="input")
        if model not in OPENAI_MODELS:
            return _openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        size = body.get("dimensions", DIMENSIONS)
        if "dimensions" in body and not str(model).startswith("text-embedding-3"):
            return _openai_error(400, "This model does not support specifying dimensions.", param="dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _openai_error(400, f"'{encoding}' is not one of ['float', 'base64'].", param="encoding_format")

        def item(i: int, text: str) -> dict[str, Any]:
            values = vector(text, size)
            data: Any = values
            if encoding == "base64":
                data = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            return {"object": "embedding", "index": i, "embedding": data}

        return JSONResponse(
            {
                "object": "list",
                "data": [item(i, t) for i, t in enumerate(texts)],
                "model": model,
                "usage": {"prompt_tokens": tokens(texts), "total_tokens": tokens(texts)},
            }
        )

    async def mistral(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"message": "Unauthorized", "request_id": "r"}, 401)
        body = await body_of(request)
        if not isinstance(body, dict):
            return JSONResponse({"object": "error", "message": "Invalid JSON", "type": "invalid_request_error"}, 400)
        requests.append(body)
        # Mistral validates with pydantic: an extra field is a 422 naming it (encoding_format too: it is OpenAI's)
        extra = set(body) - {"model", "input", "output_dimension", "output_dtype"}
        if extra:
            name = sorted(extra)[0]
            return JSONResponse(
                {"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", name],
                                                            "msg": "Extra inputs are not permitted"}]},
                 "type": "invalid_request_error", "param": None, "code": None},
                422,
            )  # fmt: skip
        model, texts = body.get("model"), body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            return JSONResponse(
                {"object": "error", "message": "input: field required", "type": "invalid_request_error"}, 422
            )
        if model not in MISTRAL_MODELS:
            return JSONResponse({"object": "error", "message": f"Invalid model: {model}", "type": "invalid_model"}, 400)
        if "output_dimension" in body and model != "codestral-embed":
            return JSONResponse(
                {"object": "error", "message": "output_dimension is only supported by codestral-embed",
                 "type": "invalid_request_error"},
                400,
            )  # fmt: skip
        size = body.get("output_dimension", DIMENSIONS)
        return JSONResponse(
            {
                "id": "emb-1",
                "object": "list",
                "data": [
                    {"object": "embedding", "embedding": vector(t, size), "index": i} for i, t in enumerate(texts)
                ],
                "model": model,
                "usage": {"prompt_tokens": tokens(texts), "total_tokens": tokens(texts), "completion_tokens": 0},
            }
        )

    async def cohere(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"message": "invalid api token"}, 401)
        body = await body_of(request)
        if not isinstance(body, dict):
            return JSONResponse({"message": "invalid request: body is not valid JSON"}, 400)
        requests.append(body)
        known = {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension",
                 "truncate", "max_tokens", "priority"}  # fmt: skip
        unknown = set(body) - known
        if unknown:
            return JSONResponse({"message": f"invalid request: unknown field: parameter {sorted(unknown)[0]}"}, 400)
        model, texts, input_type = body.get("model"), body.get("texts"), body.get("input_type")
        if not model:
            return JSONResponse({"message": "invalid request: model must be specified"}, 400)
        if input_type not in COHERE_INPUT_TYPES:
            return JSONResponse(
                {"message": "invalid request: valid input_type must be provided with the provided model"}, 400
            )
        if not isinstance(texts, list) or not texts:
            return JSONResponse({"message": "invalid request: one of texts, images or inputs must be specified"}, 400)
        if len(texts) > 96:
            return JSONResponse(
                {"message": f"invalid request: total number of texts must be at most 96 - received {len(texts)}"}, 400
            )
        if model not in COHERE_MODELS:
            return JSONResponse({"message": f"model '{model}' not found, make sure the correct model ID was used"}, 404)
        if "output_dimension" in body and model != "embed-v4.0":
            return JSONResponse({"message": "invalid request: output_dimension is only supported by embed-v4.0"}, 400)
        size = body.get("output_dimension", DIMENSIONS)
        types = body.get("embedding_types") or ["float"]
        return JSONResponse(
            {
                "id": "embed-1",
                "embeddings": {kind: [vector(t, size) for t in texts] for kind in types},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens(texts)}},
                "response_type": "embeddings_by_type",
            }
        )

    async def gemini(request: Request) -> JSONResponse:
        if request.headers.get("x-goog-api-key") != api_key:
            return JSONResponse(
                {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                           "status": "INVALID_ARGUMENT"}},
                400,
            )  # fmt: skip
        model = request.path_params["model"]
        body = await body_of(request)
        if not isinstance(body, dict):
            return _gemini_error(400, "Invalid JSON payload received.")
        requests.append(body)
        if set(body) - {"requests"}:
            return _gemini_error(
                400, f'Invalid JSON payload received. Unknown name "{sorted(set(body) - {"requests"})[0]}"'
            )
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            return _gemini_error(400, "* BatchEmbedContentsRequest.requests: contents is not specified")
        if len(items) > 100:
            return _gemini_error(400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
        if model not in GEMINI_MODELS:
            return _gemini_error(404, f"models/{model} is not found for API version v1beta", "NOT_FOUND")
        out = []
        for i, item in enumerate(items):
            if item.get("model") != f"models/{model}":
                return _gemini_error(
                    400, f"* BatchEmbedContentsRequest.requests[{i}].model: the model in the request must be "
                    f"models/{model}, as in the URL"
                )  # fmt: skip
            task = item.get("taskType")
            if task is not None and task not in GEMINI_TASK_TYPES:
                return _gemini_error(400, f"Invalid value at 'requests[{i}].task_type', \"{task}\"")
            parts = (item.get("content") or {}).get("parts") or []
            text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
            if not text:
                return _gemini_error(
                    400, f"* BatchEmbedContentsRequest.requests[{i}].content: contents is not specified"
                )
            out.append({"values": vector(text, item.get("outputDimensionality", DIMENSIONS))})
        return JSONResponse({"embeddings": out})

    routes = {
        "openai": [Route("/v1/embeddings", openai, methods=["POST"])],
        "mistral": [Route("/v1/embeddings", mistral, methods=["POST"])],
        "cohere": [Route("/v2/embed", cohere, methods=["POST"])],
        "google": [Route("/v1beta/models/{model}:batchEmbedContents", gemini, methods=["POST"])],
    }[provider]
    app = Starlette(routes=routes)
    app.state.requests = requests
    return app


def _gemini_error(status: int, message: str, kind: str = "INVALID_ARGUMENT") -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": kind}}, status)
