"""What every benchmark under bench/ needs to run processes on this machine and to read its CPU use.

Imported by the benchmark scripts (they put bench/ on sys.path); standard library only.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------- processes


class Proc:
    """A child process in its own process group, logging to a file; ``stop`` ends the whole group.

    With ``stdio`` the child's stdin and stdout are pipes to this harness (stderr still goes to the log).
    """

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None, stdio: bool = False
    ) -> None:
        self.name = name
        self.log = log
        self.logfile = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdio else self.logfile,
            stderr=self.logfile if stdio else subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        if self.alive():
            for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, sig)  # the group this harness created for it
                try:
                    self.popen.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # stragglers of its group: the workers a gateway started
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.logfile.close()


class Children:
    """Every process this run started, stopped in reverse order on exit."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None, stdio: bool = False
    ) -> Proc:
        proc = Proc(name, argv, log, env, stdio)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        while self.procs:
            self.procs.pop().stop()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interrupts_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so `finally` blocks stop every child."""
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):  # loopback traffic never goes through a proxy
        env[name] = "127.0.0.1,localhost,::1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------- CPU


def children_of(pid: int) -> list[int]:
    """``pid``'s children, whichever of its threads started them (a raylet starts its workers from other
    threads than its main one)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def tree_pids(root: int) -> list[int]:
    """``root`` and its live descendants."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children_of(pid))
    return out


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (and its live descendants when ``tree``)."""
    ticks = 0
    for one in tree_pids(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (steal included: it is time we did not get)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This harness's CPU, and its children's that have exited and been waited for."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------------------------------------- Ray

RAY_HEAD_IP = "127.0.0.2"  # Ray replaces 127.0.0.1 with the machine's external address; it keeps 127.0.0.2


def start_ray_head(children: Children, out: Path, num_cpus: int, env: dict[str, str]) -> tuple[Proc, str]:
    """A one-node Ray cluster on this machine (`ray start --head --block`, its own temp dir in /tmp), for the
    Ray columns of the benchmarks; its process group ends with the harness. Returns it and its GCS address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((RAY_HEAD_IP, 0))
        port: int = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("ray")  # the venv's, beside its python
    argv = [str(exe) if exe.exists() else "ray", "start", "--head", "--block", "--disable-usage-stats"]
    argv += [f"--node-ip-address={RAY_HEAD_IP}", f"--port={port}", f"--num-cpus={num_cpus}"]
    temp = tempfile.mkdtemp(prefix="unimodel-bench-ray-")  # short: Ray's socket paths must fit 107 bytes
    argv += ["--include-dashboard=false", f"--temp-dir={temp}"]
    env = {**env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    proc = children.start("ray-head", argv, out / "ray-head.log", env)
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection((RAY_HEAD_IP, port), timeout=1).close()
            break
        except OSError:
            if not proc.alive() or time.monotonic() > deadline:
                raise SystemExit(f"the Ray head did not start:\n{proc.log_tail()}") from None
            time.sleep(0.2)
    return proc, f"{RAY_HEAD_IP}:{port}"
