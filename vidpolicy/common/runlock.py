"""One command per run directory: an advisory lock held for as long as a command writes into it.

The lock is ``flock`` on ``DIR/.lock``, which holds the holder's host, pid and start time. The kernel drops the lock
when its process dies, however it dies, so a lock file with a holder but no lock is stale: the next command takes
it over with a warning. A command that ends (normally or with an error) empties the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from vidpolicy.common.errors import VidpolicyError

LOCK_NAME = ".lock"
F = TypeVar("F", bound=Callable)

_held: dict[Path, int] = {}  # lock file -> its fd, in this process
_scopes: list[list[Path]] = []  # the lock files each running `releases_run_locks` call has taken


class RunDirBusy(VidpolicyError):
    """Another live command holds the run directory."""


def _describe(holder: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {started})"


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        holder = {}
    return holder if isinstance(holder, dict) else {}


def lock_path(out: str | Path, beside: bool = False) -> Path:
    """Where ``out``'s lock lives: inside it, or ``beside`` it (``.NAME.lock``) for a directory that another
    library must create itself."""
    out = Path(out).resolve()
    return out.with_name(f".{out.name}{LOCK_NAME}") if beside else out / LOCK_NAME


def lock_run_dir(out: str | Path, beside: bool = False) -> None:
    """Hold ``out``'s lock until this process exits or the enclosing `releases_run_locks` call returns.

    Raises `RunDirBusy` naming the holder when another process holds it; taking it again in the same process is a
    no-op. Only the main process of a multi-process run calls this (the other ranks belong to the same run)."""
    out, path = Path(out).resolve(), lock_path(out, beside)
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise RunDirBusy(f"{out}: in use by {_describe(holder)}; wait for that command to finish or stop it, "
                         "or choose another --out") from None
    stale = _read_holder(fd)
    if stale:
        print(f"warning: {out}: taking over the lock of {_describe(stale)}, which is no longer running",
              file=sys.stderr)
    me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, me, 0)
    _held[path] = fd
    if _scopes:
        _scopes[-1].append(path)


def _release(path: Path) -> None:
    """Empty and unlock a lock file (the file stays: deleting it would let a second locker in)."""
    fd = _held.pop(path, None)
    if fd is not None:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def _scope() -> Iterator[None]:
    _scopes.append([])
    try:
        yield
    finally:
        for path in _scopes.pop():
            _release(path)


def releases_run_locks(fn: F) -> F:
    """A command that writes run directories: every lock it takes is released when it returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _scope():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
