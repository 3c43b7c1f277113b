"""Mixed precision by device: bf16 autocast where the device has it (CPU, CUDA), nothing elsewhere (``meta``)."""

from __future__ import annotations

import os

import torch

_AUTOCAST = ("cpu", "cuda")


def bf16(device: torch.device | str, enabled: bool = True) -> torch.autocast:
    """bf16 autocast for work on ``device``."""
    kind = torch.device(device).type
    return torch.autocast(kind if kind in _AUTOCAST else "cpu", dtype=torch.bfloat16,
                          enabled=enabled and kind in _AUTOCAST)


def full_precision(device: torch.device | str) -> torch.autocast:
    """Autocast off for work on ``device`` (a region that must stay in float32 inside a bf16 one)."""
    kind = torch.device(device).type
    return torch.autocast(kind if kind in _AUTOCAST else "cpu", enabled=False)


def decode_workers(requested: int) -> int:
    """``requested`` decode workers, or for -1 a default from the cores this process has: on a GPU all but one of
    them (up to 8) to keep it fed; on a CPU one, since every extra decoder takes a core from the model."""
    if requested >= 0:
        return requested
    if not torch.cuda.is_available():
        return 1
    per_process = len(os.sched_getaffinity(0)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, per_process - 1))


def resolve(device: str | torch.device) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
