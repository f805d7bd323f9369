"""OOM kills on a cgroup v1 host, where Podman reports `OOMKilled` false even after one."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path


class OomWatch:
    """The OOM kills in one container's memory cgroup (cgroup v1), told by an eventfd registered on its
    `memory.oom_control`: Podman on a cgroup v1 host reports `OOMKilled` false even after one, so the backend
    watches for itself. The eventfd fires when the cgroup runs out of memory (its `oom_kill` counter may be read a
    moment before the kill counts) and when the cgroup goes (then the counter cannot be read). An exit by SIGKILL
    (137) after such a notice, or a counted kill, is an OOM kill."""

    def __init__(self, folder: Path) -> None:
        self.kills = 0  # the cgroup's oom_kill counter, as last read
        self.events = 0  # notifications while the cgroup was there: OOMs (its removal notifies too, unreadable)
        self._control = os.open(folder / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        self._event: int | None = None
        try:
            self._event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            with open(folder / "cgroup.event_control", "w") as f:
                f.write(f"{self._event} {self._control}")
        except OSError:
            self.close()
            raise

    @classmethod
    def of(cls, pid: int, container_id: str) -> OomWatch | None:
        """The watch of the container whose process is `pid`, when this host has its cgroup v1 memory controller
        (None otherwise: cgroup v2, another machine's engine, no permission)."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            parts = line.split(":", 2)
            if len(parts) == 3 and "memory" in parts[1].split(",") and container_id[:12] in parts[2]:
                folder = Path("/sys/fs/cgroup/memory") / parts[2].lstrip("/")
                try:
                    return cls(folder)
                except OSError:
                    return None
        return None

    @property
    def fd(self) -> int | None:
        return self._event

    def read(self) -> bool:
        """Read the counter; False once the cgroup is gone (nothing more to watch)."""
        if self._event is not None:
            with contextlib.suppress(OSError):
                os.eventfd_read(self._event)
        try:
            text = os.pread(self._control, 4096, 0).decode()
        except OSError:
            return False
        match = re.search(r"^oom_kill (\d+)$", text, re.MULTILINE)
        if match is not None:
            self.kills = max(self.kills, int(match.group(1)))
        return True

    def close(self) -> None:
        for fd in (self._event, self._control):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._event = None
        self._control = -1
