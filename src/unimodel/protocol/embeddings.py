"""Embeddings in canonical form: texts in, one vector per text out (closed providers' embedding models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .result import Usage

# What the vectors are for, where a provider asks (Gemini's taskType, Cohere's input_type); others ignore it.
Purpose = Literal["query", "document", "similarity", "classification", "clustering"]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str  # the provider's own model name
    inputs: tuple[str, ...]
    dimensions: int | None = None  # a shorter vector, where the model can give one
    purpose: Purpose | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # provider parameters by their wire name (or refused)


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]  # in the order of the inputs
    model: str
    usage: Usage = field(default_factory=Usage)
    raw: Any = None  # the provider's whole answer
