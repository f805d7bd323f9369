"""A fake Hugging Face Hub, written from huggingface_hub's client code (file_download.py, hf_api.py,
utils/_http.py) and the Hub API reference, serving real small models over real HTTP.

    hub = FakeHub()
    hub.add_folder("acme/tiny-chat", folder)                  # a transformers folder saved by save_pretrained
    hub.add_repo("acme/q-GGUF", {"q.Q4_K_M.gguf": path})      # any files: bytes or paths on disk
    with LiveServer(hub.app) as server:
        huggingface_hub.hf_hub_download("acme/tiny-chat", "config.json", endpoint=server.url, cache_dir=…)

What it answers, as the real Hub does:

- `GET /api/models/{repo_id}` and `…/revision/{revision}`: model info (`id`, `sha`, `siblings` — with `size`,
  `blobId` and `lfs` when `?blobs=true`, which is what `model_info(files_metadata=True)` sends — `pipeline_tag`,
  `library_name`, `tags`, `gated`, `private`, `config` {architectures, model_type, tokenizer_config, auto_map},
  `gguf` {total, architecture, context_length, chat_template, bos_token, eos_token} read from the GGUF header,
  `safetensors` {parameters, total} read from the safetensors headers, `cardData`, `transformersInfo`).
- `GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=`: files (`oid`, `size`, `lfs`) and folders,
  paged with a `Link: <…>; rel="next"` header past `tree_page_size` entries.
- `HEAD`/`GET /{repo_id}/resolve/{revision}/{filename}`: a git file answers 200 with `ETag` (its git blob sha1),
  `X-Repo-Commit`, `Content-Length`, `Accept-Ranges`; an LFS file (the Hub's default `.gitattributes` patterns,
  or 10 MiB and more) answers 302 to a CDN on another origin (`localhost` when called on `127.0.0.1`) with
  `X-Linked-Etag` (its sha256), `X-Linked-Size` and `X-Repo-Commit`; the CDN URL is signed, needs no token, and
  serves `Range` requests (206, `Content-Range`; 416 past the end).
- Errors carry `X-Error-Code` / `X-Error-Message` and a JSON `{"error": …}` body: `RepoNotFound` (401 without a
  token, 404 with one — for private repos too), `RevisionNotFound` (404 "Invalid rev id"), `EntryNotFound` (404,
  with `X-Repo-Commit`), `GatedRepo` (401 without a token, 403 with a token not granted access), and 401
  "Invalid credentials in Authorization header" for an unknown token.

Knobs (set any time, from any thread): `throttle_bps` (file bodies sent at this rate); `break_bodies(after, times,
file)` (the next `times` bodies, of `file` when given, end the connection after `after` bytes); `outage` (every
request answered with this status); `delay_s` (every answer waits this long first); `gate` (a `threading.Event`
file bodies wait on); `heal()` clears them. Counters: `bytes_served` and `body_starts` (file bodies, by
"repo_id/path"), `requests` (every request seen: method, path, host, Range, whether it carried a token).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import struct
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import quote, unquote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["FakeFile", "FakeHub", "FakeRepo", "SeenRequest", "gguf_metadata"]

# The patterns of the Hub's default .gitattributes that matter here; any file of 10 MiB or more is LFS too.
_LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".gguf",
    ".onnx",
    ".h5",
    ".msgpack",
    ".ot",
    ".pt",
    ".pth",
    ".ckpt",
    ".tflite",
    ".model",
    ".pb",
    ".npz",
    ".zip",
)
_LFS_MIN_SIZE = 10 * 1024 * 1024
_CHUNK = 64 * 1024
_SIGNING_KEY = b"fake-hub-cdn"
_NOW = "2025-01-15T10:00:00.000Z"

_PIPELINE_BY_ARCH = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
)


class CutConnection(Exception):
    """Raised inside a file body to end the connection early (uvicorn closes it; the client sees a short body)."""


class _QuietCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], CutConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietCuts())


@dataclass
class FakeFile:
    """One file of a repo: bytes in memory, or a file on disk served as it is (read in chunks)."""

    data: bytes | None = None
    source: Path | None = None
    lfs: bool | None = None  # None: as the Hub's default .gitattributes and its 10 MiB rule decide
    _sha256: str | None = field(default=None, repr=False)
    _sha1: str | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else Path(self.source or "").stat().st_size

    def is_lfs(self, name: str) -> bool:
        if self.lfs is not None:
            return self.lfs
        return name.endswith(_LFS_SUFFIXES) or self.size >= _LFS_MIN_SIZE

    def open(self) -> BinaryIO:
        if self.data is not None:
            import io

            return io.BytesIO(self.data)
        return open(self.source or "", "rb")

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        end = self.size if end is None else end
        with self.open() as f:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            digest = hashlib.sha256()
            for chunk in self.chunks():
                digest.update(chunk)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def pointer(self) -> bytes:
        """The git-lfs pointer file git stores in place of an LFS file."""
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    def git_sha1(self, name: str) -> str:
        """The git blob id: of the content for a git file, of the pointer for an LFS file."""
        if self._sha1 is None:
            if self.is_lfs(name):
                self._sha1 = _git_blob_sha1(self.pointer())
            else:
                digest = hashlib.sha1(f"blob {self.size}\0".encode())
                for chunk in self.chunks():
                    digest.update(chunk)
                self._sha1 = digest.hexdigest()
        return self._sha1


@dataclass
class FakeRepo:
    """A model repo with one commit; `refs` names it (branches and tags)."""

    id: str
    files: dict[str, FakeFile]
    private: bool = False
    gated: Literal[False, "auto", "manual"] = False
    access: set[str] = field(default_factory=set)  # users whose tokens may read a private or gated repo
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: list[str] = field(default_factory=list)
    card_data: dict[str, Any] | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)  # fields merged into the model info as they are
    refs: dict[str, str] = field(default_factory=dict)
    sha: str = ""

    def __post_init__(self) -> None:
        if not self.sha:
            digest = hashlib.sha1(self.id.encode())
            for name in sorted(self.files):
                digest.update(name.encode() + b"\0" + str(self.files[name].size).encode())
            self.sha = digest.hexdigest()
        self.refs.setdefault("main", self.sha)

    def commit(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return self.sha if revision == self.sha else None


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str  # as sent, percent-encoded
    host: str
    range: str | None
    authorized: bool  # an Authorization header came with it


class FakeHub:
    """The Hub's state (repos, tokens, knobs, counters) and its Starlette app (`.app`)."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}  # by lower-cased id: the Hub's ids are case-insensitive
        self.tokens: dict[str, str] = {}  # token → user
        self.throttle_bps: float | None = None
        self.outage: int | None = None
        self.delay_s: float = 0.0
        self.gate: threading.Event | None = None
        self.tree_page_size = 1000
        self.requests: list[SeenRequest] = []
        self.bytes_served: Counter[str] = Counter()
        self.body_starts: Counter[str] = Counter()  # file bodies begun, by "repo_id/path"
        self._cuts: list[tuple[int, str | None]] = []  # one per body to cut: after how many bytes, of which file
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=["GET", "HEAD"])])

    # --- building --------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: Mapping[str, bytes | str | Path | FakeFile], **fields: Any) -> FakeRepo:
        """A repo with these files (bytes, text, a path on disk, or a FakeFile); `fields` are FakeRepo's."""
        built = {name: _as_file(content) for name, content in files.items()}
        repo = FakeRepo(id=repo_id, files=built, **fields)
        self.repos[repo_id.lower()] = repo
        return repo

    def add_folder(
        self,
        repo_id: str,
        folder: Path,
        extra: Mapping[str, bytes | str | Path | FakeFile] | None = None,
        **fields: Any,
    ) -> FakeRepo:
        """A repo holding every file under `folder` (as `save_pretrained` left it), plus `extra` files."""
        files: dict[str, bytes | str | Path | FakeFile] = {
            p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()
        }
        files.update(extra or {})
        if "pipeline_tag" not in fields and (folder / "config.json").is_file():
            architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
            fields["pipeline_tag"] = default_pipeline_tag(architectures)
        return self.add_repo(repo_id, files, **fields)

    def add_token(self, token: str, user: str) -> None:
        self.tokens[token] = user

    def break_bodies(self, after_bytes: int, times: int = 1, file: str | None = None) -> None:
        """The next `times` file bodies (of `file` only, when given) end the connection after `after_bytes` bytes."""
        with self._lock:
            self._cuts.extend([(after_bytes, file)] * times)

    def heal(self) -> None:
        """No more cut bodies, no outage, no delay, no gate."""
        with self._lock:
            self._cuts.clear()
        self.outage, self.delay_s, self.gate = None, 0.0, None

    def served(self, repo_id: str, name: str) -> int:
        return self.bytes_served[f"{repo_id}/{name}"]

    # --- dispatch --------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        self.requests.append(
            SeenRequest(
                method=request.method,
                path=path,
                host=request.headers.get("host", ""),
                range=request.headers.get("range"),
                authorized="authorization" in request.headers,
            )
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.outage is not None:
            return _error(self.outage, None, "Internal Error - We're working hard to fix this as soon as possible!")
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if segments[:1] == ["cdn"]:
            return await self._cdn(request, segments[1:])
        if segments[:2] == ["api", "models"]:
            return self._api(request, segments[2:])
        for i, segment in enumerate(segments):
            if segment == "resolve" and i in (1, 2) and len(segments) > i + 2:
                repo_id = "/".join(segments[:i])
                return await self._resolve(request, repo_id, segments[i + 1], "/".join(segments[i + 2 :]))
        return _error(404, None, "Sorry, we can't find the page you are looking for.")

    def _user(self, request: Request) -> tuple[str | None, Response | None]:
        header = request.headers.get("authorization")
        if header is None:
            return None, None
        token = header.removeprefix("Bearer ").strip()
        user = self.tokens.get(token)
        if user is None:
            return None, _error(401, None, "Invalid credentials in Authorization header")
        return user, None

    def _repo(self, request: Request, repo_id: str) -> tuple[FakeRepo | None, str | None, Response | None]:
        """The repo if this caller may see it; else the error the Hub gives (private repos look missing)."""
        user, denied = self._user(request)
        if denied is not None:
            return None, None, denied
        repo = self.repos.get(repo_id.lower())
        if repo is None or (repo.private and user not in repo.access):
            return None, user, _error(401 if user is None else 404, "RepoNotFound", "Repository not found")
        return repo, user, None

    # --- /api/models -----------------------------------------------------------------------------------

    def _api(self, request: Request, rest: list[str]) -> Response:
        repo_id, tail = _split_repo(rest, self.repos)
        repo, _, denied = self._repo(request, repo_id)
        if denied is not None or repo is None:
            return denied or _error(404, "RepoNotFound", "Repository not found")
        revision, kind, sub = "main", "info", ""
        if tail[:1] == ["revision"] and len(tail) >= 2:
            revision = "/".join(tail[1:])
        elif tail[:1] == ["tree"] and len(tail) >= 2:
            kind, revision, sub = "tree", tail[1], "/".join(tail[2:])
        elif tail:
            return _error(404, None, "Sorry, we can't find the page you are looking for.")
        commit = repo.commit(revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if kind == "tree":
            return self._tree(request, repo, commit, sub)
        blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
        return JSONResponse(model_info_json(repo, blobs=blobs))

    def _tree(self, request: Request, repo: FakeRepo, commit: str, sub: str) -> Response:
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        entries = tree_entries(repo, sub, recursive=recursive)
        if sub and not entries:
            return _error(404, "EntryNotFound", f"{sub} does not exist on {commit}", commit=commit)
        start = int(request.query_params.get("cursor", "0") or 0)
        page = entries[start : start + self.tree_page_size]
        headers = {}
        if start + self.tree_page_size < len(entries):
            query = {k: v for k, v in request.query_params.items() if k != "cursor"}
            query["cursor"] = str(start + self.tree_page_size)
            headers["Link"] = f'<{request.url.replace(query=urlencode(query))}>; rel="next"'
        return JSONResponse(page, headers=headers)

    # --- /{repo_id}/resolve/{revision}/{filename} ------------------------------------------------------

    async def _resolve(self, request: Request, repo_id: str, revision: str, name: str) -> Response:
        repo, user, denied = self._repo(request, repo_id)
        if denied is not None or repo is None:
            return denied or _error(404, "RepoNotFound", "Repository not found")
        commit = repo.commit(revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        file = repo.files.get(name)
        if file is None:
            return _error(404, "EntryNotFound", "Entry not found", commit=commit)
        if repo.gated and user not in repo.access:
            if user is None:
                message = (
                    f"Access to model {repo.id} is restricted. You must have access to it and be authenticated "
                    "to access it. Please log in."
                )
                return _error(401, "GatedRepo", message, commit=commit)
            message = (
                f"Access to model {repo.id} is restricted and you are not in the authorized list. "
                f"Visit https://huggingface.co/{repo.id} to ask for access."
            )
            return _error(403, "GatedRepo", message, commit=commit)
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if file.is_lfs(name):
            sha = file.sha256
            headers |= {
                "ETag": f'"{file.git_sha1(name)}"',
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(file.size),
                "Location": self._cdn_url(request, repo.id, name, sha),
            }
            return Response(f"Found. Redirecting to {headers['Location']}", status_code=302, headers=headers)
        headers["ETag"] = f'"{file.git_sha1(name)}"'
        return await self._body(request, repo.id, name, file, headers)

    def _cdn_url(self, request: Request, repo_id: str, name: str, sha: str) -> str:
        # Another origin than the Hub's, as the real CDN is: huggingface_hub drops the token for it.
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = "127.0.0.1" if request.url.hostname == "localhost" else "localhost"
        signature = hmac.new(_SIGNING_KEY, f"{repo_id}/{name}/{sha}".encode(), "sha256").hexdigest()[:32]
        query = urlencode({"repo": repo_id, "file": name, "Signature": signature})
        return f"http://{host}:{server[1]}/cdn/{sha}?{query}"

    async def _cdn(self, request: Request, rest: list[str]) -> Response:
        repo_id, name = request.query_params.get("repo", ""), request.query_params.get("file", "")
        repo = self.repos.get(repo_id.lower())
        file = repo.files.get(name) if repo is not None else None
        sha = rest[0] if rest else ""
        expected = hmac.new(_SIGNING_KEY, f"{repo_id}/{name}/{sha}".encode(), "sha256").hexdigest()[:32]
        signature = request.query_params.get("Signature", "")
        if repo is None or file is None or file.sha256 != sha or not hmac.compare_digest(signature, expected):
            return Response("<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml")
        headers = {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"}
        return await self._body(request, repo.id, name, file, headers)

    async def _body(
        self, request: Request, repo_id: str, name: str, file: FakeFile, headers: dict[str, str]
    ) -> Response:
        size = file.size
        start, end, status = 0, size, 200
        wanted = request.headers.get("range")
        if wanted is not None:
            parsed = _parse_range(wanted, size)
            if parsed is None:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        media = "application/octet-stream"
        if request.method == "HEAD":
            return Response(b"", status_code=status, headers=headers, media_type=media)
        key = f"{repo_id}/{name}"
        with self._lock:
            cut = None
            for i, (after, only) in enumerate(self._cuts):
                if only is None or only == name:
                    cut = after
                    del self._cuts[i]
                    break
            self.body_starts[key] += 1
        return StreamingResponse(self._stream(key, file, start, end, cut), status_code=status, headers=headers)

    async def _stream(self, key: str, file: FakeFile, start: int, end: int, cut: int | None) -> AsyncIterator[bytes]:
        gate = self.gate
        if gate is not None and not gate.is_set():
            await asyncio.to_thread(gate.wait)
        sent = 0
        step = _CHUNK if self.throttle_bps is None else max(1024, min(_CHUNK, int(self.throttle_bps / 20)))
        with file.open() as f:
            f.seek(start)
            position = start
            while position < end:
                n = min(step, end - position)
                if cut is not None:
                    if sent >= cut:
                        raise CutConnection(f"cut after {sent} bytes")
                    n = min(n, cut - sent)
                chunk = f.read(n)
                if not chunk:
                    return
                yield chunk
                position += len(chunk)
                sent += len(chunk)
                self.bytes_served[key] += len(chunk)
                if self.throttle_bps:
                    await asyncio.sleep(len(chunk) / self.throttle_bps)
        if cut is not None and sent >= cut:
            raise CutConnection(f"cut after {sent} bytes")


# --- the JSON the Hub answers -----------------------------------------------------------------------------


def model_info_json(repo: FakeRepo, *, blobs: bool) -> dict[str, Any]:
    names = sorted(repo.files)
    config = _config_summary(repo)
    pipeline_tag = repo.pipeline_tag
    library = repo.library_name
    if library is None and "config.json" in repo.files:
        library = "transformers"
    ggufs = [n for n in names if n.endswith(".gguf")]
    tags = list(dict.fromkeys([*(t for t in [library] if t), *repo.tags]))
    if any(n.endswith(".safetensors") for n in names):
        tags.append("safetensors")
    if ggufs:
        tags.append("gguf")
    if config.get("model_type"):
        tags.append(str(config["model_type"]))
    if pipeline_tag:
        tags.append(pipeline_tag)
    gguf = _gguf_summary(repo, ggufs)
    template = (config.get("tokenizer_config") or {}).get("chat_template") or (gguf or {}).get("chat_template")
    if template:
        tags.append("conversational")
    if config.get("auto_map"):
        tags.append("custom_code")
    tags += ["endpoints_compatible", "region:us"]
    org = repo.id.split("/")[0] if "/" in repo.id else None
    info: dict[str, Any] = {
        "_id": hashlib.md5(repo.id.encode()).hexdigest()[:24],
        "id": repo.id,
        "modelId": repo.id,
        "author": org,
        "sha": repo.sha,
        "lastModified": _NOW,
        "createdAt": _NOW,
        "private": repo.private,
        "gated": repo.gated,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": list(dict.fromkeys(tags)),
        "cardData": repo.card_data or {"license": "apache-2.0"},
        "widgetData": [],
        "spaces": [],
        "siblings": [_sibling(name, repo.files[name], blobs) for name in names],
        "usedStorage": sum(f.size for f in repo.files.values()),
    }
    if library:
        info["library_name"] = library
    if pipeline_tag:
        info["pipeline_tag"] = pipeline_tag
    if config:
        info["config"] = config
    if library == "transformers" and config.get("architectures"):
        info["transformersInfo"] = {
            "auto_model": _auto_model(pipeline_tag),
            "pipeline_tag": pipeline_tag,
            "processor": "AutoTokenizer",
        }
    if gguf:
        info["gguf"] = gguf
    safetensors = _safetensors_summary(repo)
    if safetensors:
        info["safetensors"] = safetensors
    info.update(repo.extra_info)
    return info


def tree_entries(repo: FakeRepo, sub: str, *, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{sub.strip('/')}/" if sub else ""
    entries: list[dict[str, Any]] = []
    folders: set[str] = set()
    for name in sorted(repo.files):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            folder = prefix + "/".join(rest[:depth])
            if folder not in folders and (recursive or depth == 1):
                folders.add(folder)
                entries.append(
                    {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0, "path": folder}
                )
        if len(rest) > 1 and not recursive:
            continue
        file = repo.files[name]
        entry: dict[str, Any] = {"type": "file", "oid": file.git_sha1(name), "size": file.size, "path": name}
        if file.is_lfs(name):
            entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": len(file.pointer())}
        entries.append(entry)
    return entries


def _sibling(name: str, file: FakeFile, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": name}
    sibling: dict[str, Any] = {"rfilename": name, "blobId": file.git_sha1(name), "size": file.size}
    if file.is_lfs(name):
        sibling["lfs"] = {"sha256": file.sha256, "size": file.size, "pointerSize": len(file.pointer())}
    return sibling


def _config_summary(repo: FakeRepo) -> dict[str, Any]:
    """The part of config.json and tokenizer_config.json the Hub shows in model info."""
    summary: dict[str, Any] = {}
    raw = _read_json(repo.files.get("config.json"))
    for key in ("architectures", "model_type", "auto_map"):
        if key in raw:
            summary[key] = raw[key]
    tokenizer = _read_json(repo.files.get("tokenizer_config.json"))
    shown = {k: tokenizer[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if k in tokenizer}
    template = tokenizer.get("chat_template")
    jinja = repo.files.get("chat_template.jinja")
    if template is None and jinja is not None:
        with jinja.open() as f:
            template = f.read().decode()
    if template is not None:
        shown["chat_template"] = template
    if shown:
        summary["tokenizer_config"] = shown
    return summary


def _gguf_summary(repo: FakeRepo, ggufs: list[str]) -> dict[str, Any] | None:
    for name in ggufs:
        file = repo.files[name]
        meta = gguf_metadata(file)
        if meta is None:
            continue
        arch = str(meta.get("general.architecture", ""))
        summary: dict[str, Any] = {"total": meta.get("__parameters__", 0), "architecture": arch}
        if f"{arch}.context_length" in meta:
            summary["context_length"] = meta[f"{arch}.context_length"]
        if "tokenizer.chat_template" in meta:
            summary["chat_template"] = meta["tokenizer.chat_template"]
        tokens = meta.get("tokenizer.ggml.tokens")
        for key, field_name in (("bos", "bos_token"), ("eos", "eos_token")):
            token_id = meta.get(f"tokenizer.ggml.{key}_token_id")
            if isinstance(tokens, list) and isinstance(token_id, int) and 0 <= token_id < len(tokens):
                summary[field_name] = tokens[token_id]
        return summary
    return None


def _safetensors_summary(repo: FakeRepo) -> dict[str, Any] | None:
    parameters: Counter[str] = Counter()
    for name, file in repo.files.items():
        if not name.endswith(".safetensors"):
            continue
        with file.open() as f:
            head = f.read(8)
            if len(head) < 8:
                continue
            (length,) = struct.unpack("<Q", head)
            if length > 100_000_000:
                continue
            try:
                header = json.loads(f.read(length))
            except ValueError:
                continue
        for key, tensor in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            parameters[tensor["dtype"]] += count
    if not parameters:
        return None
    return {"parameters": dict(parameters), "total": sum(parameters.values())}


def _auto_model(pipeline_tag: str | None) -> str:
    return {
        "text-generation": "AutoModelForCausalLM",
        "fill-mask": "AutoModelForMaskedLM",
        "text-classification": "AutoModelForSequenceClassification",
        "token-classification": "AutoModelForTokenClassification",
        "question-answering": "AutoModelForQuestionAnswering",
        "text2text-generation": "AutoModelForSeq2SeqLM",
    }.get(pipeline_tag or "", "AutoModel")


def default_pipeline_tag(architectures: Iterable[str]) -> str | None:
    """What the Hub shows for a transformers repo whose card names no pipeline: from its architecture."""
    for arch in architectures:
        for suffix, tag in _PIPELINE_BY_ARCH:
            if arch.endswith(suffix):
                return tag
    return None


# --- GGUF header ------------------------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_gguf_cache: dict[int, dict[str, Any] | None] = {}


def gguf_metadata(file: FakeFile) -> dict[str, Any] | None:
    """The key-value metadata of a GGUF file (and `__parameters__`, summed from its tensor shapes); None when
    the file is not GGUF."""
    key = id(file)
    if key not in _gguf_cache:
        with file.open() as f:
            _gguf_cache[key] = _read_gguf(f)
    return _gguf_cache[key]


def _read_gguf(f: BinaryIO) -> dict[str, Any] | None:
    def read(fmt: str) -> Any:
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    def string() -> str:
        return f.read(read("<Q")).decode("utf-8", errors="replace")

    def value(kind: int) -> Any:
        if kind == 8:
            return string()
        if kind == 9:
            item_kind, count = read("<I"), read("<Q")
            return [value(item_kind) for _ in range(count)]
        return read(_GGUF_SCALARS[kind])

    if f.read(4) != b"GGUF":
        return None
    read("<I")  # version
    tensors, kvs = read("<Q"), read("<Q")
    meta: dict[str, Any] = {}
    for _ in range(kvs):
        name = string()
        meta[name] = value(read("<I"))
    total = 0
    for _ in range(tensors):
        string()
        dims = [read("<Q") for _ in range(read("<I"))]
        read("<I")
        read("<Q")
        count = 1
        for d in dims:
            count *= d
        total += count
    meta["__parameters__"] = total
    return meta


# --- helpers -----------------------------------------------------------------------------------------------


def _as_file(content: bytes | str | Path | FakeFile) -> FakeFile:
    if isinstance(content, FakeFile):
        return content
    if isinstance(content, Path):
        return FakeFile(source=content)
    if isinstance(content, str):
        return FakeFile(data=content.encode())
    return FakeFile(data=content)


def _read_json(file: FakeFile | None) -> dict[str, Any]:
    if file is None:
        return {}
    with file.open() as f:
        try:
            data = json.loads(f.read())
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def _split_repo(rest: list[str], repos: Mapping[str, FakeRepo]) -> tuple[str, list[str]]:
    """`org/name/…` or `name/…` → (repo id, what follows): a known bare name wins, else two segments."""
    if rest and rest[0].lower() in repos:
        return rest[0], rest[1:]
    if len(rest) >= 2 and rest[1] not in ("revision", "tree"):
        return "/".join(rest[:2]), rest[2:]
    return (rest[0] if rest else ""), rest[1:]


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "":
        if not last:
            return None
        start = max(0, size - int(last))
        return start, size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        return None
    return start, end


def _error(status: int, code: str | None, message: str, *, commit: str | None = None) -> Response:
    headers = {"X-Error-Message": message}
    if code is not None:
        headers["X-Error-Code"] = code
    if commit is not None:
        headers["X-Repo-Commit"] = commit
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def resolve_url(endpoint: str, repo_id: str, revision: str, name: str) -> str:
    return f"{endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(name)}"
