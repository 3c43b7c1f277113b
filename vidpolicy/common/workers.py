"""Child processes that die with their parent.

A parent killed with SIGKILL (a scheduler, the OOM killer) runs no cleanup, so its DataLoader workers and launched
ranks must notice on their own. A worker blocked on a full pipe never looks at its parent (the other workers hold
the pipe's read end open), so polling alone is not enough: on Linux the kernel sends the child SIGKILL the moment
its parent exits (``PR_SET_PDEATHSIG``); elsewhere a daemon thread checks the parent id twice a second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process exit as soon as ``parent_pid`` (default: the current parent) is gone.

    Call it in the child right after it starts (a DataLoader ``worker_init_fn``, a ``preexec_fn``, a launched
    rank's entry point). On Linux the signal follows the parent *thread* that forked this process: fork from a
    thread that outlives the child (the main thread does)."""
    parent = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux") and _set_pdeathsig():
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), name="vidpolicy-parent-watch", daemon=True).start()


def _set_pdeathsig() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the worker exits when the process that started it does."""
    die_with_parent()


def launched_by_torchrun() -> bool:
    """True in a rank started by ``torchrun`` / ``accelerate launch`` (its parent is the launcher's agent)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ
