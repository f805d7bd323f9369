"""Records of running instances, so that a gateway's next start stops the instances a killed predecessor left.

The lifeline (lifeline.py) makes an instance die with the process that started it; this is the backstop for one
that could not act on it (stopped, or stuck, when its gateway died). The local backend writes a small JSON file
per instance into a state folder (`<[store] data_dir>/instances/`) and removes it when the instance exits:

    {"instance": "acme_chat-1", "model": "acme/chat", "pid": 4242, "pgid": 4242, "started": 1234567,
     "owner_pid": 4100, "owner_started": 1234000}

`started` and `owner_started` are start times (clock ticks since boot, /proc/<pid>/stat field 22), so a pid the
system has since given to another process is never taken for the one recorded. `sweep()` reads every record: one
whose owner still runs (same pid, same start time: another live server sharing the folder) is left alone; for
the others the instance's process group is killed when its leader is still the recorded process, and the record
goes. Linux only (it reads /proc); elsewhere nothing is recorded and the lifeline works alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["InstanceRecord", "InstanceRecords", "process_start_time"]

log = logging.getLogger("unimodel.runtime")


def process_start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": the command name may hold spaces
    try:
        return int(fields[19])  # field 22 of the line; the fields after the name start at 3
    except (IndexError, ValueError):
        return None


def alive(pid: int, started: int) -> bool:
    """True when `pid` runs and is the process that started at `started` (not a later one given the same pid)."""
    return process_start_time(pid) == started


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    instance: str
    model: str
    pid: int
    pgid: int
    started: int
    owner_pid: int
    owner_started: int


class InstanceRecords:
    """The records of one owner (this process) in `folder`, and the sweep of every owner's."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._owner_pid = os.getpid()
        self._owner_started = process_start_time(self._owner_pid)

    @property
    def enabled(self) -> bool:
        return self._owner_started is not None  # /proc is readable

    def _path(self, instance_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", instance_id)
        return self.folder / f"{self._owner_pid}-{safe}.json"

    def add(self, instance_id: str, model_id: str, pid: int) -> None:
        """Record a started instance (its process leads its own group). A failure is logged, not raised: the
        lifeline still stops the instance with its owner."""
        started = process_start_time(pid)
        if self._owner_started is None or started is None:
            return
        record = InstanceRecord(instance_id, model_id, pid, pid, started, self._owner_pid, self._owner_started)
        path = self._path(instance_id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp")
            partial.write_text(json.dumps(asdict(record)))
            partial.replace(path)  # a sweep never reads half a record
        except OSError as exc:
            log.warning("cannot record instance %s in %s: %s", instance_id, self.folder, exc)

    def remove(self, instance_id: str) -> None:
        with contextlib.suppress(OSError):
            self._path(instance_id).unlink()

    def sweep(self) -> list[InstanceRecord]:
        """Stop the instances whose owner is gone and forget their records; the ones stopped."""
        stopped: list[InstanceRecord] = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                text = path.read_text()
            except OSError:
                continue  # removed meanwhile: its instance exited
            record = _parse(text)
            if record is None:
                log.warning("removing %s: not an instance record", path)
                path.unlink(missing_ok=True)
                continue
            if alive(record.owner_pid, record.owner_started):
                continue  # another server's instance, and that server runs
            if alive(record.pid, record.started) and _group_of(record.pid) == record.pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(record.pgid, signal.SIGKILL)
                    stopped.append(record)
                    log.warning(
                        "stopped instance %s of %s (pid %d), left running by a gateway that is gone (pid %d)",
                        record.instance,
                        record.model,
                        record.pid,
                        record.owner_pid,
                    )
            path.unlink(missing_ok=True)
        return stopped


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _parse(text: str) -> InstanceRecord | None:
    try:
        data = json.loads(text)
        record = InstanceRecord(**data)
    except (ValueError, TypeError):
        return None
    numbers = (record.pid, record.pgid, record.started, record.owner_pid, record.owner_started)
    return record if all(isinstance(n, int) and n > 0 for n in numbers) else None
