"""The models pulled onto this machine, known without the network, and how they become `[[models]]` specs.

Files live in the standard Hugging Face cache (`[hub] cache_dir`, else HF_HUB_CACHE / HF_HOME), shared with
transformers, `hf download` and every other tool that uses it:

    <cache>/models--Qwen--Qwen2.5-0.5B-Instruct/
        blobs/<etag>                 the files' bytes (huggingface_hub writes <etag>.<random>.incomplete first
                                     and renames it when whole, so a partial file is never linked)
        snapshots/<commit>/<name>    links to the blobs: the folder the transformers engine loads
        refs/main                    the commit the branch pointed at when it was pulled
        unimodel.json                this module's manifest: what was decided for the model

The manifest is written after the last file is in place, so a model listed here is complete; a listing checks
that its files are still there (another tool may have deleted them). It sits inside the repo's folder (as
huggingface_hub's own `trees/` listing does), so `hf cache delete` of the repo removes it too.

`model_config` makes a pulled model, or a `[[models]]` table naming a Hub id instead of a path, into the
`OpenModelConfig` the controller takes: a pulled model and a model configured by hand become the same spec.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import OpenModelConfig
from ...protocol.errors import InvalidRequest, NotFound
from .plan import Plan

MANIFEST = "unimodel.json"
_VERSION = 1

log = logging.getLogger("unimodel.hub")


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A model pulled from the Hub, as its manifest records it."""

    id: str  # the repo id, as the Hub spells it
    revision: str  # as asked when pulled
    commit: str
    task: str
    engine: str  # the worker's --engine: llama.cpp or transformers
    library: str
    files: tuple[str, ...]
    entry: str | None  # the GGUF file the engine opens; None: the snapshot folder
    size_bytes: int
    pulled_at: float  # unix time
    folder: Path  # the snapshot folder

    @property
    def path(self) -> Path:
        """What the worker's --path gets: the GGUF file, or the snapshot folder."""
        return self.folder / self.entry if self.entry else self.folder

    def is_complete(self) -> bool:
        return all((self.folder / name).exists() for name in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "revision": self.revision,
            "commit": self.commit,
            "task": self.task,
            "engine": self.engine,
            "library": self.library,
            "files": list(self.files),
            "entry": self.entry,
            "size_bytes": self.size_bytes,
            "pulled_at": self.pulled_at,
            "path": str(self.path),
        }


def repo_folder_name(repo_id: str) -> str:
    """huggingface_hub's folder name for a model repo: models--org--name."""
    return "--".join(["models", *repo_id.split("/")])


class LocalCatalog:
    """The manifests in one cache folder."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def repo_folder(self, repo_id: str) -> Path:
        exact = self.cache_dir / repo_folder_name(repo_id)
        if exact.is_dir():
            return exact
        wanted = repo_folder_name(repo_id).lower()  # the Hub's ids are case-insensitive
        if self.cache_dir.is_dir():
            for folder in self.cache_dir.iterdir():
                if folder.name.lower() == wanted:
                    return folder
        return exact

    def get(self, model_id: str, *, revision: str | None = None, file: str | None = None) -> LocalModel | None:
        """The pulled model, when it is whole and matches `revision` (a branch or tag as pulled, or a commit)
        and `file` (one of its files)."""
        model = self._read(self.repo_folder(model_id))
        if model is None or not model.is_complete():
            return None
        if revision is not None and revision != model.revision and not model.commit.startswith(revision):
            return None
        if file is not None and file not in model.files:
            return None
        return model

    def list(self) -> list[LocalModel]:
        """Every whole pulled model, by id."""
        if not self.cache_dir.is_dir():
            return []
        found = [self._read(folder) for folder in sorted(self.cache_dir.glob("models--*"))]
        return sorted((m for m in found if m is not None and m.is_complete()), key=lambda m: m.id.lower())

    def save(self, plan: Plan) -> LocalModel:
        """Record a finished pull (its files are in the cache): written whole or not at all."""
        folder = self.repo_folder(plan.repo_id)
        model = LocalModel(
            id=plan.repo_id,
            revision=plan.revision,
            commit=plan.commit,
            task=plan.task,
            engine=plan.engine,
            library=plan.library,
            files=plan.names,
            entry=plan.entry,
            size_bytes=plan.total_bytes,
            pulled_at=time.time(),
            folder=folder / "snapshots" / plan.commit,
        )
        data = {"version": _VERSION, **model.to_json()}
        del data["path"]  # derived from where the cache is, so a moved cache still works
        _write_atomic(folder / MANIFEST, json.dumps(data, indent=2) + "\n")
        if plan.revision != plan.commit:
            _write_atomic(folder / "refs" / plan.revision, plan.commit)
        return model

    def remove(self, model_id: str) -> int:
        """Delete the repo's files from the cache (every revision, through huggingface_hub so blobs shared with
        other repos stay); the bytes freed. A 404 when it is not in the cache."""
        folder = self.repo_folder(model_id)
        if not folder.is_dir():
            raise NotFound(f"'{model_id}' is not pulled (nothing in {self.cache_dir}).", code="model_not_found")
        freed = 0
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(self.cache_dir)
        for repo in info.repos:
            if repo.repo_type == "model" and repo.repo_path == folder.resolve():
                strategy = info.delete_revisions(*(r.commit_hash for r in repo.revisions))
                freed = strategy.expected_freed_size
                strategy.execute()
        if folder.exists():  # what huggingface_hub left: the manifest, partial downloads
            freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(self.cache_dir / ".locks" / folder.name, ignore_errors=True)
        log.info("removed %s from %s (%d bytes freed)", model_id, self.cache_dir, freed)
        return freed

    def _read(self, folder: Path) -> LocalModel | None:
        try:
            data = json.loads((folder / MANIFEST).read_text())
            return LocalModel(
                id=str(data["id"]),
                revision=str(data["revision"]),
                commit=str(data["commit"]),
                task=str(data["task"]),
                engine=str(data["engine"]),
                library=str(data["library"]),
                files=tuple(str(n) for n in data["files"]),
                entry=data.get("entry"),
                size_bytes=int(data["size_bytes"]),
                pulled_at=float(data["pulled_at"]),
                folder=folder / "snapshots" / str(data["commit"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable manifest %s: %s", folder / MANIFEST, exc)
            return None


def model_config(local: LocalModel, table: OpenModelConfig | None = None) -> OpenModelConfig:
    """The spec the controller takes for a pulled model: `table`'s settings (a `[[models]]` table naming this
    Hub id and no path) with the local path, and the task and engine decided at pull time unless the table
    sets them. A table whose engine cannot load the pulled files is a 400."""
    if table is None:
        return OpenModelConfig.model_validate(
            {"id": local.id, "task": local.task, "engine": local.engine, "path": str(local.path)}
        )
    update: dict[str, Any] = {"path": str(local.path)}
    chosen = table.model_fields_set
    if "task" not in chosen:
        update["task"] = local.task
    if "engine" not in chosen:
        update["engine"] = local.engine
    elif table.engine not in (local.engine, "command"):
        raise InvalidRequest(
            f"model '{table.id}': engine = \"{table.engine}\", but what the Hub has for it runs on {local.engine} "
            f'({local.library}); set engine = "{local.engine}" or leave it out.',
            param="engine",
        )
    return table.model_copy(update=update)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
