"""What the Hub says about a repo, reduced to what deciding a pull needs (plan.py reads only this).

`RepoInfo.from_model_info` takes huggingface_hub's `ModelInfo` as `HfApi.model_info(files_metadata=True)`
returns it; tests can build a `RepoInfo` directly, or pass `ModelInfo(**json)` of a Hub answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class HubFile:
    """A file of the repo: its path, size (None when the Hub did not say) and the name of its blob in the cache
    (huggingface_hub stores a file under its ETag: the sha256 of an LFS file, the git blob id of another)."""

    name: str
    size: int | None = None
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class RepoInfo:
    id: str
    sha: str
    files: tuple[HubFile, ...]
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: frozenset[str] = frozenset()
    gated: bool = False
    private: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    gguf: Mapping[str, Any] | None = None

    def file(self, name: str) -> HubFile | None:
        return next((f for f in self.files if f.name == name), None)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.files)

    @classmethod
    def from_model_info(cls, info: Any) -> RepoInfo:
        """From a huggingface_hub `ModelInfo` (its attributes are read, so any object shaped like it works)."""
        files = []
        for sibling in info.siblings or ():
            lfs = sibling.lfs
            etag = (lfs.sha256 if lfs is not None else None) or sibling.blob_id
            size = sibling.size if sibling.size is not None else (lfs.size if lfs is not None else None)
            files.append(HubFile(name=sibling.rfilename, size=size, etag=etag))
        pipeline_tag = info.pipeline_tag
        transformers_info = info.transformers_info
        if pipeline_tag is None and transformers_info is not None:
            pipeline_tag = transformers_info.pipeline_tag
        return cls(
            id=info.id,
            sha=info.sha or "",
            files=tuple(files),
            pipeline_tag=pipeline_tag,
            library_name=info.library_name,
            tags=frozenset(info.tags or ()),
            gated=bool(info.gated),
            private=bool(info.private),
            config=dict(info.config or {}),
            gguf=dict(info.gguf) if info.gguf else None,
        )
