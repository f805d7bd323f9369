"""Downloading a plan's files into the Hugging Face cache, with progress, once.

    pull = Pulls(settings, catalog).start(plan)   # the pull of this plan already running, or a new one
    pull.progress()                               # PullProgress: bytes, files, rate, ETA, state
    local = await pull.wait()                     # LocalModel; a 4xx/5xx UnimodelError when it failed

Files are fetched by huggingface_hub's `hf_hub_download`, pinned to the plan's commit, one after the other in a
thread of the pull's own: it writes each into `blobs/<etag>.<random>.incomplete`, renames it when whole, then
links it into `snapshots/<commit>/` — a partial file is never visible there — and retries a broken transfer
itself, resuming with a `Range` request (5 times, while bytes keep arriving). A pull that fails keeps the files
it finished; pulling again fetches only the rest (huggingface_hub 1.x+ does not resume a file across calls).

Once per process: `Pulls` hands every caller of the same plan the same `Pull`, and a caller that stops waiting
(a cancelled task) does not stop it. Once per machine: huggingface_hub takes a file lock per blob
(`<cache>/.locks/`), so a second process pulling the same model waits and then finds the file there.

Progress is read from the cache, not from the download loop, so it also counts a file another process is
fetching: a file is done when its snapshot link or blob exists, partly done by the size of its `.incomplete`
blob (huggingface_hub writes in 10 MB chunks, so progress moves in steps of up to 10 MB).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ... import __version__
from ...protocol.errors import UnimodelError
from .errors import InsufficientStorage, client_missing, hub_error, scrub
from .local import LocalCatalog, LocalModel, repo_folder_name
from .plan import Plan, PlannedFile, format_bytes
from .settings import HubSettings

log = logging.getLogger("unimodel.hub")

State = Literal["pulling", "done", "failed"]
_RATE_WINDOW_S = 5.0
_DISK_RESERVE = 16 * 1024 * 1024  # left free beyond the files, for the manifest, links and locks


@dataclass(frozen=True, slots=True)
class PullProgress:
    model_id: str
    state: State
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    rate_bps: float  # over the last few seconds
    eta_s: float | None  # None until a rate is known, and once finished
    started_at: float  # unix time
    error: UnimodelError | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model_id,
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "rate_bps": round(self.rate_bps),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "started_at": self.started_at,
        }
        if self.error is not None:
            out["error"] = {"status": self.error.status, "code": self.error.code, "message": self.error.message}
        return out


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds `path` (or would: its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return 0  # pragma: no cover - "/" exists


class Pull:
    """One download of one plan; `start` runs it in its own thread."""

    def __init__(
        self,
        plan: Plan,
        settings: HubSettings,
        catalog: LocalCatalog,
        *,
        free: Callable[[Path], int] = free_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.catalog = catalog
        self._free = free
        self._clock = clock
        self._future: concurrent.futures.Future[LocalModel] = concurrent.futures.Future()
        self._done_files: set[str] = set()
        self._lock = threading.Lock()
        self._storage = settings.cache_dir / repo_folder_name(plan.repo_id)
        self._t0 = clock()
        self.started_at = time.time()
        self._initial = self._shown = self._bytes_on_disk(set())
        self._samples: deque[tuple[float, int]] = deque([(self._t0, self._initial)])

    def start(self) -> Pull:
        threading.Thread(target=self._run, name=f"pull {self.plan.repo_id}", daemon=True).start()
        return self

    def done(self) -> bool:
        return self._future.done()

    def add_done_callback(self, callback: Callable[[Pull], None]) -> None:
        self._future.add_done_callback(lambda _: callback(self))

    def result(self, timeout: float | None = None) -> LocalModel:
        """Block until the pull ends (for the CLI and threads); raises its UnimodelError."""
        return self._future.result(timeout)

    async def wait(self) -> LocalModel:
        """Await the pull; cancelling the awaiting task leaves the pull running for its other waiters."""
        return await asyncio.shield(asyncio.wrap_future(self._future))

    def progress(self) -> PullProgress:
        plan = self.plan
        with self._lock:
            finished = set(self._done_files)
        now = self._clock()
        error: UnimodelError | None = None
        state: State = "pulling"
        if self._future.done():
            exc = self._future.exception()
            state = "failed" if exc is not None else "done"
            error = exc if isinstance(exc, UnimodelError) else None
        done = plan.total_bytes if state == "done" else self._bytes_on_disk(finished)
        with self._lock:
            done = self._shown = max(self._shown, done)  # never backwards (a restarted file is not news)
        files_done = len(plan.files) if state == "done" else sum(1 for f in plan.files if self._file_done(f, finished))
        with self._lock:
            self._samples.append((now, done))
            while len(self._samples) > 2 and now - self._samples[1][0] > _RATE_WINDOW_S:
                self._samples.popleft()
            t_then, then = self._samples[0]
        rate = (done - then) / (now - t_then) if now - t_then > 0.05 else 0.0
        if state != "pulling":
            elapsed = now - self._t0
            rate = (done - self._initial) / elapsed if elapsed > 0 else 0.0
        eta = (plan.total_bytes - done) / rate if state == "pulling" and rate > 0 else None
        return PullProgress(
            model_id=plan.repo_id,
            state=state,
            bytes_done=done,
            bytes_total=plan.total_bytes,
            files_done=files_done,
            files_total=len(plan.files),
            rate_bps=max(rate, 0.0),
            eta_s=eta,
            started_at=self.started_at,
            error=error,
        )

    # --- the thread -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        plan = self.plan
        log.info(
            "pulling %s@%s: %d files, %s, into %s",
            plan.repo_id,
            plan.commit[:12],
            len(plan.files),
            format_bytes(plan.total_bytes),
            self.settings.cache_dir,
        )
        current: str | None = None
        try:
            self._check_disk()
            try:
                from huggingface_hub import hf_hub_download
            except ImportError:
                raise client_missing() from None
            token: str | bool = self.settings.token_value() or False  # False: never a token read from elsewhere
            for f in plan.files:
                current = f.name
                hf_hub_download(
                    plan.repo_id,
                    f.name,
                    revision=plan.commit,
                    cache_dir=self.settings.cache_dir,
                    endpoint=self.settings.endpoint,
                    token=token,
                    etag_timeout=self.settings.timeout_s,
                    library_name="unimodel",
                    library_version=__version__,
                    tqdm_class=_Quiet,  # no bars on a server's stderr
                )
                with self._lock:
                    self._done_files.add(f.name)
            local = self.catalog.save(plan)
        except Exception as exc:
            error = hub_error(exc, plan.repo_id, self.settings, file=current)
            log.warning(
                "pull of %s failed: %s %s: %s",
                plan.repo_id,
                error.status,
                error.code,
                scrub(error.message, self.settings),
            )
            self._future.set_exception(error)
            return
        log.info("pulled %s in %.1f s: %s", plan.repo_id, self._clock() - self._t0, local.path)
        self._future.set_result(local)

    def _check_disk(self) -> None:
        missing = sum(f.size or 0 for f in self.plan.files if not self._file_done(f, set()))
        free = self._free(self.settings.cache_dir)
        if missing + _DISK_RESERVE > free:
            raise InsufficientStorage(
                f"Pulling '{self.plan.repo_id}' needs {format_bytes(missing)} in {self.settings.cache_dir}, and that "
                f"disk has {format_bytes(free)} free. Free some space, or set [hub] cache_dir (HF_HUB_CACHE) to a "
                "larger disk."
            )

    # --- reading the cache ----------------------------------------------------------------------------------

    def _file_done(self, f: PlannedFile, finished: set[str]) -> bool:
        if f.name in finished or (self._storage / "snapshots" / self.plan.commit / f.name).exists():
            return True
        return f.etag is not None and (self._storage / "blobs" / f.etag).exists()

    def _bytes_on_disk(self, finished: set[str]) -> int:
        total = 0
        for f in self.plan.files:
            partial = 0
            if not self._file_done(f, finished) and f.etag is not None:
                partial = self._partial(f.etag)
            # asked again after the partial: the .incomplete may have been renamed to the blob meanwhile
            total += (f.size or 0) if self._file_done(f, finished) else min(partial, f.size or 0)
        return total

    def _partial(self, etag: str) -> int:
        """The size of the newest `.incomplete` file of this blob (this process's, or another's)."""
        newest: tuple[float, int] = (0.0, 0)
        for path in (self._storage / "blobs").glob(f"{etag}*.incomplete"):
            try:
                stat = path.stat()
            except OSError:
                continue  # renamed or removed meanwhile
            newest = max(newest, (stat.st_mtime, stat.st_size))
        return newest[1]


class Pulls:
    """The pulls running in this process: one per plan."""

    def __init__(self, settings: HubSettings, catalog: LocalCatalog, *, free: Callable[[Path], int] = free_bytes):
        self.settings = settings
        self.catalog = catalog
        self._free = free
        self._active: dict[tuple[str, str, tuple[str, ...]], Pull] = {}
        self._lock = threading.Lock()

    def start(self, plan: Plan) -> Pull:
        """The running pull of `plan`, or a new one, started."""
        key = (plan.repo_id.lower(), plan.commit, plan.names)
        with self._lock:
            pull = self._active.get(key)
            if pull is not None and not pull.done():
                return pull
            pull = Pull(plan, self.settings, self.catalog, free=self._free)
            self._active[key] = pull
        pull.add_done_callback(lambda p: self._forget(key, p))
        return pull.start()

    def find(self, repo_id: str) -> Pull | None:
        """A running pull of this repo, if any."""
        with self._lock:
            return next((p for p in self._active.values() if p.plan.repo_id.lower() == repo_id.lower()), None)

    def active(self) -> list[Pull]:
        with self._lock:
            return list(self._active.values())

    def _forget(self, key: tuple[str, str, tuple[str, ...]], pull: Pull) -> None:
        with self._lock:
            if self._active.get(key) is pull:
                del self._active[key]


class _Quiet:
    """What huggingface_hub takes for a progress bar (`tqdm_class`), drawing nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _nothing


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None
