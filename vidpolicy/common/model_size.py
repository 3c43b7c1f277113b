"""What a training run costs per step, printed once at its start: parameters and FLOPs per optimizer step.

FLOPs are counted by tracing one forward pass of a copy of the model on the ``meta`` device (shapes only, no
memory, no arithmetic).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(model: nn.Module, forward: Callable[[nn.Module], Any], trains: bool = True) -> int | None:
    """FLOPs per sample of a training step through ``model``: ``forward(copy of model)`` traced on the meta device,
    times 3 when ``trains`` (a backward pass is about twice the forward). None where it cannot be traced so."""
    try:
        with torch.device("meta"):
            ghost = type(model).from_config(model.config).eval()
            with FlopCounterMode(display=False) as counter:
                forward(ghost)
        return int(counter.get_total_flops()) * (3 if trains else 1)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return None


def count_parameters(*models: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameters of ``models``."""
    params = [p for m in models for p in m.parameters()]
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def size_line(name: str, models: list[nn.Module], flops_per_sample: int | None, samples_per_step: int) -> str:
    """e.g. ``denoiser: 10 M parameters (10 M trainable), 0.3 TFLOP per step (batch 8)``;
    ``flops_per_sample``: the sum of `forward_flops` over the models a step runs."""
    total, trainable = count_parameters(*models)
    line = f"{name}: {total / 1e6:.1f} M parameters ({trainable / 1e6:.1f} M trainable)"
    if flops_per_sample is not None:
        line += f", {flops_per_sample * samples_per_step / 1e12:.3g} TFLOP per step (batch {samples_per_step})"
    return line
