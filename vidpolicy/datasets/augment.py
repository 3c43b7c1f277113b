"""Random symmetries of training clips (each rearranges a clip's pixels into another plausible clip) and random squares.

``h`` mirrors left-right, ``t`` plays the clip backwards, ``v`` turns it upside down, ``d`` swaps height and width
(square clips). Each symmetry named is applied to a random half of the clips of a batch, independently of the others,
in the order h, t, v, d (so the left-right draws of a seed are the same whatever else is named).
"""

from __future__ import annotations

import torch

# (what it does, how) for a batch (b, c, T, H, W)
FLIPS = {
    "h": ("mirrored left-right", lambda v: v.flip(-1)),
    "t": ("played backwards", lambda v: v.flip(-3)),
    "v": ("upside down", lambda v: v.flip(-2)),
    "d": ("height and width swapped", lambda v: v.transpose(-1, -2)),
}


def check_flips(flips: str) -> str:
    """``flips`` if it names each symmetry at most once, else a ValueError naming the letters allowed."""
    if any(c not in FLIPS for c in flips) or len(set(flips)) != len(flips):
        raise ValueError(f"flips must be distinct letters of {''.join(FLIPS)} "
                         f"({', '.join(f'{k}: {v[0]}' for k, v in FLIPS.items())}), got {flips!r}")
    return flips


def random_flips(batch: torch.Tensor, flips: str, generator: torch.Generator) -> torch.Tensor:
    """``batch (b, c, T, H, W)`` with each symmetry of ``flips`` applied to a random half of its clips."""
    for name in (c for c in FLIPS if c in check_flips(flips)):
        if name == "d" and batch.shape[-1] != batch.shape[-2]:
            raise ValueError(f"flip 'd' swaps height and width: needs square clips, got {tuple(batch.shape[-2:])}")
        pick = torch.rand(batch.shape[0], generator=generator) < 0.5
        batch = torch.where(pick[:, None, None, None, None], FLIPS[name][1](batch), batch)
    return batch


def random_square(batch: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """A contiguous ``side`` x ``side`` square of ``batch (b, c, T, H, W)``, at one random place for the whole batch."""
    h, w = batch.shape[-2:]
    if not 0 < side <= min(h, w):
        raise ValueError(f"square side must be in 1..{min(h, w)} for {h}x{w} clips, got {side}")
    y, x = (int(torch.randint(0, n - side + 1, (1,), generator=generator)) for n in (h, w))
    return batch[..., y : y + side, x : x + side].contiguous()
