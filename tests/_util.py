"""Helpers for the tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def moving_square(t: int = 12, h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    """A coloured square moving over a gradient: easy to compress, different in every frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 80)], -1).astype(np.uint8)
    color = rng.integers(60, 255, 3)
    frames = []
    for i in range(t):
        f = base.copy()
        y, x = (2 + i) % (h - 10), (3 + 2 * i) % (w - 10)
        f[y : y + 10, x : x + 10] = color
        frames.append(f)
    return np.stack(frames)


def policy_obs(seed: int = 0) -> dict:
    """An observation the session's `policy` fixture acts on (32² camera, Meta-World's 39-d state)."""
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "state": np.zeros(39, np.float32),
            "instruction": "reach the goal position with the gripper"}


def run_cli(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command's output as text, its carriage returns kept: a progress bar's redraws stay on one line, as a
    terminal shows them (``text=True`` would turn each into a newline)."""
    r = subprocess.run([sys.executable, "-m", "vidpolicy", *args], capture_output=True, timeout=timeout, cwd=ROOT,
                       env={**os.environ, **(env or {})})
    r.stdout, r.stderr = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    return r


def free_port() -> int:
    """A port no one listens on now: tests run two at a time (pytest-xdist), each launch needs its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("torchrun")
    return subprocess.run([str(exe), "--nproc_per_node", "2", "--master_port", str(free_port()),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def shared(path: str) -> Path:
    p = SHARED / path
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p
