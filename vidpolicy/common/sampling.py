"""Batches as a pure function of (seed, step): resuming at step N reproduces the batches an unbroken run sees."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


def step_generator(seed: int, step: int, micro: int = 0, rank: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7_919 + micro * 104_729 + rank * 15_485_863) % (2**63 - 1))
    return g


class StepBatchSampler(Sampler[list[int]]):
    """Index batches for optimizer steps ``start_step..max_steps``, ``accum`` micro-batches each, per process."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, max_steps: int, accum: int = 1,
                 rank: int = 0):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.max_steps, self.accum, self.rank = start_step, max_steps, accum, rank

    def __iter__(self):
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.accum):
                g = step_generator(self.seed, step, micro, self.rank)
                yield torch.randint(self.n, (self.batch_size,), generator=g).tolist()

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.accum


def step_batches(batch, seed: int, start: int, max_steps: int, accum: int, rank: int, size: int):
    """``batch(seed, step, micro, rank, size)`` for every micro-batch of steps ``start..max_steps``."""
    for step in range(start, max_steps):
        for micro in range(accum):
            yield batch(seed, step, micro, rank, size)
