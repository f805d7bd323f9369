"""The fake Hub is faithful: huggingface_hub's own client (model_info, hf_hub_download, snapshot_download,
list_repo_tree) works against it as against huggingface.co, and it refuses what the real Hub refuses."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from unimodel.runtime.bundled import smollm2_gguf

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer

TOKEN = "hf_fakeHUBtoken0123456789abcdefghijkl"
OTHER = "hf_someoneELSE0123456789abcdefghijkl"
WEIGHTS = os.urandom(3 * 1024 * 1024 + 17)
CONFIG = json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"})


@pytest.fixture
def hub() -> FakeHub:
    hub = FakeHub()
    hub.add_token(TOKEN, "alice")
    hub.add_token(OTHER, "bob")
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS, "1_Pooling/config.json": "{}", "README.md": "# x"}
    hub.add_repo("acme/tiny", files, pipeline_tag="fill-mask")
    hub.add_repo("acme/secret", {"config.json": CONFIG}, private=True, access={"alice"})
    hub.add_repo("acme/gated", {"config.json": CONFIG, "model.safetensors": WEIGHTS}, gated="manual", access={"alice"})
    return hub


@pytest.fixture
def server(hub: FakeHub) -> Iterator[LiveServer]:
    with LiveServer(hub.app) as live:
        yield live


def api(server: LiveServer, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=server.url, token=token)


def test_model_info_has_the_hub_fields(server: LiveServer) -> None:
    info = api(server).model_info("acme/tiny", files_metadata=True)
    assert info.id == "acme/tiny" and len(info.sha or "") == 40
    assert (info.pipeline_tag, info.library_name, info.private, info.gated) == (
        "fill-mask",
        "transformers",
        False,
        False,
    )
    assert info.config == {"architectures": ["BertForMaskedLM"], "model_type": "bert"}
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert sorted(siblings) == ["1_Pooling/config.json", "README.md", "config.json", "model.safetensors"]
    weights = siblings["model.safetensors"]
    assert weights.size == len(WEIGHTS) and weights.lfs is not None
    assert weights.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    config = siblings["config.json"]
    assert config.lfs is None and config.blob_id == _git_sha1(CONFIG.encode())
    assert {"transformers", "fill-mask", "bert"} <= set(info.tags or [])
    plain = api(server).model_info("acme/tiny")
    assert [s.size for s in plain.siblings or []] == [None] * 4  # sizes only with files_metadata, as the Hub


def test_gguf_repo_info_is_read_from_the_real_file(hub: FakeHub, server: LiveServer) -> None:
    gguf = smollm2_gguf()
    assert gguf is not None
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {"SmolLM2-135M-Instruct.Q4_1.gguf": gguf})
    info = api(server).model_info("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    assert info.gguf is not None
    assert (info.gguf["architecture"], info.gguf["context_length"]) == ("llama", 8192)
    assert info.gguf["total"] == 134_515_008 and info.gguf["eos_token"] == "<|im_end|>"
    assert "{% for message in messages %}" in info.gguf["chat_template"]
    assert {"gguf", "conversational"} <= set(info.tags or [])


def test_model_info_at_a_revision_and_unknown_revision(hub: FakeHub, server: LiveServer) -> None:
    sha = hub.repos["acme/tiny"].sha
    assert api(server).model_info("acme/tiny", revision="main").sha == sha
    assert api(server).model_info("acme/tiny", revision=sha).sha == sha
    with pytest.raises(RevisionNotFoundError) as caught:
        api(server).model_info("acme/tiny", revision="nope")
    assert caught.value.response.status_code == 404


def test_repo_ids_are_case_insensitive_and_answer_the_canonical_id(server: LiveServer) -> None:
    assert api(server).model_info("ACME/Tiny").id == "acme/tiny"


def test_unknown_repo_is_401_for_anonymous_callers_and_404_with_a_token(server: LiveServer) -> None:
    with pytest.raises(RepositoryNotFoundError) as anonymous:
        api(server).model_info("acme/missing")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as signed_in:
        api(server, TOKEN).model_info("acme/missing")
    assert signed_in.value.response.status_code == 404


def test_private_repo_looks_missing_without_access(server: LiveServer) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api(server).model_info("acme/secret")
    with pytest.raises(RepositoryNotFoundError):
        api(server, OTHER).model_info("acme/secret")
    assert api(server, TOKEN).model_info("acme/secret").private is True


def test_unknown_token_is_invalid_credentials_not_repo_not_found(server: LiveServer) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        api(server, "hf_unknown").model_info("acme/tiny")
    assert not isinstance(caught.value, RepositoryNotFoundError)
    assert caught.value.response.status_code == 401
    assert caught.value.server_message == "Invalid credentials in Authorization header"


def test_lfs_file_downloads_through_the_cdn_without_the_token(hub: FakeHub, server: LiveServer, tmp_path: Path) -> None:
    path = hf_hub_download("acme/tiny", "model.safetensors", endpoint=server.url, cache_dir=tmp_path, token=TOKEN)
    assert Path(path).read_bytes() == WEIGHTS
    sha = hub.repos["acme/tiny"].sha
    assert Path(path) == tmp_path / "models--acme--tiny" / "snapshots" / sha / "model.safetensors"
    assert Path(path).resolve() == tmp_path / "models--acme--tiny" / "blobs" / hashlib.sha256(WEIGHTS).hexdigest()
    head, get = [r for r in hub.requests if "model.safetensors" in r.path or r.path.startswith("/cdn/")]
    assert (head.method, head.authorized, head.host.split(":")[0]) == ("HEAD", True, "127.0.0.1")
    assert (get.method, get.authorized, get.host.split(":")[0]) == ("GET", False, "localhost")  # off the Hub
    assert (tmp_path / "models--acme--tiny" / "refs" / "main").read_text() == sha


def test_git_file_is_stored_under_its_git_blob_id(server: LiveServer, tmp_path: Path) -> None:
    path = hf_hub_download("acme/tiny", "config.json", endpoint=server.url, cache_dir=tmp_path, token=False)
    assert Path(path).resolve().name == _git_sha1(CONFIG.encode())


def test_missing_file_is_entry_not_found(server: LiveServer, tmp_path: Path) -> None:
    with pytest.raises(RemoteEntryNotFoundError) as caught:
        hf_hub_download("acme/tiny", "nope.json", endpoint=server.url, cache_dir=tmp_path, token=False)
    assert caught.value.response.status_code == 404


def test_gated_repo_needs_a_token_with_access(server: LiveServer, tmp_path: Path) -> None:
    assert api(server).model_info("acme/gated").gated == "manual"  # the info is public
    with pytest.raises(GatedRepoError) as anonymous:
        hf_hub_download("acme/gated", "config.json", endpoint=server.url, cache_dir=tmp_path, token=False)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as not_granted:
        hf_hub_download("acme/gated", "config.json", endpoint=server.url, cache_dir=tmp_path, token=OTHER)
    assert not_granted.value.response.status_code == 403
    assert "not in the authorized list" in (not_granted.value.server_message or "")
    granted = hf_hub_download("acme/gated", "model.safetensors", endpoint=server.url, cache_dir=tmp_path, token=TOKEN)
    assert Path(granted).read_bytes() == WEIGHTS


def test_broken_transfer_is_resumed_with_a_range_request(hub: FakeHub, server: LiveServer, tmp_path: Path) -> None:
    chunk = 10 * 1024 * 1024  # huggingface_hub writes (and so resumes) in steps of this
    big = os.urandom(chunk + 2_000_000)
    hub.add_repo("acme/big", {"model.safetensors": big})
    hub.break_bodies(after_bytes=chunk + 500_000)
    path = hf_hub_download("acme/big", "model.safetensors", endpoint=server.url, cache_dir=tmp_path, token=False)
    assert Path(path).read_bytes() == big
    bodies = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert [r.range for r in bodies] == [None, f"bytes={chunk}-"]
    assert hub.served("acme/big", "model.safetensors") == len(big) + 500_000  # the unwritten tail, sent again


def test_snapshot_download_follows_tree_pages(hub: FakeHub, server: LiveServer, tmp_path: Path) -> None:
    hub.tree_page_size = 2
    folder = Path(snapshot_download("acme/tiny", endpoint=server.url, cache_dir=tmp_path, token=False))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert sum(1 for r in hub.requests if "/tree/" in r.path) == 3  # 4 files and a folder, 2 a page


def test_tree_lists_folders_and_lfs_info(server: LiveServer) -> None:
    top = list(api(server).list_repo_tree("acme/tiny"))
    assert [(type(e).__name__, e.path) for e in top] == [
        ("RepoFolder", "1_Pooling"),
        ("RepoFile", "README.md"),
        ("RepoFile", "config.json"),
        ("RepoFile", "model.safetensors"),
    ]
    weights = top[-1]
    assert isinstance(weights, RepoFile) and weights.lfs is not None and weights.lfs.size == len(WEIGHTS)
    assert isinstance(top[0], RepoFolder)
    inner = list(api(server).list_repo_tree("acme/tiny", path_in_repo="1_Pooling"))
    assert [e.path for e in inner] == ["1_Pooling/config.json"]


def test_ranges_are_served_as_206_and_refused_past_the_end(hub: FakeHub, server: LiveServer) -> None:
    url = f"{server.url}/acme/tiny/resolve/main/config.json"
    part = httpx.get(url, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == CONFIG.encode()[2:10]
    assert part.headers["content-range"] == f"bytes 2-9/{len(CONFIG)}"
    assert httpx.get(url, headers={"Range": f"bytes={len(CONFIG)}-"}).status_code == 416
    head = httpx.head(url)
    assert head.headers["x-repo-commit"] == hub.repos["acme/tiny"].sha
    assert head.headers["etag"] == f'"{_git_sha1(CONFIG.encode())}"'
    assert int(head.headers["content-length"]) == len(CONFIG)


def test_cdn_refuses_an_unsigned_url(server: LiveServer) -> None:
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    answer = httpx.get(f"{server.url}/cdn/{sha}?repo=acme/tiny&file=model.safetensors&Signature=forged")
    assert answer.status_code == 403


def test_outage_answers_every_request_with_that_status(hub: FakeHub, server: LiveServer) -> None:
    hub.outage = 503
    with pytest.raises(HfHubHTTPError) as caught:
        api(server).model_info("acme/tiny", timeout=5)
    assert caught.value.response.status_code == 503


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
