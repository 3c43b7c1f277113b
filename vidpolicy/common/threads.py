"""Torch's intra-op thread count for a block of code, restored afterwards."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (None: leave the count alone); the previous count comes back after,
    also on an exception."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
