"""What providers' embedding APIs have in common: OpenAI's shape (OpenAI, Mistral and the compatible vendors send
and answer it) and the checks every adapter makes on a canonical embeddings request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..protocol import EmbeddingRequest, EmbeddingResult, UnsupportedParameter, Usage


def refuse_extras(request: EmbeddingRequest, provider: str, allowed: Iterable[str] = ()) -> dict[str, Any]:
    """The request's provider parameters a provider takes (`allowed`); any other is a 400 naming it."""
    allowed = frozenset(allowed)
    for name in request.extra:
        if name not in allowed:
            raise UnsupportedParameter(name, provider, "not an embeddings parameter of this provider")
    return dict(request.extra)


def openai_style_body(
    request: EmbeddingRequest,
    provider: str,
    *,
    dimensions_field: str | None,
    allowed: Iterable[str] = (),
    encoding_format: bool = True,
) -> dict[str, Any]:
    """`{model, input, encoding_format: "float" (where the API has the field), <dimensions_field>?}` plus the
    allowed provider parameters."""
    body: dict[str, Any] = {"model": request.model, "input": list(request.inputs)}
    if encoding_format:
        body["encoding_format"] = "float"
    if request.dimensions is not None:
        if dimensions_field is None:
            raise UnsupportedParameter("dimensions", provider, "its embedding models have one size")
        body[dimensions_field] = request.dimensions
    body.update(refuse_extras(request, provider, allowed))
    return body


def parse_openai_style(body: Any, request: EmbeddingRequest) -> EmbeddingResult:
    """`{data: [{index, embedding}], model, usage: {prompt_tokens}}`, put back in the order of the inputs."""
    rows = sorted(body["data"], key=lambda row: int(row.get("index", 0)))
    vectors = [[float(x) for x in row["embedding"]] for row in rows]
    if len(vectors) != len(request.inputs):
        raise ValueError(f"{len(vectors)} vectors for {len(request.inputs)} inputs")
    usage = body.get("usage") or {}
    tokens = usage.get("prompt_tokens")
    return EmbeddingResult(
        vectors, str(body.get("model") or request.model), Usage(input_tokens=int(tokens or 0)), raw=None
    )
