"""A lifeline: a child process dies with the process that started it, however that one ends (SIGKILL included).

The parent keeps the write end of a pipe and never writes to it; the child inherits the read end, named by
`UNIMODEL_LIFELINE_FD`, and a thread blocks reading it. When the parent is gone the kernel closes its end and
the read returns EOF, at once and without polling. Unlike polling `getppid()` there is no interval and no race
with re-parenting, and unlike `PR_SET_PDEATHSIG` it is portable and does not fire when the thread that started
the child ends.

    read_end, write_end = open_lifeline()                                   # the parent
    Popen(argv, pass_fds=(read_end,), env={..., LIFELINE_FD_ENV: str(read_end)}); os.close(read_end)
    ...keep write_end open while the child should live; closing it tells the child to go...

    watch_parent(lambda: end_process_group("the gateway is gone"))          # the child, early in main()

Standard library only: the worker imports this before its engine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["LIFELINE_FD_ENV", "end_process_group", "lifeline_fd_from_env", "open_lifeline", "watch_parent"]

LIFELINE_FD_ENV = "UNIMODEL_LIFELINE_FD"


def open_lifeline() -> tuple[int, int]:
    """(read end, write end). Both are close-on-exec: only a child given the read end in `pass_fds` holds it,
    so no other child keeps the write end (and so the line) open."""
    return os.pipe()


def lifeline_fd_from_env() -> int | None:
    """The read end named by `UNIMODEL_LIFELINE_FD`, taken out of the environment (the engine's own children
    neither see nor inherit it); None when there is none or it is not an open descriptor."""
    raw = os.environ.pop(LIFELINE_FD_ENV, "")
    try:
        fd = int(raw)
        os.fstat(fd)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fd


def watch_parent(on_gone: Callable[[], None], fd: int | None = None) -> bool:
    """Run `on_gone()` in a daemon thread once the lifeline (`fd`, else the one in the environment) reaches EOF.
    False when this process was given no lifeline (started by hand, or by a test)."""
    if fd is None:
        fd = lifeline_fd_from_env()
    if fd is None:
        return False

    def wait() -> None:
        while True:
            try:
                if not os.read(fd, 64):  # nothing is ever written: only the end of the line returns
                    break
            except OSError:
                break
        on_gone()

    threading.Thread(target=wait, name="lifeline", daemon=True).start()
    return True


def end_process_group(reason: str) -> None:
    """SIGKILL this process and, when it leads its own process group (the local backend starts instances that
    way), everything else in that group. For a process whose parent is gone: nobody waits for an orderly exit."""
    print(f"unimodel: {reason}; exiting", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
