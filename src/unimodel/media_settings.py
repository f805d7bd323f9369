"""`[media.store]`: the media the server generates (images, speech) kept for a while and served by the server itself,
for the outputs that are URLs (the v2 text-to-image and text-to-speech tasks; the OpenAI images API's `url`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MediaStoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: str | None = Field(
        default=None, description="Where the media files are kept; `<[store] data_dir>/media` when unset."
    )
    retention_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="A generated file is served (and kept) this long after it was made; then a 404, and deleted.",
    )
    max_item_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="The largest file kept; a larger output is refused (502)."
    )
    max_total_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1,
        description="All kept files together; past it the oldest are deleted first to make room.",
    )
    public_url: str | None = Field(
        default=None,
        description='The base the URLs start with, e.g. "https://models.example.com" behind a proxy; unset: the '
        "request's own scheme and host.",
    )

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"'{url}' must start with http:// or https://")
        return url.rstrip("/") if url is not None else None
