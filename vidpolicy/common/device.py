"""Mixed precision by device: bf16 autocast where the device has it (CPU, CUDA), nothing elsewhere (``meta``)."""

from __future__ import annotations

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


def resolve(device: str | torch.device) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
