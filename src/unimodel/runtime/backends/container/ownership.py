"""Who owns a container: labels naming this server and this run of it, and the lock file that tells a run that still
runs from one that was killed (so leftovers are removed, never a live server's containers)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import time
from pathlib import Path

log = logging.getLogger("unimodel.runtime")

LABEL_SERVER = "io.unimodel.server"  # the server (its data folder) that owns the container
LABEL_OWNER = "io.unimodel.owner"  # the run of that server that started it
LABEL_INSTANCE = "io.unimodel.instance"
LABEL_MODEL = "io.unimodel.model"


class Ownership:
    """This server's id (kept in `folder/server-id`, the same for every run) and this run's token, whose lock file
    (`folder/owners/<token>.lock`) this process holds while it runs. `folder` None (or not writable): an id of
    this run alone, and no leftovers of earlier runs can be told apart."""

    def __init__(self, folder: Path | None) -> None:
        self.token = secrets.token_hex(8)
        self.folder = folder
        self._lock_fd: int | None = None
        self.server_id = f"run-{self.token}"
        self.persistent = False
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                self.server_id = self._server_id(folder / "server-id")
                self._lock_fd = self._hold(self._lock_path(self.token))
                self.persistent = True
            except OSError as exc:
                log.warning(
                    "cannot keep the container backend's identity in %s (%s): containers left by a run that is "
                    "killed will not be removed at the next start",
                    folder,
                    exc,
                )

    @staticmethod
    def _server_id(path: Path) -> str:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            for _ in range(50):  # another process is writing it this very moment
                text = path.read_text().strip()
                if re.fullmatch(r"[0-9a-f]{16}", text):
                    return text
                time.sleep(0.01)
            raise OSError(f"{path} does not hold a server id; remove it") from None
        server_id = secrets.token_hex(8)
        with os.fdopen(fd, "w") as f:
            f.write(server_id + "\n")
        return server_id

    def _lock_path(self, token: str) -> Path:
        assert self.folder is not None
        return self.folder / "owners" / f"{token}.lock"

    def _hold(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return fd

    def alive(self, token: str) -> bool:
        """Whether the run with `token` still runs (holds its lock). Unknown tokens are not alive."""
        if token == self.token:
            return True
        if not self.persistent or not re.fullmatch(r"[0-9a-f]{16}", token):
            return False
        path = self._lock_path(token)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)  # its run is gone: so is the lock it held
        return False

    def forget_dead(self) -> None:
        """Remove the lock files of runs that are gone."""
        if not self.persistent or self.folder is None:
            return
        for path in (self.folder / "owners").glob("*.lock"):
            self.alive(path.stem)

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self._lock_path(self.token).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None
